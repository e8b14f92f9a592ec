"""Continuous network-aware distribution flexibility market (FLEXGRID D5.1, seed 003, §3.2).

The matching algorithm of seed 003 §3.2 (its Figure 9), order by order:

1. an incoming order looks at the opposite Shared Order Book in price-time priority
   (:class:`flexgame.markets.orders.OrderBook`); a candidate matches only if the prices
   cross (buy price >= sell price);
2. the match is checked on the feeder: LinDistFlow sensitivities and headroom
   (:class:`flexgame.markets.feeder_limits.FeederLimits`, "strict" or "no_worsening"); it
   is confirmed for the largest feasible quantity (a partial match is allowed), and when no
   positive quantity is feasible the next candidate in priority is tried. With
   ``network_check="ac"`` an AC power flow must confirm it as well
   (:class:`flexgame.markets.ac_match_check.ACMatchCheck`; the quantity is halved up to
   :data:`AC_HALVINGS` times until it does, except a resting AON order's: whole or skipped);
3. the remainder rests in its own book, except IOC (remainder cancelled), FOK (filled
   entirely at once, or cancelled) and AON (filled entirely, or rests whole; a resting AON
   order is only matched for its whole quantity).

Settlement is pay-as-bid on both sides (seed 003: "both sides get the price they bid"): the
buyer pays its price, the seller receives its price, and the market keeps the surplus
(buy price - sell price) x quantity >= 0. Directions follow flexgame (see
:mod:`flexgame.markets.orders`: flexgame "down" = seed 003 "up" = buy side).

KPIs (seed 003 §3.3, Table 6): number and volume of transactions, social welfare, surplus per
side, utilisation (matched / offered volume) and processing time per order; see
:func:`market_kpis`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets.distribution import Feeder
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.feeder_limits import FeederLimits
from flexgame.markets.grid_state import GridState
from flexgame.markets.orders import BUY, SELL, Order, OrderBook, Resting

EPS_MW = 1e-9
"""Quantities below this [MW] count as nothing."""
NETWORK_CHECKS = ("lindistflow", "ac")
AC_HALVINGS = 4
"""Times an AC-refused quantity is halved before the candidate is skipped."""


@dataclass(frozen=True)
class Trade:
    """A confirmed match.

    Attributes:
        buy_id, sell_id: order ids of the buyer (flexgame "down") and the seller ("up").
        quantity_mw: matched quantity [MW] for the one-hour period (= MWh).
        buy_price, sell_price: what the buyer pays and the seller receives [EUR/MWh].
        buy_value, sell_value: their true value and cost [EUR/MWh].
        time: arrival time of the incoming order that triggered it [h].
        incoming_id: the incoming order's id.
        resting_priority: the resting order's priority key in its book when matched.
    """

    buy_id: int
    sell_id: int
    quantity_mw: float
    buy_price: float
    sell_price: float
    buy_value: float
    sell_value: float
    time: float
    incoming_id: int
    resting_priority: tuple

    @property
    def surplus_eur(self) -> float:
        """Market surplus of pay-as-bid: (buy price - sell price) x quantity [EUR]."""
        return (self.buy_price - self.sell_price) * self.quantity_mw

    @property
    def welfare_eur(self) -> float:
        """Social welfare: (buyer's value - seller's cost) x quantity [EUR]."""
        return (self.buy_value - self.sell_value) * self.quantity_mw


@dataclass(frozen=True)
class OrderOutcome:
    """What happened to one submitted order.

    Attributes:
        order: the order.
        matched_mw: quantity matched on arrival [MW].
        status: "filled", "partial" (remainder rests), "rested" (nothing matched, rests),
            "cancelled" (IOC/FOK remainder) or "partial_cancelled" (IOC, part matched).
        rejected_by_network: candidates whose prices crossed but the network check refused.
        seconds: processing time of the order (its latency) [s].
    """

    order: Order
    matched_mw: float
    status: str
    rejected_by_network: int
    seconds: float


class ContinuousMarket:
    """The continuous market of one feeder.

    Args:
        limits: the feeder's limit rows (built once; the market keeps its own headroom).
        network_check: "lindistflow" (the linear rows only) or "ac" (an AC power flow must
            confirm every match as well).
    """

    def __init__(self, limits: FeederLimits, network_check: str = "lindistflow"):
        require_choice("network_check", network_check, NETWORK_CHECKS)
        self.limits, self.network_check = limits, network_check
        self.ac = None
        if network_check == "ac":
            from flexgame.markets.ac_match_check import ACMatchCheck

            self.ac = ACMatchCheck(limits)
            self.ac_excess = self.ac.base_excess
        n = limits.feeder.n_buses
        self.delta_p, self.delta_q = np.zeros(n), np.zeros(n)
        self.headroom = limits.base_headroom.copy()
        self.books = {BUY: OrderBook(BUY), SELL: OrderBook(SELL)}
        self.trades: list[Trade] = []
        self.outcomes: list[OrderOutcome] = []
        self.activation_mw: dict[int, float] = {}
        self._columns: dict[int, np.ndarray] = {}  # limit-row column per submitted order id

    def __repr__(self) -> str:
        return (f"ContinuousMarket({self.limits.feeder.name!r}, {len(self.outcomes)} orders, "
                f"{len(self.trades)} trades, {self.volume_mw:.3g} MW, books "
                f"{len(self.books[BUY])} buy / {len(self.books[SELL])} sell)")

    @property
    def volume_mw(self) -> float:
        return float(sum(t.quantity_mw for t in self.trades))

    def submit(self, order: Order) -> OrderOutcome:
        """Match ``order`` on arrival, rest or cancel its remainder; returns its outcome."""
        start = time.perf_counter()
        if order.order_id in self._columns:
            raise FlexgameInputError(f"order id {order.order_id} was already submitted")
        self._columns[order.order_id] = self.limits.column(order)  # checks its bus
        opposite = self.books[SELL if order.side == BUY else BUY]
        all_or_none = order.restriction in ("FOK", "AON")
        headroom = self.headroom.copy()
        dp, dq = self.delta_p.copy(), self.delta_q.copy()
        ac_excess = self.ac_excess if self.ac else None
        remaining = order.quantity_mw
        fills: list[tuple[Resting, float, tuple]] = []
        rejected = 0
        for entry in opposite.in_priority():
            if remaining <= EPS_MW or not order.crosses(entry.order):
                break
            whole = entry.order.restriction == "AON"
            if whole and entry.remaining_mw > remaining + EPS_MW:
                continue  # a resting AON order cannot be filled partly
            g = self._columns[order.order_id] + self._columns[entry.order.order_id]
            upper = min(remaining, entry.remaining_mw)
            q = self.limits.max_quantity(headroom, g, upper)
            if whole and q < entry.remaining_mw - EPS_MW:
                q = 0.0
            after = ac_excess
            if q > EPS_MW and self.ac is not None:
                # a resting AON order is confirmed whole or not at all: no halving
                q, after = self._ac_quantity(order, entry.order, q, dp, dq, ac_excess,
                                             0 if whole else AC_HALVINGS)
            if q <= EPS_MW:
                rejected += 1
                continue
            ac_excess = after
            self._move(order, entry.order, q, dp, dq)
            headroom -= q * g
            remaining -= q
            fills.append((entry, q, opposite.priority_of(entry)))
        if all_or_none and remaining > EPS_MW:
            fills = []  # tentative fills undone: FOK is killed, AON rests whole
            remaining = order.quantity_mw
        else:
            self.headroom, self.delta_p, self.delta_q = headroom, dp, dq
            if self.ac is not None:
                self.ac_excess = ac_excess
            for entry, q, priority in fills:
                self._confirm(order, entry, q, priority, opposite)
        matched = order.quantity_mw - remaining
        status = self._rest_or_cancel(order, remaining, matched)
        outcome = OrderOutcome(order, matched, status, rejected, time.perf_counter() - start)
        self.outcomes.append(outcome)
        return outcome

    def _move(self, a: Order, b: Order, q: float, dp: np.ndarray, dq: np.ndarray) -> None:
        """Add a match of ``q`` MW between ``a`` and ``b`` to the net-demand changes."""
        for o in (a, b):
            _shift(self.limits.feeder, o, q, dp, dq)

    def _ac_quantity(self, a: Order, b: Order, q: float, dp, dq, excess, halvings: int):
        """The largest of q, q/2, ... (``halvings`` halvings) that the AC check confirms
        after the changes ``dp``, ``dq`` so far, with the excesses after it; (0, ``excess``)
        when none is."""
        for _ in range(halvings + 1):
            trial_p, trial_q = dp.copy(), dq.copy()
            self._move(a, b, q, trial_p, trial_q)
            after = self.ac.accepts(trial_p, trial_q, excess)
            if after is not None:
                return q, after
            q /= 2.0
        return 0.0, excess

    def _confirm(self, order: Order, entry: Resting, q: float, priority: tuple,
                 book: OrderBook) -> None:
        buy, sell = (order, entry.order) if order.side == BUY else (entry.order, order)
        self.trades.append(Trade(buy.order_id, sell.order_id, q, buy.price, sell.price,
                                 buy.value, sell.value, order.arrival, order.order_id, priority))
        for o in (buy, sell):
            self.activation_mw[o.order_id] = self.activation_mw.get(o.order_id, 0.0) + q
        entry.remaining_mw -= q
        if entry.remaining_mw <= EPS_MW:
            book.remove(entry)

    def _rest_or_cancel(self, order: Order, remaining: float, matched: float) -> str:
        if remaining <= EPS_MW:
            return "filled"
        if order.restriction in ("IOC", "FOK"):
            return "partial_cancelled" if matched > EPS_MW else "cancelled"
        self.books[order.side].add(order, remaining)
        return "partial" if matched > EPS_MW else "rested"

    def run(self, orders: list[Order]) -> ContinuousMarket:
        """Submit ``orders`` in arrival order (ties: by order id)."""
        for o in sorted(orders, key=lambda o: (o.arrival, o.order_id)):
            self.submit(o)
        return self

    def trade_table(self) -> pd.DataFrame:
        """One row per trade (units in the column names)."""
        cols = ["buy_id", "sell_id", "quantity_mw", "buy_price_eur_per_mwh",
                "sell_price_eur_per_mwh", "surplus_eur", "welfare_eur", "time_h"]
        return pd.DataFrame([(t.buy_id, t.sell_id, t.quantity_mw, t.buy_price, t.sell_price,
                              t.surplus_eur, t.welfare_eur, t.time) for t in self.trades],
                            columns=cols)

    def declared_welfare_eur(self) -> float:
        """Welfare at the declared prices, sum (buy price - sell price) x quantity [EUR]: what
        a welfare-maximising auction of the same orders maximises."""
        return float(sum(t.surplus_eur for t in self.trades))


def _shift(feeder: Feeder, order: Order, q: float, dp: np.ndarray, dq: np.ndarray) -> None:
    """Add ``q`` MW of ``order``'s activation to the net-demand changes ``dp`` [MW], ``dq``
    [MVAr] per bus, in place: a sell ("up") order lowers its bus's net demand, a buy ("down")
    order raises it; reactive change = active change x tan_phi."""
    j = feeder.bus_index(order.bus)
    sign = -1.0 if order.direction == "up" else 1.0
    dp[j] += sign * q
    dq[j] += sign * q * order.tan_phi


def net_demand_change(feeder: Feeder, orders: list[Order],
                      activation_mw: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Change of net demand per feeder bus [MW, MVAr] once ``activation_mw`` (MW per order
    id) is delivered: a sell ("up") order lowers its bus's net demand, a buy ("down") order
    raises it; reactive change = active change x tan_phi."""
    dp, dq = np.zeros(feeder.n_buses), np.zeros(feeder.n_buses)
    for o in orders:
        a = activation_mw.get(o.order_id, 0.0)
        if a:
            _shift(feeder, o, a, dp, dq)
    return dp, dq


