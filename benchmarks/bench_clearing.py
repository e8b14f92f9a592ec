"""Clearing benchmarks on the default system (run by hand, not by CI).

    python benchmarks/bench_clearing.py [--case B] [--repeats 5] [--seed 0]

Prints three tables:

1. per scheme (one case): building the scheme and clearing it once from scratch, vs re-solving
   the already built scheme with bid prices changed by a random +-10 % (what the strategic
   loop does), and their ratio;
2. the full D3.3 table (9 schemes x 4 cases) wall time;
3. ml03 with iterative prequalification (vs operating envelopes) per case.
Times are medians over the repeats [s].
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import pandas as pd

from flexgame.experiments import table as d33
from flexgame.experiments.scenario import build_scenario, clearing_config, load_config
from flexgame.markets.bids import CASES
from flexgame.markets.schemes import SCHEMES, Scheme


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rebuild_vs_resolve(case: str, seed: int, repeats: int) -> pd.DataFrame:
    system, bids, _ = build_scenario(load_config([f"case={case}", f"seed={seed}"]))
    rng = np.random.default_rng(seed)
    base_price = bids.price_eur_per_mw.to_numpy(float)
    rows = []
    for name in SCHEMES:
        clearing = clearing_config(load_config([f"scheme={name}"]))
        rebuild = _median_time(lambda: Scheme(system, bids, clearing).clear(), repeats)
        scheme = Scheme(system, bids, clearing)
        scheme.clear()  # warm start, as in the strategic loop
        resolve = _median_time(
            lambda: scheme.clear(price=base_price * rng.uniform(0.9, 1.1, len(base_price))),
            repeats)
        rows.append({"scheme": name, "build + clear [s]": rebuild, "re-solve [s]": resolve,
                     "ratio [-]": rebuild / resolve})
    return pd.DataFrame(rows)


def full_table(seed: int) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    table = d33.compute(CASES, SCHEMES, seed, progress=False)
    return time.perf_counter() - start, table


def iterative_prequalification(seed: int, repeats: int) -> pd.DataFrame:
    envelope = clearing_config(load_config(["scheme=ml03"]))
    rows = []
    for case in CASES:
        system, bids, _ = build_scenario(load_config([f"case={case}", f"seed={seed}"]))
        row = {"case": case}
        for method in ("envelope", "iterative"):
            clearing = dataclasses.replace(envelope, prequalification=method)
            row[f"{method}: build + clear [s]"] = _median_time(
                lambda: Scheme(system, bids, clearing).clear(), repeats)
            scheme = Scheme(system, bids, clearing)
            row[f"{method}: clear [s]"] = _median_time(scheme.clear, repeats)
            result = scheme.clear()
            row[f"{method}: unqualified up/down [%]"] = (
                f"{result.unqualified_up_pct:.1f}/{result.unqualified_down_pct:.1f}")
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="B", choices=CASES, help="case of table 1")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per timing (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pd.set_option("display.float_format", lambda v: f"{v:.4f}")
    pd.set_option("display.width", 200)

    print(f"1. Rebuild vs re-solve, case {args.case}, seed {args.seed}, "
          f"median of {args.repeats} [s]")
    print(rebuild_vs_resolve(args.case, args.seed, args.repeats).to_string(index=False))

    seconds, table = full_table(args.seed)
    clearing = (table.build_s + table.runtime_s).sum()
    print(f"\n2. Full D3.3 table ({len(SCHEMES)} schemes x {len(CASES)} cases = {len(table)} "
          f"runs): {seconds:.2f} s wall time, of which {clearing:.2f} s building and clearing "
          "schemes (the rest: config composition, scenarios, ex-post assessment)")

    print(f"\n3. ml03 prequalification per case, median of {args.repeats} [s]")
    print(iterative_prequalification(args.seed, args.repeats).to_string(index=False))


if __name__ == "__main__":
    main()
