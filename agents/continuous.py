"""Mesa agents of the continuous distribution flexibility market (FLEXGRID D5.1, seed 003,
§3.2).

* :class:`OrderFSPAgent`: one flexibility resource of an FSP (its bus, direction, quantity and
  true cost or value); it submits its orders at the times of its own seeded arrival process;
* :class:`ContinuousOperatorAgent`: the flexibility market operator of one feeder; every step it
  matches the orders that arrived, in arrival order
  (:class:`flexgame.markets.continuous.ContinuousMarket`);
* :class:`ContinuousMarketModel`: the trading session, one step per ``step_h`` hours.

Randomness: the model's ``rng`` (a numpy Generator) seeds one generator per FSP agent, in
agent order; each agent draws its arrival times from its own generator only.
"""

from __future__ import annotations

from dataclasses import dataclass

import mesa
import numpy as np
import pandas as pd

from flexgame.markets.continuous import ContinuousMarket, kpi_table, market_kpis
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.feeder_limits import FeederLimits
from flexgame.markets.orders import BUY, RESTRICTIONS, SIDE_OF, Order


@dataclass(frozen=True)
class Resource:
    """A flexibility resource that trades in the continuous market.

    Attributes:
        name: resource name ("<fsp>/<id>").
        feeder: feeder it is connected to.
        bus: its bus number on that feeder.
        direction: flexgame direction, "up" (sells a net-demand decrease) or "down" (buys a
            net-demand increase; seed 003's "up").
        quantity_mw: what it can deliver in the one-hour period [MW].
        true_value: a seller's marginal cost or a buyer's willingness to pay [EUR/MWh].
        tan_phi: reactive change per active change [MVAr/MW].
        restriction: execution restriction of its orders ("none", "IOC", "FOK", "AON").
        markup: price above cost a seller asks, below value a buyer offers [- of the true
            value]; 0 = truthful.
    """

    name: str
    feeder: str
    bus: int
    direction: str
    quantity_mw: float
    true_value: float
    tan_phi: float = 0.0
    restriction: str = "none"
    markup: float = 0.0

    @property
    def price(self) -> float:
        """Its order price [EUR/MWh]."""
        factor = 1.0 - self.markup if SIDE_OF[self.direction] == BUY else 1.0 + self.markup
        return self.true_value * factor


class OrderFSPAgent(mesa.Agent):
    """A resource's trader: splits its quantity into ``orders`` equal orders and submits them
    at arrival times drawn uniformly over the session from its own generator (a Poisson
    arrival process conditioned on its number of orders).

    Attributes:
        resource: the resource it trades.
        operator: the market operator of its feeder.
        arrivals_h: its orders' arrival times [h], increasing.
        first_id: id of its first order (its orders have consecutive ids).
        submitted: orders submitted so far.
    """

    def __init__(self, model, resource: Resource, operator: ContinuousOperatorAgent,
                 rng: np.random.Generator, orders: int, first_id: int):
        super().__init__(model)
        self.resource, self.operator, self.first_id = resource, operator, first_id
        self.arrivals_h = np.sort(rng.uniform(0.0, model.horizon_h, size=orders))
        r, n = resource, orders
        self._orders = [Order(first_id + k, r.bus, r.price, r.quantity_mw / n, r.direction,
                              float(t), r.restriction, r.name, r.tan_phi, r.true_value)
                        for k, t in enumerate(self.arrivals_h)]
        self.submitted: list[Order] = []

    def __repr__(self) -> str:
        r = self.resource
        return (f"OrderFSPAgent({r.name} {r.direction} {r.quantity_mw:.3g} MW at bus {r.bus} "
                f"of {r.feeder}, {len(self.submitted)}/{len(self.arrivals_h)} orders sent)")

    def orders(self) -> list[Order]:
        """All its orders (whether sent yet or not)."""
        return list(self._orders)

    def act(self, start_h: float, end_h: float) -> None:
        """Send the orders arriving in [start_h, end_h) to its market operator."""
        for order in self._orders[len(self.submitted):]:
            if order.arrival >= end_h:
                break
            self.operator.receive(order)
            self.submitted.append(order)


