"""Cost of the market layer against system size (run by hand, not by CI).

    python benchmarks/bench_scale.py [--sizes default 5 10 20 40] [--case A] [--repeats 5]
                                     [--schemes common ml03 ...] [--seed 0]

Sizes: ``default`` is the default system (IEEE 14-bus + case69 + case141); a number ``n`` is
the scale preset (``system=scale``: case118 transmission) with its feeders replaced by
``flexgame.markets.system.spread_feeders(n)`` (n copies of case69 and case141, alternating, at
distinct load buses; ``20`` is the preset itself). Each size runs in its own subprocess, so
its peak RSS (``ru_maxrss``) is its own; the RSS after the imports is printed beside it.

Per size and scheme, on the truthful bids of the case drawn from the seed:

- build: constructing the scheme (``Scheme(system, bids, config)``) [s];
- clear: its first clearing, from scratch (cold, right after building) [s];
- re-solve: median of ``--repeats`` clearings of the built scheme with bid prices changed by
  a random +-10 % (what the strategic loop does) [s];
- ex-post: median of ``--repeats`` ex-post assessments (``grid_assessment.assess``) of the
  first clearing's activations [s].

Prints a table of the sizes (buses, bids, system build and bid draw time, peak memory) and
one table per measure, schemes x sizes, so the growth of cost with size reads along a row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time

import pandas as pd

from measure import median_time, peak_rss_mb

DEFAULT_SIZES = ("default", "5", "10", "20", "40")
MEASURES = {"build": "build [s]", "clear": "clear, from scratch [s]",
            "resolve": "re-solve, median of repeats [s]", "expost": "ex-post, median [s]"}


def system_config(size: str):
    """The SystemConfig of a size: the default, or the scale preset with ``size`` feeders."""
    from flexgame.markets.system import SystemConfig, spread_feeders

    if size == "default":
        return SystemConfig()
    from flexgame.experiments.config import load_config, settings

    preset = settings(load_config(["system=scale"])).system
    return dataclasses.replace(preset, feeders=spread_feeders(int(size),
                                                              preset.transmission_case))


def measure(size: str, case: str, schemes: list[str], repeats: int, seed: int) -> dict:
    """Every figure of one size (run in a worker process)."""
    import numpy as np

    from flexgame.markets.bids import TSO_NEED_DIRECTION, BidConfig, generate_bids
    from flexgame.markets.grid_assessment import assess
    from flexgame.markets.schemes import ClearingConfig, Scheme
    from flexgame.markets.system import build_system

    config = system_config(size)
    rss_imported = peak_rss_mb()
    start = time.perf_counter()
    system = build_system(config, direction=TSO_NEED_DIRECTION[case])
    system_s = time.perf_counter() - start
    start = time.perf_counter()
    bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(seed))
    bids_s = time.perf_counter() - start
    tx_buses = len(system.transmission.buses)
    dist_buses = sum(f.n_buses for f in system.feeders)
    row = {"size": size, "transmission": system.transmission.case.name,
           "feeders": len(system.feeders), "tx buses": tx_buses, "dist buses": dist_buses,
           "buses": tx_buses + dist_buses, "bids": len(bids),
           "tso need [MW]": abs(system.tso_need_mw), "system [s]": system_s,
           "bid draw [s]": bids_s, "schemes": {}}
    rng = np.random.default_rng(seed)
    base_price = bids.price_eur_per_mw.to_numpy(float)
    for name in schemes:
        start = time.perf_counter()
        scheme = Scheme(system, bids, ClearingConfig(scheme=name))
        build = time.perf_counter() - start
        start = time.perf_counter()
        result = scheme.clear()
        clear = time.perf_counter() - start
        resolve = median_time(
            lambda s=scheme: s.clear(price=base_price * rng.uniform(0.9, 1.1, len(base_price))),
            repeats)
        activation = result.activation_mw
        expost = median_time(lambda a=activation: assess(system, bids, a), repeats)
        report = assess(system, bids, activation)
        row["schemes"][name] = {"build": build, "clear": clear, "resolve": resolve,
                                "expost": expost, "unmet [MW]": result.unmet_need_mw,
                                "congestions": int(report.congestions)}
    row["rss after imports [MiB]"] = rss_imported
    row["peak rss [MiB]"] = peak_rss_mb()
    return row


def run_size(size: str, args) -> dict:
    """Measure one size in a fresh interpreter (its own peak RSS)."""
    command = [sys.executable, __file__, "--worker", size, "--case", args.case,
               "--repeats", str(args.repeats), "--seed", str(args.seed),
               "--schemes", *args.schemes]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"size {size} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from flexgame.markets.schemes import SCHEMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES),
                        help="'default' or a number of feeders on case118")
    parser.add_argument("--case", default="A", choices=("A", "B", "C", "D"))
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    parser.add_argument("--repeats", type=int, default=5, help="repeats per median")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.case, args.schemes, args.repeats,
                                 args.seed)))
        return

    rows = []
    for size in args.sizes:
        start = time.perf_counter()
        rows.append(run_size(size, args))
        print(f"size {size}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 50)
    sizes = pd.DataFrame([{k: v for k, v in r.items() if k != "schemes"} for r in rows])
    print(f"Sizes (case {args.case}, seed {args.seed}, truthful bids; one subprocess each)")
    print(sizes.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    labels = [f"{r['size']} ({r['buses']} buses, {r['bids']} bids)" for r in rows]
    for key, title in MEASURES.items():
        table = pd.DataFrame({label: {s: r["schemes"][s][key] for s in args.schemes}
                              for label, r in zip(labels, rows)})
        print(f"\n{title}, per scheme x size")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    checks = pd.DataFrame({label: {s: (f"{r['schemes'][s]['unmet [MW]']:.2f} MW / "
                                       f"{r['schemes'][s]['congestions']}")
                                   for s in args.schemes} for label, r in zip(labels, rows)})
    print("\nunmet need / ex-post congestions of the first clearing, per scheme x size")
    print(checks.to_string())


if __name__ == "__main__":
    main()
