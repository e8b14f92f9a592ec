"""Synthetic Brussels-like LV grid (report 001 §5.2 calibration; issue 15, item 3), by hand:

    python benchmarks/bench_lv_grids.py [seed]

Times generating the 49-feeder grid and computing the fair and optimal envelopes of all its
feeders, for both impedance models, and counts the feeders per type (fair with capacity
weights, the default of ``classify``, and with equal weights for comparison).
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import numpy as np
from flexgame.markets.envelopes import compute_envelopes
from flexgame.markets.lv_grids import (
    GridConfig,
    classify_envelopes,
    feeder_length_m,
    generate_grid,
)


def main(seed: int = 2024) -> None:
    for model in ("balanced", "single_phase"):
        cfg = GridConfig(impedance_model=model)
        t = time.perf_counter()
        grid = generate_grid(seed, cfg)
        t_gen = time.perf_counter() - t
        n_cp = np.array([lv.feeder.n_buses - 1 for lv in grid])
        n_u = np.array([lv.n_users for lv in grid])
        lengths = np.array([feeder_length_m(lv) for lv in grid])
        print(f"\n== {model}, seed {seed}: generate {len(grid)} feeders in {t_gen * 1e3:.1f} ms; "
              f"{n_cp.sum()} connection points ({n_cp.mean():.1f}/feeder, {n_cp.min()}-"
              f"{n_cp.max()}), {n_u.sum()} users ({n_u.mean():.1f}/feeder, {n_u.min()}-"
              f"{n_u.max()}), cable {lengths.min():.0f}-{lengths.max():.0f} m/feeder")
        for weights in ("capacity", "equal"):
            t = time.perf_counter()
            envs = [(compute_envelopes(lv, "fair", weights=weights),
                     compute_envelopes(lv, "optimal")) for lv in grid]
            t_env = time.perf_counter() - t
            cls = [classify_envelopes(f, o) for f, o in envs]
            count = Counter(c.type for c in cls)
            fair = sum(c.fair_kw for c in cls)
            opt = sum(c.optimal_kw for c in cls)
            cap = sum(c.capacity_kw for c in cls)
            print(f"  fair weights={weights:8s}: envelopes (fair + optimal) of all feeders "
                  f"{t_env:.2f} s; types 1/2/3 = {count[1]}/{count[2]}/{count[3]}; totals "
                  f"(import + export) fair {fair:.0f} kW, optimal {opt:.0f} kW, capacity "
                  f"{cap:.0f} kW")
            t1 = [(lv.n_users, feeder_length_m(lv)) for lv, c in zip(grid, cls) if c.type == 1]
            if t1:
                print(f"    type 1 feeders: {min(u for u, _ in t1)}-{max(u for u, _ in t1)} "
                      f"users, {min(x for _, x in t1):.0f}-{max(x for _, x in t1):.0f} m "
                      "(report 001 §5.2: 15 feeders, 1-24 users, 58-227 m)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2024)
