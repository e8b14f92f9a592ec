"""Continuous network-aware flexibility market (seed 003 §3.2), by hand:

    python benchmarks/bench_continuous.py

Orders processed per second (matching with the LinDistFlow check, "no_worsening") on the
default system's feeders case69 and case141, for growing numbers of random orders, and the
time of one re-solve of the welfare auction LP of the same orders.
"""

from __future__ import annotations

import numpy as np
from flexgame.experiments.scenario import Scenario
from flexgame.markets.continuous import ContinuousMarket
from flexgame.markets.double_auction import WelfareAuction
from flexgame.markets.feeder_limits import FeederLimits
from flexgame.markets.grid_state import GridState
from flexgame.markets.orders import RESTRICTIONS, Order
from measure import median_time


def random_orders(feeder, n: int, rng: np.random.Generator) -> list[Order]:
    loads = np.flatnonzero(feeder.load_mw > 0)
    buses = feeder.buses[rng.choice(loads, size=n)]
    return [Order(i, int(b), float(rng.uniform(15, 60)), float(rng.uniform(0.005, 0.05)),
                  str(rng.choice(["up", "down"])), float(rng.uniform()),
                  str(rng.choice(RESTRICTIONS)))
            for i, b in enumerate(buses)]


def main() -> None:
    scenario = Scenario.from_case("A", seed=0)
    state = GridState.base(scenario.system)
    print(f"{'feeder':8} {'orders':>7} {'trades':>7} {'orders/s':>10} {'auction [ms]':>13}")
    for feeder in scenario.system.feeders:
        limits = FeederLimits(feeder, state, scenario.system.feeder_line_limit,
                              mode="no_worsening")
        for n in (200, 1000, 5000):
            orders = random_orders(feeder, n, np.random.default_rng(n))
            markets: list[ContinuousMarket] = []

            def session(limits=limits, orders=orders, markets=markets):
                markets.append(ContinuousMarket(limits).run(orders))

            seconds = median_time(session, 3)
            auction = WelfareAuction(limits, orders)
            solve = median_time(auction.clear, 3)
            print(f"{feeder.name:8} {n:7d} {len(markets[-1].trades):7d} {n / seconds:10.0f} "
                  f"{1e3 * solve:13.1f}")


if __name__ == "__main__":
    main()