def state_after(state: GridState, changes: dict[str, tuple[np.ndarray, np.ndarray]]) -> GridState:
    """``state`` with the net-demand ``changes`` per feeder name applied (matches are
    balanced within a feeder, so the transmission injections stay)."""
    p = {k: v + changes[k][0] if k in changes else v.copy() for k, v in state.feeder_p.items()}
    q = {k: v + changes[k][1] if k in changes else v.copy() for k, v in state.feeder_q.items()}
    return GridState(state.tx_injection.copy(), p, q)


KPI_UNITS = {
    "orders": "-", "transactions": "-", "volume": "MWh", "social_welfare": "EUR",
    "declared_welfare": "EUR", "market_surplus": "EUR", "buyer_surplus": "EUR",
    "seller_surplus": "EUR", "utilisation_buy": "%", "utilisation_sell": "%",
    "network_rejections": "-", "latency_mean": "ms", "latency_p95": "ms",
    "latency_max": "ms", "runtime": "s",
}
"""Unit of every KPI of :func:`market_kpis` (volume: MW over the one-hour period)."""


def market_kpis(markets: list[ContinuousMarket]) -> dict[str, float]:
    """Seed 003 Table 6 KPIs of one trading session over one or more feeders' markets.

    * transactions: number of confirmed matches; volume: their quantity [MWh];
    * social welfare: sum (buyer's true value - seller's true cost) x quantity; declared
      welfare: the same at the declared prices (= market surplus under pay-as-bid);
    * surplus per side: buyers sum (value - price paid) q, sellers sum (price received -
      cost) q, the market operator sum (buy price - sell price) q [EUR];
    * utilisation: matched / offered volume per side [%];
    * latency: processing time per order (mean, 95th percentile, max) [ms]; runtime: their
      sum [s] (seed 003's "total computational runtime").
    """
    trades = [t for m in markets for t in m.trades]
    outcomes = [o for m in markets for o in m.outcomes]
    offered = {side: sum(o.order.quantity_mw for o in outcomes if o.order.side == side)
               for side in (BUY, SELL)}
    volume = sum(t.quantity_mw for t in trades)
    surplus = sum(t.surplus_eur for t in trades)  # = declared welfare under pay-as-bid
    latency_ms = 1e3 * np.array([o.seconds for o in outcomes]) if outcomes else np.zeros(1)
    return {
        "orders": float(len(outcomes)),
        "transactions": float(len(trades)),
        "volume": volume,
        "social_welfare": sum(t.welfare_eur for t in trades),
        "declared_welfare": surplus,
        "market_surplus": surplus,
        "buyer_surplus": sum((t.buy_value - t.buy_price) * t.quantity_mw for t in trades),
        "seller_surplus": sum((t.sell_price - t.sell_value) * t.quantity_mw for t in trades),
        "utilisation_buy": 100.0 * volume / offered[BUY] if offered[BUY] > 0 else 0.0,
        "utilisation_sell": 100.0 * volume / offered[SELL] if offered[SELL] > 0 else 0.0,
        "network_rejections": float(sum(o.rejected_by_network for o in outcomes)),
        "latency_mean": float(latency_ms.mean()),
        "latency_p95": float(np.percentile(latency_ms, 95)),
        "latency_max": float(latency_ms.max()),
        "runtime": float(latency_ms.sum() / 1e3),
    }


def kpi_table(kpis: dict[str, float]) -> pd.DataFrame:
    """The KPIs as a statistics table: kpi, value, unit."""
    return pd.DataFrame({"kpi": list(kpis), "value": list(kpis.values()),
                         "unit": [KPI_UNITS[k] for k in kpis]})
