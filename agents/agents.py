"""Mesa agents of the flexibility market: FSPs (leaders), market operators (followers, one
per market layer of the scheme) and system operators (whose needs the markets serve)."""

from __future__ import annotations

import mesa
import numpy as np

from flexgame.games.strategies import Strategy


class FSPAgent(mesa.Agent):
    """A flexibility service provider, or one resource of an FSP that prices per resource
    (a player of the game, see :mod:`games.strategies`).

    Attributes:
        name: player id: the FSP id in the bid table, or "<fsp>/<resource>".
        fsp: the FSP it bids for (its own name when it prices its whole pool).
        bid_rows: rows of the bids it prices in the bid table.
        level: reasoning level (k-level and cognitive hierarchy).
        strategy: current strategy (markup index, withholding index[, forwarded markup]);
            under logit response the most likely strategy of its mixed strategy.
        mixed: its mixed strategy (probability per strategy of the space) under logit
            response, else None.
        profit_eur: profit of its FSP at the current profile [EUR] (expected, for mixed).
    """

    def __init__(self, model, name: str, fsp: str, bid_rows: np.ndarray, level: int):
        super().__init__(model)
        self.name, self.fsp, self.bid_rows, self.level = name, fsp, bid_rows, level
        self.strategy: Strategy = model.bid_map.space.truthful
        self.mixed: np.ndarray | None = None
        self.profit_eur = 0.0

    @property
    def markup(self) -> float:
        """Markup of its strategy (expected markup of its mixed strategy) [-, or EUR/MW]."""
        space = self.model.bid_map.space
        if self.mixed is None:
            return self.model.bid_map.markup_of(self.strategy)
        return float(self.mixed @ [space.markups[s[0]] for s in space.strategies])

    @property
    def true_cost_eur_per_mw(self) -> np.ndarray:
        return self.model.bids.cost_eur_per_mw.to_numpy()[self.bid_rows]


class MarketOperatorAgent(mesa.Agent):
    """Clears one layer of the scheme; records its last outcome.

    Attributes:
        layer: layer name (e.g. "tso", "dso:case69", "common").
        operator: the system operator buying in it ("TSO", "DSO:<feeder>", "joint").
        cost_eur, accepted_mw: last procurement cost [EUR] and accepted volume [MW].
    """

    def __init__(self, model, layer: str, operator: str):
        super().__init__(model)
        self.layer, self.operator = layer, operator
        self.cost_eur = 0.0
        self.accepted_mw = 0.0


class SystemOperatorAgent(mesa.Agent):
    """The TSO (need in MW, > 0 upward) or a DSO (its feeder's base congestion)."""

    def __init__(self, model, name: str, need_mw: float = 0.0, feeder: str | None = None):
        super().__init__(model)
        self.name, self.need_mw, self.feeder = name, need_mw, feeder
