"""Strategy spaces of FSPs (SPEC §7).

A pure strategy is a tuple of indices into configurable grids: (markup, withholding), or
(markup, withholding, forwarded markup) when FSPs may re-price forwarded bids. Declared price
of bid b under markup m:

* multiplicative: p_b = min(c_b * m, cap)
* additive:       p_b = min(c_b + m, cap)   [m in EUR/MW]

with c_b the true cost; offered quantity q_b * (1 - w) for withheld share w. Index 0 of the
markup grid is the truthful markup (1 multiplicative, 0 additive); the grid must be sorted.

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

MARKUP_KINDS = ("multiplicative", "additive")

Strategy = tuple[int, ...]
"""(markup index, withholding index[, forwarded markup index])."""


@dataclass
class StrategySpace:
    """The discrete strategy set shared by all FSPs.

    Attributes:
        markups: sorted grid; the first entry must be truthful (1.0 or 0.0).
        kind: multiplicative or additive.
        price_cap: highest price a bid may declare [EUR/MW].
        withholding: shares of capacity an FSP may withhold, first entry 0.
        reprice_forwarded: strategies carry a third index, the markup of forwarded bids.
        per_resource: an FSP chooses one strategy per resource (bid) instead of one for its
            pool; the players of the game are then its resources (see the module docstring).
    """

    markups: list[float] = field(default_factory=lambda: list(np.round(np.linspace(1.0, 2.4, 15), 3)))
    kind: str = "multiplicative"
    price_cap: float = 500.0
    withholding: list[float] = field(default_factory=lambda: [0.0])
    reprice_forwarded: bool = False
    per_resource: bool = False

    def __post_init__(self) -> None:
        require_choice("markup kind", self.kind, MARKUP_KINDS)
        m = np.asarray(self.markups, dtype=float)
        truthful = 1.0 if self.kind == "multiplicative" else 0.0
        if len(m) == 0 or m[0] != truthful or np.any(np.diff(m) <= 0):
            raise FlexgameInputError(
                f"markups={m.tolist()} must be increasing and start at the truthful {truthful}"
            )
        w = np.asarray(self.withholding, dtype=float)
        if len(w) == 0 or w[0] != 0 or np.any((w < 0) | (w >= 1)):
            raise FlexgameInputError(f"withholding={w.tolist()} must start at 0 with shares in [0, 1)")
        if self.price_cap <= 0:
            raise FlexgameInputError(f"price_cap={self.price_cap} must be > 0 EUR/MW")

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
        raw = cost * m if self.kind == "multiplicative" else cost + m
        return np.minimum(raw, np.maximum(self.price_cap, cost))


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

    def markup_of(self, strategy: Strategy) -> float:
        return float(self.space.markups[strategy[0]])
