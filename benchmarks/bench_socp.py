"""SOCP clearing benchmark on the default feeders (run by hand, not by CI).

    python benchmarks/bench_socp.py [--repeats 5] [--seed 0]

Per feeder (case69, case141 of the default system, case A bids drawn from the seed) and per
variant (plain relaxation, augmented = Nick et al.'s conservative model): the time to build
the :class:`~flexgame.markets.socp.FeederSOCP`, its first solve (cvxpy canonicalisation +
Clarabel), and the median re-solve with the bid prices changed by a random +-10 % (the model
is not rebuilt: cvxpy Parameters), of which Clarabel's own solve time; then the KPIs of the
last solve (tightness, exactness against a pandapower AC power flow, AC feasibility) and the
time of that AC power flow. Times in seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.socp import FeederSOCP, ac_power_flow, kpis
from flexgame.markets.system import build_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    system = build_system()
    rng = np.random.default_rng(args.seed)
    bids = generate_bids(system, BidConfig(), rng)
    price0 = bids.price_eur_per_mw.to_numpy()
    qty = bids.quantity_mw.to_numpy()
    head = (f"{'feeder':8} {'variant':9} {'bids':>4} {'build':>7} {'first':>7} {'resolve':>8} "
            f"{'clarabel':>8} {'AC pf':>7} {'tight_rel':>9} {'max|dV|':>8} {'max|dP|MW':>9} "
            f"{'AC feas':>7} {'cost EUR':>9}")
    print(head)
    for f in system.feeders:
        p, q = system.feeder_net_demand(f)
        for augmented in (False, True):
            t0 = time.perf_counter()
            model, rows = FeederSOCP.from_bids(f, bids, augmented=augmented,
                                               line_limit=system.feeder_line_limit)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            model.solve(p, q, price0[rows], qty[rows])
            first = time.perf_counter() - t0
            times, inner = [], []
            for _ in range(args.repeats):
                price = price0[rows] * rng.uniform(0.9, 1.1, len(rows))
                t0 = time.perf_counter()
                r = model.solve(p, q, price, qty[rows])
                times.append(time.perf_counter() - t0)
                inner.append(model.problem.solver_stats.solve_time)
            t0 = time.perf_counter()
            ac = ac_power_flow(f, r.net_mw, r.net_mvar)
            t_ac = time.perf_counter() - t0
            k = kpis(model, r, ac)
            print(f"{f.name:8} {'augmented' if augmented else 'plain':9} {len(rows):4d} "
                  f"{build:7.3f} {first:7.3f} {np.median(times):8.3f} {np.median(inner):8.3f} "
                  f"{t_ac:7.3f} {k['tightness_rel']:9.1e} {k['max_dv_pu']:8.1e} "
                  f"{k['max_dp_mw']:9.1e} {str(k['ac_feasible']):>7} {r.cost:9.2f}")


if __name__ == "__main__":
    main()
