"""Clearing a coordination scheme on a scenario and judging it: ex-post grid assessment and
KPIs against the common market on the same bids (ALEXANDER D3.3 §4.1.3)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

from flexgame.experiments.scenario import Scenario
from flexgame.markets.ac_assessment import assess_with
from flexgame.markets.grid_assessment import GridReport
from flexgame.markets.kpis import clearing_kpis
from flexgame.markets.options import inert
from flexgame.markets.schemes import ClearingConfig, ClearingResult, Scheme
from flexgame.markets.errors import require_choice
from flexgame.markets.settlement import SETTLEMENTS, Settlement, settle


@dataclass
class Clearing:
    """A scheme built and cleared on a scenario with the scenario's own (declared) bids.

    Attributes:
        scenario: what was cleared.
        scheme: the built scheme (re-clear it with other bids: ``scheme.clear(price, ...)``).
        result: the clearing result (``result.statistics`` for tables by operator, FSP, layer).
        grid: the ex-post assessment of every activation.
        common_cost_eur: the truthful common market's cost on the same bids [EUR] (eta's
            reference: the least cost of meeting every need).
        build_s: time to build the scheme [s].
        settlement: the payment rule: the procurement cost is what the buyers pay under it.
    """

    scenario: Scenario
    scheme: Scheme
    result: ClearingResult
    grid: GridReport
    common_cost_eur: float
    build_s: float
    settlement: str = "pay_as_bid"
    _settlements: dict = field(default_factory=dict, repr=False)

    @property
    def kpis(self) -> dict:
        """Cost (payments under the settlement rule; the declared cost beside it),
        inefficiency vs common, grid safety, unqualified volume, unmet need, runtime (see
        :mod:`flexgame.markets.kpis`)."""
        s = self.scenario
        payment = (None if self.settlement == "pay_as_bid"
                   else self.settle(self.settlement).total_payment_eur)
        return {**clearing_kpis(s.system, s.bids, self.result, self.common_cost_eur, self.grid,
                                payment),
                "common_cost": self.common_cost_eur, "build_s": self.build_s}

    def settle(self, rule: str = "pay_as_bid") -> Settlement:
        """Payments and FSP profits under a settlement rule (computed once per rule)."""
        if rule not in self._settlements:
            self._settlements[rule] = settle(self.scheme, self.result, rule)
        return self._settlements[rule]

    def __repr__(self) -> str:
        return (f"Clearing({self.scheme.name}, cost {self.result.cost_eur:.2f} EUR, common "
                f"{self.common_cost_eur:.2f} EUR, {self.grid.congestions} congestions, "
                f"{self.grid.voltage_violations} voltage violations, unmet "
                f"{self.result.unmet_need_mw:.2f} MW)")


def clearing_config(scheme: str | ClearingConfig = "common", **options) -> ClearingConfig:
    """A validated :class:`ClearingConfig` from a scheme name and options; warns about options
    that have no effect in that scheme (``interface`` of the common market)."""
    config = scheme if isinstance(scheme, ClearingConfig) else ClearingConfig(scheme=scheme,
                                                                              **options)
    config.validate()
    for name, selector, values in inert(config):
        warnings.warn(f"{name}={getattr(config, name)!r} has no effect with scheme "
                      f"{config.scheme}; it applies to {', '.join(values)}", stacklevel=3)
    return config


def clear(scenario: Scenario, scheme: str | ClearingConfig = "common",
          common: Clearing | ClearingResult | None = None, settlement: str = "pay_as_bid",
          grid_assessment: str = "linear", **options) -> Clearing:
    """Build ``scheme`` on ``scenario``, clear it with the scenario's bids, assess it ex post.

    Args:
        scenario: system and bids.
        scheme: a scheme name (``"ml03"``) or a full :class:`ClearingConfig`.
        settlement: the payment rule (pay_as_bid, uniform, nodal, vcg): the cost KPIs are
            the buyers' payments under it.
        common: the common market's clearing of the same scenario, when already at hand
            (cleared here otherwise, or taken from this clearing when it is common).
        grid_assessment: the ex-post check, "linear" (PTDF + LinDistFlow, the default) or
            "ac" (AC power flows, :mod:`flexgame.markets.ac_assessment`: the grid KPIs are
            then AC's, with the linear model's error and ``flagged_ac`` beside them).
        options: clearing options (``interface="fixed"``, ``delta_mw=0.1``, ...).
    """
    require_choice("settlement", settlement, SETTLEMENTS)
    config = clearing_config(scheme, **options)
    start = time.perf_counter()
    built = Scheme(scenario.system, scenario.bids, config)
    build_s = time.perf_counter() - start
    result = built.clear()
    if config.scheme == "common":
        common_cost = result.cost_eur
    elif common is None:
        common_cost = Scheme(scenario.system, scenario.bids,
                             ClearingConfig(scheme="common", penalties=config.penalties,
                                            polygon_sides=config.polygon_sides)).clear().cost_eur
    else:
        common_cost = (common.result if isinstance(common, Clearing) else common).cost_eur
    grid = assess_with(grid_assessment, scenario.system, scenario.bids, result.activation_mw)
    return Clearing(scenario, built, result, grid, common_cost, build_s, settlement)
