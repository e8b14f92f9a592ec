"""The single imbalance market (SIM) of a TSO: reserve activation and the single imbalance price.

Seed 000 (ALEXANDER D4.1) KER 3 and Vatandoust et al. (EEM 2023), restated in flexgame's
IDR reference (§1-§2): per quarter-hour the TSO activates reserve bids against the residual
system imbalance R [MW] and settles every imbalance position at one price,

    min  sum_r A+_r s+_r - sum_r A-_r s-_r
    s.t. sum_r s-_r - sum_r s+_r = R                       (dual: the imbalance price)
         0 <= s+_r <= Smax+_r,  0 <= s-_r <= Smax-_r

R > 0 is a generation surplus (downward bids s-, most-paying first: the highest A- first),
R < 0 a deficit (upward bids s+, cheapest first). Prices A are EUR/MWh (a downward bid's A-
is what its provider pays the TSO per MWh; it may be negative). The single imbalance price
is the activation price of the marginal activated bid. Where the LP's dual is not unique, at
R = 0 and where R ends exactly at the end of a bid, the prices between the two neighbouring
bids are all optimal duals; :meth:`MeritOrder.price` takes the marginal *activated* bid's
(at R = 0: the first bid in the direction of ``lean``, IDR §2), and
:meth:`MeritOrder.price_interval` gives the whole interval for the bilevel model, which
picks the end that favours its leader (:mod:`flexgame.games.brp`).

A residual beyond all bids' capacity in its direction is left unmet (reported, priced at the
last bid in that direction); the clearing does not fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets.errors import FlexgameInputError

BOUNDARY_TOLERANCE_MW = 1e-9
"""A residual within this of the end of a bid [MW] is at that end (the price is not unique)."""


def _as_array(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(a).all():
        raise FlexgameInputError(f"reserve bids: {name} must be finite numbers; got {a.tolist()}")
    return a


@dataclass(frozen=True, eq=False)  # array fields: compare their data explicitly
class ReserveBids:
    """The TSO's reserve bids of one quarter-hour (Table I of Vatandoust et al.).

    Attributes:
        up_price: A+ per upward bid [EUR/MWh] (the TSO pays it per MWh activated).
        up_mw: Smax+ per upward bid [MW].
        down_price: A- per downward bid [EUR/MWh] (the provider pays it per MWh activated).
        down_mw: Smax- per downward bid [MW].
    """

    up_price: np.ndarray
    up_mw: np.ndarray
    down_price: np.ndarray
    down_mw: np.ndarray

    def __post_init__(self):
        for name in ("up_price", "up_mw", "down_price", "down_mw"):
            object.__setattr__(self, name, _as_array(getattr(self, name), name))
        for side in ("up", "down"):
            price, mw = getattr(self, f"{side}_price"), getattr(self, f"{side}_mw")
            if len(price) != len(mw) or not len(price):
                raise FlexgameInputError(f"reserve bids: {side}_price and {side}_mw need the "
                                         f"same number (at least one) of bids")
            if (mw <= 0).any():
                raise FlexgameInputError(f"reserve bids: {side}_mw must be > 0 MW; got "
                                         f"{mw.tolist()}")

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> ReserveBids:
        """From a table with columns ``direction`` (up/down), ``price_eur_per_mwh`` and
        ``quantity_mw`` (one row per bid), e.g. read from a user's CSV file."""
        missing = {"direction", "price_eur_per_mwh", "quantity_mw"} - set(table.columns)
        if missing:
            raise FlexgameInputError(f"reserve bids table: missing columns {sorted(missing)}")
        bad = set(table.direction) - {"up", "down"}
        if bad:
            raise FlexgameInputError(f"reserve bids table: direction {sorted(bad)[0]!r} is not "
                                     "allowed; choose up or down")
        up, down = table[table.direction == "up"], table[table.direction == "down"]
        return cls(up.price_eur_per_mwh, up.quantity_mw, down.price_eur_per_mwh,
                   down.quantity_mw)

    def with_down_price(self, bid: int, price: float) -> ReserveBids:
        """These bids with downward bid ``bid`` (0-based) priced at ``price`` [EUR/MWh]."""
        down = self.down_price.copy()
        down[bid] = price
        return ReserveBids(self.up_price, self.up_mw, down, self.down_mw)

    def __repr__(self) -> str:
        return (f"ReserveBids({len(self.up_price)} up, {self.up_mw.sum():g} MW, "
                f"{self.up_price.min():g}..{self.up_price.max():g} EUR/MWh; "
                f"{len(self.down_price)} down, {self.down_mw.sum():g} MW, "
                f"{self.down_price.min():g}..{self.down_price.max():g} EUR/MWh)")


@dataclass(frozen=True, eq=False)  # array fields: compare their data explicitly
class SIMOutcome:
    """The SIM of one quarter-hour.

    Attributes:
        residual_mw: R, the imbalance the TSO balances [MW] (> 0 surplus).
        price: the single imbalance price [EUR/MWh].
        up_mw, down_mw: activation per upward / downward bid, in the bids' order [MW].
        cost_eur_per_h: the SIM objective, sum A+ s+ - sum A- s- [EUR/h].
        unmet_mw: residual beyond every bid in its direction [MW] (0 when balanced).
    """

    residual_mw: float
    price: float
    up_mw: np.ndarray
    down_mw: np.ndarray
    cost_eur_per_h: float
    unmet_mw: float

    def __repr__(self) -> str:
        unmet = f", {self.unmet_mw:g} MW UNMET" if self.unmet_mw > 0 else ""
        return (f"SIMOutcome(R {self.residual_mw:g} MW, price {self.price:g} EUR/MWh, up "
                f"{self.up_mw.sum():g} MW, down {self.down_mw.sum():g} MW{unmet})")


