"""Benchmark and KER 2 study of the equilibrium search (run by hand, not by CI).

For each scheme x liquidity x aggregation it builds the scheme once, runs iterated best
response (Gauss-Seidel, seeded) from truthful bids on a markup grid, and prints rounds,
clearings per second, total time, and the strategic KPIs (cost ratio vs truthful = price of
anarchy, eta vs truthful common, mean markup, epsilon, status).

Clearing throughput is compared with HiGHS itself in two ways: ``wall_over_highs`` is the wall
time of the equilibrium search divided by the time spent inside ``Highs.run`` (all the
scheme's warm-started LP/MILP solves, timed by wrapping the method), i.e. the slowdown of the
whole pipeline (Python book-keeping, state updates, settlement) over bare solves of the same
LPs; ``bare_common_lp_solves_per_s`` times the common LP alone in HiGHS with perturbed costs.

    python benchmarks/bench_equilibrium.py --schemes common fragmented ml01 ml03 \
        --liquidity 1.0 0.5 --aggregation random_pools by_feeder --rounds 10
"""

from __future__ import annotations

import argparse
import time

import highspy
import numpy as np
import pandas as pd

from flexgame.agents.agents import SystemOperatorAgent
from flexgame.agents.model import FlexMarketModel
from flexgame.games.reasoning import ReasoningConfig
from flexgame.games.metrics import strategic_metrics
from flexgame.games.strategies import StrategySpace
from flexgame.markets.bids import TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.schemes import build_scheme
from flexgame.markets.system import build_system


def bare_resolve_rate(system, bids, n: int = 200) -> float:
    """Solves per second of the common LP in HiGHS alone, costs perturbed between solves."""
    scheme = build_scheme(system, bids, "common")
    lp, layer = scheme.common.lp, scheme.common
    scheme.clear()
    rng = np.random.default_rng(0)
    base = bids.price_eur_per_mw.to_numpy()
    start = time.perf_counter()
    for _ in range(n):
        lp.set_costs(layer.a_cols, base * rng.uniform(1.0, 1.5, len(base)))
        lp.highs.run()
    return n / (time.perf_counter() - start)


class HighsTimer:
    """Accumulates the wall time spent inside ``highspy.Highs.run`` while installed."""

    def __init__(self):
        self.seconds = 0.0
        self._run = highspy.Highs.run

    def __enter__(self):
        timer, run = self, self._run

        def timed_run(highs):
            start = time.perf_counter()
            try:
                return run(highs)
            finally:
                timer.seconds += time.perf_counter() - start

        highspy.Highs.run = timed_run
        return self

    def __exit__(self, *exc):
        highspy.Highs.run = self._run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="A")
    ap.add_argument("--schemes", nargs="+", default=["common", "fragmented", "ml01", "ml03"])
    ap.add_argument("--liquidity", nargs="+", type=float, default=[1.0, 0.5])
    ap.add_argument("--aggregation", nargs="+", default=["random_pools", "by_feeder"])
    ap.add_argument("--pool-size", type=int, default=14)
    ap.add_argument("--markups", type=int, default=15, help="points of the markup grid")
    ap.add_argument("--markup-max", type=float, default=2.4, help="top of the markup grid")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="CSV file for the table")
    args = ap.parse_args()
    system = build_system(direction=TSO_NEED_DIRECTION[args.case])
    space = StrategySpace(markups=list(np.round(np.linspace(1.0, args.markup_max, args.markups), 3)))
    rows = []
    for liquidity in args.liquidity:
        for aggregation in args.aggregation:
            bids = generate_bids(system, BidConfig(case=args.case, liquidity=liquidity,
                                                   aggregation=aggregation,
                                                   pool_size=args.pool_size),
                                 np.random.default_rng(args.seed))
            common_truthful = build_scheme(system, bids, "common").clear().cost_eur
            bare = bare_resolve_rate(system, bids)
            for scheme_name in args.schemes:
                scheme = build_scheme(system, bids, scheme_name)
                model = FlexMarketModel(scheme, space, ReasoningConfig("ibr", max_rounds=args.rounds),
                                        seed=args.seed)
                with HighsTimer() as highs:
                    start = time.perf_counter()
                    model.run(progress=True)
                    elapsed = time.perf_counter() - start
                rate = model.evaluator.clearings / elapsed
                m = strategic_metrics(model.evaluator, model.profile, model.status, model.round,
                                      model.cycle, common_truthful)
                # the system operators' ex-post check of the last round (the final profile)
                violations = sum(a.congestions + a.voltage_violations
                                 for a in model.agents_by_type[SystemOperatorAgent])
                rows.append(dict(scheme=scheme_name, liquidity=liquidity, aggregation=aggregation,
                                 fsps=len(model.bid_map.fsps), rounds=model.round,
                                 clearings=model.evaluator.clearings,
                                 clearings_per_s=round(rate, 1),
                                 highs_s=round(highs.seconds, 1),
                                 wall_over_highs=round(elapsed / highs.seconds, 2),
                                 bare_common_lp_solves_per_s=round(bare, 1),
                                 time_s=round(elapsed, 1),
                                 cost_ratio=round(m["price_of_anarchy"], 3),
                                 eta_vs_truthful_common_pct=round(m["inefficiency_vs_truthful_common_pct"], 2),
                                 mean_markup=round(m["mean_markup"], 3),
                                 unmet_need_mw=round(m["strategic_unmet_need_mw"], 3),
                                 violations=violations,
                                 epsilon_eur=round(m["epsilon"], 3), status=m["status"],
                                 cycle_length=m["cycle_length"]))
                print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
