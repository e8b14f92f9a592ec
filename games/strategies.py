"""Strategy spaces of FSPs: how an FSP may misreport its bids (ALEXANDER D4.1, KER 2).

A pure strategy is a tuple of indices into configurable grids: (markup, withholding), or
(markup, withholding, forwarded markup) when FSPs may re-price forwarded bids. Declared price
of bid b under markup m:

* multiplicative: p_b = min(c_b * m, cap)
* additive:       p_b = min(c_b + m, cap)   [m in EUR/MW]

* to_cap:         p_b = c_b + m * (cap - c_b)   [m in [0, 1]: the share of the way from the
  true cost to the price cap; every bid's grid ends exactly at the cap]

with c_b the true cost and cap the market's price cap; offered quantity q_b * (1 - w) for
withheld share w. Index 0 of the markup grid is the truthful markup (1 multiplicative, 0
additive or to_cap); the grid must be sorted. The default is ``to_cap``: the strategy space
then reaches the price cap, an economic bound (a regulated cap below the TSO's penalty for
unmet need), instead of stopping at an arbitrary largest markup that would decide where FSPs
end; its grid is denser near the true cost (``grid_power``).

Who chooses (the players of the game): by default one player per FSP, whose strategy applies
to all its bids (its pool); with ``per_resource`` one player per (FSP, resource), each choosing
the strategy of one bid and maximising the profit of the whole FSP (its owner). A fixed point
of best responses is then stable against every single-resource deviation of an FSP; a joint
deviation of several of its resources is not searched (the product space grows as
|strategies| ^ |pool|).

Re-pricing (``reprice_forwarded``): in multi-level schemes a bid left uncleared by the first
layer it was offered in is forwarded; its price in every later layer is set by the forwarded
markup index (default: one price for all layers, i.e. this option off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.options import check, option

MARKUP_KINDS = ("to_cap", "multiplicative", "additive")
TRUTHFUL_MARKUP = {"to_cap": 0.0, "multiplicative": 1.0, "additive": 0.0}
"""The markup that declares the true cost, per kind."""
MARKUP_UNITS = {"to_cap": "-", "multiplicative": "-", "additive": "EUR/MW"}
"""Unit of a markup, per kind (to_cap: share of the way from cost to cap)."""


def _withholding_rule(value) -> str | None:
    if len(value) == 0 or value[0] != 0 or any(not 0 <= w < 1 for w in value):
        return "must start at 0, with shares in [0, 1)"
    return None


@dataclass
class StrategyConfig:
    """The FSPs' strategy space as settings (see :meth:`space`).

    Attributes:
        kind: to_cap (price = cost + markup x (cap - cost), markups from 0 to 1: every bid's
            grid ends at the price cap), multiplicative (price = cost x markup) or additive
            (cost + markup [EUR/MW]); multiplicative and additive prices are capped.
        markup_max: the largest markup of a multiplicative or additive grid [-, or EUR/MW].
        markup_points: points of the grid, the first one truthful.
        grid_power: to_cap grid: markup_k = (k / (points - 1)) ^ grid_power, denser near the
            true cost for a power above 1.
        price_cap: the market's price cap: no declared price above it [EUR/MW]; a regulated
            bound, below the TSO's penalty for unmet need (``scheme.penalties.unmet_need``),
            so that a pivotal FSP meets the cap rather than the TSO's valuation of unmet
            need (D4.1 KER 2: pivotal FSPs bid up to what the buyer tolerates).
        withholding: shares of capacity an FSP may withhold (the first must be 0).
        per_resource: an FSP prices each resource on its own instead of its pool as one.
        reprice_forwarded: FSPs may re-price bids forwarded to later layers.
    """

    kind: str = option("to_cap", choices=MARKUP_KINDS)
    markup_max: float = option(2.4, only_for=("kind", ("multiplicative", "additive")))
    markup_points: int = option(15, low=2)
    grid_power: float = option(2.0, low=0, low_open=True, only_for=("kind", ("to_cap",)))
    price_cap: float = option(500.0, low=0, low_open=True)
    withholding: list[float] = option(factory=lambda: [0.0], rule=_withholding_rule)
    per_resource: bool = option(False)
    reprice_forwarded: bool = option(False)

    def cross_check(self):
        first = TRUTHFUL_MARKUP.get(self.kind, 0.0)
        if self.kind != "to_cap" and not self.markup_max > first:
            yield "markup_max", f"must exceed the truthful {self.kind} markup {first}"

    def validate(self) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting."""
        check(self)

    def markups(self) -> list[float]:
        """The markup grid, truthful first."""
        if self.kind == "to_cap":
            share = np.linspace(0.0, 1.0, self.markup_points) ** self.grid_power
        else:
            share = np.linspace(TRUTHFUL_MARKUP[self.kind], self.markup_max, self.markup_points)
        return [float(m) for m in np.round(share, 6)]

    def space(self) -> "StrategySpace":
        """The strategy space these settings describe."""
        self.validate()
        return StrategySpace(markups=self.markups(), kind=self.kind, price_cap=self.price_cap,
                             withholding=[float(w) for w in self.withholding],
                             reprice_forwarded=self.reprice_forwarded,
                             per_resource=self.per_resource)


