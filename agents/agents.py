"""Mesa agents of the flexibility market (ALEXANDER D4.1, KER 2): FSPs (the leaders, who
reason), market operators (the followers, one per market layer of the scheme) and system
operators (whose needs and networks the markets serve).

Each round of :class:`flexgame.agents.model.FlexMarketModel` the FSP agents compute their own
moves (best responses and the like, :mod:`flexgame.games.best_response`), and every agent then
observes the round's outcome: its FSP's profit, its layer's clearing, its network's state.
"""

from __future__ import annotations

from collections import Counter

import mesa
import numpy as np

from flexgame.games.best_response import best_response, sampled_best_response, sampled_payoffs
from flexgame.games.payoff import Outcome
from flexgame.games.strategies import Strategy


class FSPAgent(mesa.Agent):
    """A flexibility service provider, or one resource of an FSP that prices per resource
    (a player of the game, see :mod:`flexgame.games.strategies`).

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

    def __repr__(self) -> str:
        owner = "" if self.fsp == self.name else f" of {self.fsp}"
        return (f"FSPAgent({self.name}{owner}, level {self.level}, markup {self.markup:.3g}, "
                f"profit {self.profit_eur:.2f} EUR)")

    @property
    def markup(self) -> float:
        """Markup of its strategy (expected markup of its mixed strategy) [-, or EUR/MW]."""
        space = self.model.bid_map.space
        if self.mixed is None:
            return self.model.bid_map.markup_of(self.strategy)
        return float(self.mixed @ [space.markups[s[0]] for s in space.strategies])

    # --- its moves ---------------------------------------------------------------------------
    def best_response(self, profile: dict[str, Strategy]) -> Strategy:
        """Its exact best response to ``profile`` (iterated best response, level-k)."""
        return best_response(self.model.evaluator, profile, self.name,
                             tie_rule=self.model.reasoning.tie_rule).strategy

    def response_to_sample(self, beliefs: list[dict[str, Strategy]]) -> tuple[Strategy, float]:
        """Its best response to opponent profiles drawn from its belief (cognitive hierarchy)
        and the standard error of the expected payoff it is after [EUR]."""
        response = sampled_best_response(self.model.evaluator, beliefs, self.name)
        return response.strategy, response.standard_error

    def payoffs_against(self, profiles: list[dict[str, Strategy]]) -> np.ndarray:
        """Its FSP's profit [EUR] for each of its strategies (columns) against each of the
        sampled ``profiles`` (rows): what its logit response weighs."""
        return sampled_payoffs(self.model.evaluator, profiles, self.name)

    def observe(self, outcome: Outcome) -> None:
        self.profit_eur = outcome.profit[self.fsp]


class MarketOperatorAgent(mesa.Agent):
    """The operator of one market layer of the scheme (the scheme's pipeline clears it); it
    records its layer of every round's outcome.

    Attributes:
        layer: layer name (e.g. "tso", "dso:case69", "common").
        operator: the system operator buying in it ("TSO", "DSO:<feeder>", "joint").
        cost_eur, accepted_mw: procurement cost [EUR] and accepted volume [MW] of the round
            (of the mean outcome for a mixed profile).
    """

    def __init__(self, model, layer: str, operator: str):
        super().__init__(model)
        self.layer, self.operator = layer, operator
        self.cost_eur = 0.0
        self.accepted_mw = 0.0

    def __repr__(self) -> str:
        return (f"MarketOperatorAgent({self.layer} for {self.operator}, {self.cost_eur:.2f} EUR, "
                f"{self.accepted_mw:.3g} MW)")

    def observe(self, outcome: Outcome) -> None:
        self.cost_eur = outcome.layer_cost_eur[self.layer]
        self.accepted_mw = outcome.layer_accepted_mw[self.layer]


TRANSMISSION = "transmission"
"""The TSO's network, as the ex-post assessment names it."""


class SystemOperatorAgent(mesa.Agent):
    """The TSO (its network is the transmission grid; it has a need, > 0 upward) or a DSO (its
    network is its feeder, whose base congestion is its need). Every round it checks its
    network in the ex-post assessment of the round's activations
    (:func:`flexgame.markets.grid_assessment.assess_state`).

    Attributes:
        name: "TSO" or "DSO:<feeder>".
        network: "transmission" or the feeder's name.
        need_mw: the TSO's need [MW] (0 for a DSO).
        unmet_need_mw: the TSO need the round's clearing left unmet [MW] (0 for a DSO).
        congestions: lines of its network over their rating.
        voltage_violations: buses of its network outside their voltage limits (feeders only;
            transmission voltages are not modelled).
    """

    def __init__(self, model, name: str, network: str, need_mw: float = 0.0):
        super().__init__(model)
        self.name, self.network, self.need_mw = name, network, need_mw
        self.unmet_need_mw = 0.0
        self.congestions = 0
        self.voltage_violations = 0

    def __repr__(self) -> str:
        need = (f", need {self.need_mw:.3g} MW, unmet {self.unmet_need_mw:.3g} MW"
                if self.network == TRANSMISSION else "")
        return (f"SystemOperatorAgent({self.name}{need}, {self.congestions} congestions, "
                f"{self.voltage_violations} voltage violations)")

    def observe(self, outcome: Outcome, violations: Counter) -> None:
        """Record the round: ``violations`` counts elements over their limit per
        (network, kind) of the ex-post assessment ("line" or "voltage")."""
        if self.network == TRANSMISSION:
            self.unmet_need_mw = outcome.unmet_need_mw
        self.congestions = violations[self.network, "line"]
        self.voltage_violations = violations[self.network, "voltage"]
