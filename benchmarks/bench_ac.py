"""AC vs linear ex-post assessment on the default system (run by hand, not by CI).

    python benchmarks/bench_ac.py [--case B] [--repeats 20] [--seed 0]

Prints the time of
1. building the AC model (pandapower networks of case14 and each feeder, once per system);
2. one AC assessment of the common clearing's activations with the model built (the first
   one, which builds pandapower's internal matrices, and then the median of the next ones:
   feeders and transmission re-solved with recycled matrices);
3. the same assessment without the cache: a fresh model per assessment;
4. one linear assessment (PTDF + LinDistFlow) of the same activations;
and the AC report (counts, linear error). Times are medians over the repeats [s].
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from flexgame.markets.ac_assessment import ACModel
from flexgame.markets.bids import TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.grid_assessment import assess
from flexgame.markets.schemes import ClearingConfig, Scheme
from flexgame.markets.system import build_system
from measure import median_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="B")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    system = build_system(direction=TSO_NEED_DIRECTION[args.case])
    bids = generate_bids(system, BidConfig(case=args.case), np.random.default_rng(args.seed))
    activation = Scheme(system, bids, ClearingConfig(scheme="common")).clear().activation_mw

    start = time.perf_counter()
    model = ACModel(system)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    report = model.assess(bids, activation)
    first_s = time.perf_counter() - start
    rows = [
        ("AC: build the model (once per system)", build_s),
        ("AC: first assessment (builds pandapower's matrices)", first_s),
        ("AC: one assessment, model built", median_time(lambda: model.assess(bids, activation),
                                                         args.repeats)),
        ("AC: one assessment, fresh model each time",
         median_time(lambda: ACModel(system).assess(bids, activation), max(args.repeats // 4, 3))),
        ("linear: one assessment", median_time(lambda: assess(system, bids, activation),
                                               args.repeats)),
    ]
    table = pd.DataFrame(rows, columns=["step", "time_s"])
    linear_s = table.time_s.iloc[-1]
    table["x_linear"] = table.time_s / linear_s
    print(f"Default system, case {args.case}, seed {args.seed}, common clearing, "
          f"{len(bids)} bids, {args.repeats} repeats")
    print(table.to_string(index=False, formatters={"time_s": "{:.4f}".format,
                                                   "x_linear": "{:.1f}".format}))
    print()
    print("AC report:", report)
    print("linear report:", report.linear)
    print(report.linear_error.to_string(index=False, float_format="{:.4f}".format))


if __name__ == "__main__":
    main()