class ContinuousOperatorAgent(mesa.Agent):
    """The flexibility market operator of one feeder (seed 003 §3.2): queues the orders that
    arrive and matches them in arrival order (ties: order id) when it acts.

    Attributes:
        market: its continuous market.
        inbox: orders received and not yet processed.
    """

    def __init__(self, model, limits: FeederLimits, network_check: str = "lindistflow"):
        super().__init__(model)
        self.market = ContinuousMarket(limits, network_check)
        self.inbox: list[Order] = []

    def __repr__(self) -> str:
        return f"ContinuousOperatorAgent({self.market!r})"

    @property
    def feeder(self) -> str:
        return self.market.limits.feeder.name

    def receive(self, order: Order) -> None:
        self.inbox.append(order)

    def match(self) -> None:
        for order in sorted(self.inbox, key=lambda o: (o.arrival, o.order_id)):
            self.market.submit(order)
        self.inbox = []


class ContinuousMarketModel(mesa.Model):
    """A trading session of the continuous market on one or more feeders.

    Args:
        limits: the limit rows of every feeder with a market.
        resources: the trading resources (each on one of those feeders).
        horizon_h: session length [h] (orders arrive uniformly within it).
        steps: number of steps (each ``horizon_h / steps`` long).
        orders_per_resource: orders each resource splits its quantity into.
        rng: the model's numpy Generator (or a seed).
        network_check: "lindistflow" or "ac" (see
            :class:`flexgame.markets.continuous.ContinuousMarket`).

    Raises:
        FlexgameInputError: a resource on a feeder without a market, or a bad setting.
    """

    def __init__(self, limits: list[FeederLimits], resources: list[Resource],
                 horizon_h: float = 1.0, steps: int = 12, orders_per_resource: int = 1,
                 rng: np.random.Generator | int | None = None,
                 network_check: str = "lindistflow"):
        if not (horizon_h > 0 and steps >= 1 and orders_per_resource >= 1):
            raise FlexgameInputError(
                f"horizon_h={horizon_h}, steps={steps}, orders_per_resource="
                f"{orders_per_resource}: need horizon_h > 0, steps >= 1, orders_per_resource >= 1")
        super().__init__(rng=np.random.default_rng(rng) if not isinstance(
            rng, np.random.Generator) else rng)
        self.horizon_h, self.n_steps = float(horizon_h), int(steps)
        self.step_h = self.horizon_h / self.n_steps
        self.t = 0
        operators = {lim.feeder.name: ContinuousOperatorAgent(self, lim, network_check)
                     for lim in limits}
        for i, r in enumerate(resources):
            if r.feeder not in operators:
                raise FlexgameInputError(f"resource {r.name!r} is on feeder {r.feeder!r}, which "
                                         f"has no market; feeders: {', '.join(operators)}")
            if r.restriction not in RESTRICTIONS:
                raise FlexgameInputError(f"resource {r.name!r} has restriction="
                                         f"{r.restriction!r}; allowed: {', '.join(RESTRICTIONS)}")
            seed = int(self.rng.integers(2**63))
            OrderFSPAgent(self, r, operators[r.feeder], np.random.default_rng(seed),
                          orders_per_resource, i * orders_per_resource)
        self.fsps = self.agents_by_type[OrderFSPAgent]
        self.operators = self.agents_by_type[ContinuousOperatorAgent]

    def __repr__(self) -> str:
        return (f"ContinuousMarketModel({len(self.fsps)} FSP agents, {len(self.operators)} "
                f"feeders, step {self.t}/{self.n_steps})")

    @property
    def done(self) -> bool:
        return self.t >= self.n_steps

    def step(self) -> None:
        """One step: the FSP agents send the orders arriving in it, the operators match."""
        start = self.t * self.step_h
        end = self.horizon_h + 1.0 if self.t == self.n_steps - 1 else start + self.step_h
        self.fsps.do("act", start, end)
        self.operators.do("match")
        self.t += 1

    def run(self) -> ContinuousMarketModel:
        while not self.done:
            self.step()
        return self

    @property
    def markets(self) -> list[ContinuousMarket]:
        return [op.market for op in self.operators]

    def orders(self, feeder: str | None = None) -> list[Order]:
        """Every order of the session (of one feeder), in agent order."""
        return [o for a in self.fsps if feeder in (None, a.resource.feeder) for o in a.orders()]

    def kpis(self) -> dict[str, float]:
        return market_kpis(self.markets)

    def kpi_table(self) -> pd.DataFrame:
        return kpi_table(self.kpis())

    def trade_table(self) -> pd.DataFrame:
        """Trades of every feeder (units in the column names)."""
        tables = [m.trade_table().assign(feeder=m.limits.feeder.name) for m in self.markets]
        return pd.concat(tables, ignore_index=True)