Strategy = tuple[int, ...]
"""(markup index, withholding index[, forwarded markup index])."""


@dataclass
class StrategySpace:
    """The discrete strategy set shared by all FSPs: an explicit markup grid (the settings,
    :class:`StrategyConfig`, build one with :meth:`StrategyConfig.space`).

    Attributes:
        markups: sorted grid; the first entry must be truthful (1.0 multiplicative, 0.0
            otherwise); to_cap markups lie in [0, 1].
        kind: to_cap, multiplicative or additive (see the module docstring).
        price_cap: highest price a bid may declare [EUR/MW].
        withholding: shares of capacity an FSP may withhold, first entry 0.
        reprice_forwarded: strategies carry a third index, the markup of forwarded bids.
        per_resource: an FSP chooses one strategy per resource (bid) instead of one for its
            pool; the players of the game are then its resources (see the module docstring).
    """

    markups: list[float] = field(
        default_factory=lambda: StrategyConfig(kind="multiplicative").markups())
    kind: str = "multiplicative"
    price_cap: float = 500.0
    withholding: list[float] = field(default_factory=lambda: [0.0])
    reprice_forwarded: bool = False
    per_resource: bool = False

    def __post_init__(self) -> None:
        require_choice("markup kind", self.kind, MARKUP_KINDS)
        m = np.asarray(self.markups, dtype=float)
        truthful = TRUTHFUL_MARKUP[self.kind]
        if len(m) == 0 or m[0] != truthful or np.any(np.diff(m) <= 0):
            raise FlexgameInputError(
                f"markups={m.tolist()} must be increasing and start at the truthful {truthful}"
            )
        if self.kind == "to_cap" and m[-1] > 1:
            raise FlexgameInputError(f"markups={m.tolist()} of kind to_cap must lie in [0, 1]")
        problem = _withholding_rule(list(self.withholding))
        if problem:
            raise FlexgameInputError(f"withholding={list(self.withholding)} {problem}")
        if not self.price_cap > 0:
            raise FlexgameInputError(f"price_cap={self.price_cap} must be > 0 EUR/MW")

    def __repr__(self) -> str:
        m, w = [float(x) for x in self.markups], [float(x) for x in self.withholding]
        unit = " EUR/MW" if MARKUP_UNITS[self.kind] == "EUR/MW" else ""
        held = "1 withholding level" if len(w) == 1 else \
            f"{len(w)} withholding levels {w[0]}-{w[-1]}"
        flags = (", per resource" if self.per_resource else "") + \
            (", forwarded bids re-priced" if self.reprice_forwarded else "")
        return (f"StrategySpace({len(m)} {self.kind} markups {m[0]}-{m[-1]}{unit}, "
                f"cap {self.price_cap:g} EUR/MW, {held}{flags})")

    @property
    def strategies(self) -> list[Strategy]:
        """All pure strategies, lowest markup and least withholding first."""
        pairs = [(i, j) for i in range(len(self.markups)) for j in range(len(self.withholding))]
        if not self.reprice_forwarded:
            return pairs
        return [(i, j, k) for i, j in pairs for k in range(len(self.markups))]

    def uniform(self, markup_index: int) -> Strategy:
        """The strategy bidding ``markup_index`` in every layer, withholding nothing."""
        return (markup_index, 0, markup_index) if self.reprice_forwarded else (markup_index, 0)

    @property
    def truthful(self) -> Strategy:
        return self.uniform(0)

    def price(self, cost: np.ndarray, markup_index) -> np.ndarray:
        """Declared price [EUR/MW] of true cost ``cost`` [EUR/MW] under a markup index (or
        one index per entry of ``cost``); never below the true cost."""
        m = np.asarray(self.markups, dtype=float)[markup_index]
        cap = np.maximum(self.price_cap, cost)
        if self.kind == "to_cap":
            return cost + m * (cap - cost)
        raw = cost * m if self.kind == "multiplicative" else cost + m
        return np.minimum(raw, cap)


