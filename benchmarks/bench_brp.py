"""The BRP's bilevel: time of one solve, by enumeration and by the MPEC (issue 13; run by hand,
not by CI).

    python benchmarks/bench_brp.py [--repeats 5]

Prints, for the paper's five cases on its test slot (38 blocks, 5 + 5 reserve bids; IDR
reference §3), the median time [s] of one solve by enumeration
(:func:`flexgame.games.brp.solve_by_enumeration`) and by the MPEC on HiGHS
(:func:`~flexgame.games.brp.solve_mpec`, Pyomo model built and solved), their net profits,
and the time of the scenario-based bilevel of SBVOIO with three curves (the test slot's curve
shifted by -10, 0 and +10 MW). The time of one inverse-optimisation fit at the paper's size
is in ``bench_inverse_optimization.py``.
"""

from __future__ import annotations

import argparse

import pandas as pd

from flexgame.experiments.idr_cases import CASES, slot
from flexgame.games.brp import BRPSlot, solve_by_enumeration, solve_mpec, solve_scenarios
from flexgame.markets.flexibility_curve import FlexibilityCurve
from measure import median_time


def _scenarios(case: str) -> list[BRPSlot]:
    base = slot(case)
    c = base.curve
    return [BRPSlot(FlexibilityCurve(c.p_min + d, c.p_max + d, c.w), base.reserve,
                    base.system_imbalance_mw, base.day_ahead_mw, base.day_ahead_price,
                    base.max_retail_price) for d in (-10.0, 0.0, 10.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for case in CASES:
        s = slot(case)
        rows.append({
            "case": case,
            "enumeration [s]": median_time(lambda: solve_by_enumeration(s), args.repeats),
            "MPEC [s]": median_time(lambda: solve_mpec(s), args.repeats),
            "scenarios x3 [s]": median_time(lambda: solve_scenarios(_scenarios(case)),
                                            args.repeats),
            "net, enumeration [EUR]": solve_by_enumeration(s).net_eur,
            "net, MPEC [EUR]": solve_mpec(s).net_eur,
        })
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
