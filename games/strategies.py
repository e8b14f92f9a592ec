"""Strategy spaces of FSPs (SPEC §7).

A pure strategy of an FSP is a pair (markup index, withholding index) on a configurable
grid; it applies to all its bids (pooled). Declared price of bid b under markup m:

* multiplicative: p_b = min(c_b * m, cap)
* additive:       p_b = min(c_b + m, cap)   [m in EUR/MW]

with c_b the true cost; offered quantity q_b * (1 - w) for withheld share w. Index 0 of the
markup grid is the truthful markup (1 multiplicative, 0 additive); the grid must be sorted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from markets.errors import FlexgameInputError, require_choice

MARKUP_KINDS = ("multiplicative", "additive")

Strategy = tuple[int, int]
"""(markup index, withholding index)."""


@dataclass
class StrategySpace:
    """The discrete strategy set shared by all FSPs.

    Attributes:
        markups: sorted grid; the first entry must be truthful (1.0 or 0.0).
        kind: multiplicative or additive.
        price_cap: highest price a bid may declare [EUR/MW].
        withholding: shares of capacity an FSP may withhold, first entry 0.
    """

    markups: list[float] = field(default_factory=lambda: list(np.round(np.linspace(1.0, 2.4, 15), 3)))
    kind: str = "multiplicative"
    price_cap: float = 500.0
    withholding: list[float] = field(default_factory=lambda: [0.0])

    def __post_init__(self) -> None:
        require_choice("markup kind", self.kind, MARKUP_KINDS)
        m = np.asarray(self.markups, dtype=float)
        truthful = 1.0 if self.kind == "multiplicative" else 0.0
        if len(m) == 0 or m[0] != truthful or np.any(np.diff(m) <= 0):
            raise FlexgameInputError(
                f"markups={list(m)} must be increasing and start at the truthful {truthful}"
            )
        w = np.asarray(self.withholding, dtype=float)
        if len(w) == 0 or w[0] != 0 or np.any((w < 0) | (w >= 1)):
            raise FlexgameInputError(f"withholding={list(w)} must start at 0 with shares in [0, 1)")
        if self.price_cap <= 0:
            raise FlexgameInputError(f"price_cap={self.price_cap} must be > 0 EUR/MW")

    @property
    def strategies(self) -> list[Strategy]:
        """All pure strategies, lowest markup and least withholding first."""
        return [(i, j) for i in range(len(self.markups)) for j in range(len(self.withholding))]

    def price(self, cost: np.ndarray, markup_index: int) -> np.ndarray:
        m = self.markups[markup_index]
        raw = cost * m if self.kind == "multiplicative" else cost + m
        return np.minimum(raw, np.maximum(self.price_cap, cost))


class BidMap:
    """Turns a strategy profile (one strategy per FSP) into declared prices and quantities."""

    def __init__(self, bids: pd.DataFrame, space: StrategySpace):
        self.space = space
        self.fsps = sorted(bids.fsp.unique())
        self.rows = {f: np.flatnonzero((bids.fsp == f).to_numpy()) for f in self.fsps}
        self.cost = bids.cost_eur_per_mw.to_numpy(float)
        self.quantity = bids.quantity_mw.to_numpy(float)

    def truthful(self) -> dict[str, Strategy]:
        return {f: (0, 0) for f in self.fsps}

    def declare(self, profile: dict[str, Strategy]) -> tuple[np.ndarray, np.ndarray]:
        """Declared price [EUR/MW] and offered quantity [MW] per bid."""
        price = self.cost.copy()
        quantity = self.quantity.copy()
        for f, (mi, wi) in profile.items():
            r = self.rows[f]
            price[r] = self.space.price(self.cost[r], mi)
            quantity[r] = self.quantity[r] * (1.0 - self.space.withholding[wi])
        return price, quantity

    def markup_of(self, strategy: Strategy) -> float:
        return float(self.space.markups[strategy[0]])