class BidMap:
    """Turns a strategy profile (one strategy per player) into declared bids.

    Attributes:
        space: the strategy space.
        fsps: FSP names (sorted); ``fsp_rows[f]``: rows of FSP f's bids.
        players: who chooses a strategy: the FSPs, or "<fsp>/<resource>" per bid when the
            space is ``per_resource``; ``rows[p]``: the bid rows player p prices;
            ``owner[p]``: its FSP.
        player_of_bid, fsp_of_bid: per bid, the position of its player in ``players`` and
            of its FSP in ``fsps``.
    """

    def __init__(self, bids: pd.DataFrame, space: StrategySpace):
        self.space = space
        self.fsps = sorted(bids.fsp.unique())
        self.fsp_rows = {f: np.flatnonzero((bids.fsp == f).to_numpy()) for f in self.fsps}
        if space.per_resource:
            self.rows = {f"{f}/{bids.resource.iat[r]}": np.array([r])
                         for f in self.fsps for r in self.fsp_rows[f]}
            self.owner = {p: bids.fsp.iat[r[0]] for p, r in self.rows.items()}
        else:
            self.rows = dict(self.fsp_rows)
            self.owner = {f: f for f in self.fsps}
        self.players = list(self.rows)
        self.player_of_bid = np.empty(len(bids), dtype=int)
        for i, p in enumerate(self.players):
            self.player_of_bid[self.rows[p]] = i
        self.fsp_of_bid = np.searchsorted(self.fsps, bids.fsp.to_numpy())
        self.cost = bids.cost_eur_per_mw.to_numpy(float)
        self.quantity = bids.quantity_mw.to_numpy(float)

    def __repr__(self) -> str:
        return (f"BidMap({len(self.fsps)} FSPs, {len(self.players)} players, "
                f"{len(self.cost)} bids)")

    def truthful(self) -> dict[str, Strategy]:
        return {p: self.space.truthful for p in self.players}

    def declare(self, profile: dict[str, Strategy]) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray | None]:
        """Declared price [EUR/MW], offered quantity [MW] and, when re-pricing is on, the
        price of forwarded bids [EUR/MW] (else None), per bid, for a strategy per player."""
        chosen = np.array([profile[p] for p in self.players])[self.player_of_bid]
        price = self.space.price(self.cost, chosen[:, 0])
        withheld = np.asarray(self.space.withholding, dtype=float)[chosen[:, 1]]
        quantity = self.quantity * (1.0 - withheld)
        forward = self.space.price(self.cost, chosen[:, 2]) if self.space.reprice_forwarded else None
        return price, quantity, forward

    def deviate(self, declared: tuple[np.ndarray, np.ndarray, np.ndarray | None], player: str,
                strategy: Strategy) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`declare` of a profile whose declared bids are ``declared`` with ``player``
        switching to ``strategy`` (the same arrays as declaring that profile anew; only the
        player's bids are computed)."""
        price, quantity, forward = (None if a is None else a.copy() for a in declared)
        rows = self.rows[player]
        price[rows] = self.space.price(self.cost[rows], np.full(len(rows), strategy[0]))
        withheld = np.full(len(rows), np.asarray(self.space.withholding, dtype=float)[strategy[1]])
        quantity[rows] = self.quantity[rows] * (1.0 - withheld)
        if forward is not None:
            forward[rows] = self.space.price(self.cost[rows], np.full(len(rows), strategy[2]))
        return price, quantity, forward

    def markup_of(self, strategy: Strategy) -> float:
        return float(self.space.markups[strategy[0]])