class MeritOrder:
    """The reserve bids in activation order: upward by increasing A+, downward by
    decreasing A- (ties in the bids' order), with their cumulative MW."""

    def __init__(self, bids: ReserveBids):
        self.bids = bids
        self.up_order = np.argsort(bids.up_price, kind="stable")
        self.down_order = np.argsort(-bids.down_price, kind="stable")
        self.up_price = bids.up_price[self.up_order]
        self.down_price = bids.down_price[self.down_order]
        self.up_end = np.cumsum(bids.up_mw[self.up_order])      # [MW]
        self.down_end = np.cumsum(bids.down_mw[self.down_order])

    def __repr__(self) -> str:
        return f"MeritOrder({self.bids!r})"

    def _side(self, residual: float):
        """(prices, cumulative ends) of the direction that balances ``residual``."""
        return (self.down_price, self.down_end) if residual > 0 else (self.up_price, self.up_end)

    def breakpoints(self) -> np.ndarray:
        """Residuals [MW] at which the price may change: 0 and +-the end of every bid but
        the last of its direction."""
        return np.r_[-self.up_end[:-1][::-1], 0.0, self.down_end[:-1]]

    def price_interval(self, residual: float) -> tuple[float, float]:
        """The optimal duals of the SIM's balance row at ``residual`` [MW]: (low, high)
        [EUR/MWh], equal inside a bid; at R = 0 from the first downward to the first upward
        price; at the end of a bid the prices of it and the next bid. Beyond every bid, the
        last bid's price (the residual is unmet)."""
        if abs(residual) <= BOUNDARY_TOLERANCE_MW:
            return float(self.down_price[0]), float(self.up_price[0])
        prices, ends = self._side(residual)
        r = abs(residual)
        j = int(np.searchsorted(ends, r - BOUNDARY_TOLERANCE_MW))  # the bid R ends in
        if j >= len(ends):
            return float(prices[-1]), float(prices[-1])
        at_end = abs(ends[j] - r) <= BOUNDARY_TOLERANCE_MW and j + 1 < len(ends)
        pair = (prices[j], prices[j + 1]) if at_end else (prices[j], prices[j])
        return float(min(pair)), float(max(pair))

    def price(self, residual: float, lean: float = 1.0) -> float:
        """The single imbalance price at ``residual`` [MW]: the marginal activated bid's
        [EUR/MWh]; at R = 0 the first bid in the direction of ``lean`` (the sign of the
        system imbalance before the BRP's response, IDR §2: > 0 downward, else upward)."""
        if abs(residual) <= BOUNDARY_TOLERANCE_MW:
            return float(self.down_price[0] if lean > 0 else self.up_price[0])
        prices, ends = self._side(residual)
        j = int(np.searchsorted(ends, abs(residual) - BOUNDARY_TOLERANCE_MW))
        return float(prices[min(j, len(prices) - 1)])

    def clear(self, residual: float, lean: float = 1.0) -> SIMOutcome:
        """Activate the bids in merit order against ``residual`` [MW] (> 0 surplus)."""
        b = self.bids
        up, down = np.zeros(len(b.up_price)), np.zeros(len(b.down_price))
        order, sizes, target = ((self.down_order, b.down_mw, down) if residual > 0
                                else (self.up_order, b.up_mw, up))
        left = abs(residual)
        for i in order:
            target[i] = min(sizes[i], left)
            left -= target[i]
        cost = float(b.up_price @ up - b.down_price @ down)
        return SIMOutcome(float(residual), self.price(residual, lean), up, down, cost,
                          max(left, 0.0) if abs(residual) > BOUNDARY_TOLERANCE_MW else 0.0)

    def clear_horizon(self, residual: np.ndarray, lean: np.ndarray | None = None
                      ) -> pd.DataFrame:
        """The SIM of each quarter-hour of a horizon (each independent): one row per
        quarter-hour with residual [MW], price [EUR/MWh], up and down activation [MW],
        cost [EUR/h] and unmet residual [MW]."""
        residual = np.asarray(residual, dtype=float)
        lean = np.ones(len(residual)) if lean is None else np.asarray(lean, dtype=float)
        rows = []
        for r, l in zip(residual, lean):
            out = self.clear(r, l)
            rows.append(dict(residual_mw=r, price_eur_per_mwh=out.price,
                             up_mw=out.up_mw.sum(), down_mw=out.down_mw.sum(),
                             cost_eur_per_h=out.cost_eur_per_h, unmet_mw=out.unmet_mw))
        return pd.DataFrame(rows)


def sim_lp(bids: ReserveBids, residual: float):
    """The SIM as an LP on HiGHS (:class:`~flexgame.markets.lp.CompiledLP`), columns
    [s+ (bids' order), s- (bids' order)], one balance row sum s- - sum s+ = ``residual``: the
    formulation the merit order solves, for tests and for users who add constraints. A
    residual beyond the bids' capacity makes it infeasible (the merit order reports the
    unmet part instead)."""
    from flexgame.markets.lp import CompiledLP

    n_up, n_down = len(bids.up_price), len(bids.down_price)
    cost = np.r_[bids.up_price, -bids.down_price]
    row = np.r_[-np.ones(n_up), np.ones(n_down)][None, :]
    return CompiledLP.from_arrays(cost, row, [residual], [residual], np.zeros(n_up + n_down),
                                  np.r_[bids.up_mw, bids.down_mw])
