"""The strategic game on a scenario: FSPs reason against a built coordination scheme
(ALEXANDER D4.1 KER 2), and the outcome is compared with truthful bidding.

:class:`Game` is the notebook face of the Mesa model (:class:`flexgame.agents.model.
FlexMarketModel`) that ``flexgame run reasoning=...`` runs: ``Game(scenario, "common")
.iterated_best_response()`` plays the game and returns a :class:`StrategicOutcome` with its
metrics (:func:`flexgame.games.metrics.strategic_metrics`), the clearing of the final profile
and its ex-post assessment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.agents.model import FlexMarketModel
from flexgame.experiments.evaluation import Clearing, clear
from flexgame.experiments.scenario import Scenario
from flexgame.games.best_response import best_response
from flexgame.games.equilibria import Equilibrium, equilibria_from_starts
from flexgame.games.metrics import certified_outcome, strategic_metrics
from flexgame.games.reasoning import ReasoningConfig
from flexgame.games.strategies import StrategyConfig, StrategySpace
from flexgame.markets.ac_assessment import assess_with
from flexgame.markets.grid_assessment import GridReport
from flexgame.markets.kpis import clearing_kpis
from flexgame.markets.schemes import ClearingConfig, ClearingResult
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.settlement import SETTLEMENTS, settle


@dataclass
class StrategicOutcome:
    """How a reasoning process ended.

    Attributes:
        model: the Mesa model after the run (agents, rounds, DataCollector).
        metrics: strategic metrics (:func:`flexgame.games.metrics.strategic_metrics`).
        result: the clearing of the final profile; grid: its ex-post assessment.
        kpis: KPIs of the final profile against the truthful common market.
        final: the final profile: the likeliest profile of the outcome's distribution.
        equilibrium: the outcome as a named concept with its certificate.
        equilibria: the distinct equilibria found (several with ``starts``), cheapest first.
    """

    model: FlexMarketModel
    metrics: dict
    result: ClearingResult
    grid: GridReport
    kpis: dict
    final: dict
    equilibrium: Equilibrium
    equilibria: list[Equilibrium]

    @property
    def declared_bids(self) -> pd.DataFrame:
        """The bid table with the final profile's declared prices and quantities."""
        price, quantity, forward = self.model.bid_map.declare(self.final)
        declared = self.model.bids.assign(price_eur_per_mw=price, quantity_mw=quantity)
        if forward is not None:
            declared["forward_price_eur_per_mw"] = forward
        return declared

    def strategies(self) -> pd.DataFrame:
        """Final strategy, markup and FSP profit per player."""
        space = self.model.bid_map.space
        return pd.DataFrame(
            [dict(player=a.name, fsp=a.fsp, level=a.level,
                  markup_index=self.final[a.name][0],
                  withheld_share=space.withholding[self.final[a.name][1]],
                  markup=space.markups[self.final[a.name][0]], expected_markup=a.markup,
                  forward_markup=(space.markups[self.final[a.name][2]]
                                  if space.reprice_forwarded else a.markup),
                  profit_eur=a.profit_eur) for a in self.model.fsps])

    def equilibria_table(self) -> pd.DataFrame:
        """One row per distinct equilibrium found: concept, expected cost (payments and
        declared) [EUR], epsilon [EUR], support size, how it was found."""
        return pd.DataFrame([dict(concept=e.concept, cost_eur=e.outcome.payment_eur,
                                  declared_cost_eur=e.outcome.cost_eur, epsilon_eur=e.epsilon,
                                  epsilon_standard_error_eur=e.epsilon_standard_error,
                                  support_size=e.support_size, note=e.note)
                             for e in self.equilibria])

    def distribution(self) -> pd.DataFrame:
        """The outcome's distribution: one row per (support profile, player) with its
        probability, strategy and markup."""
        space = self.model.bid_map.space
        return pd.DataFrame([dict(profile=k, probability=float(q), player=p,
                                  markup_index=s[0], markup=space.markups[s[0]])
                             for k, (d, q) in enumerate(zip(self.equilibrium.profiles,
                                                            self.equilibrium.probabilities))
                             for p, s in d.items()])

    def rounds(self) -> pd.DataFrame:
        """One row per collected step (round 0 = the start): procurement cost [EUR], unmet
        need [MW], mean markup [-]."""
        return self.model.datacollector.get_model_vars_dataframe().reset_index(drop=True)

    def plot(self):
        """Procurement cost and mean markup per reasoning round (a matplotlib Figure)."""
        from matplotlib.figure import Figure

        from flexgame.markets.metrics import metric

        rounds = self.rounds()
        fig = Figure(figsize=(8.0, 3.2), layout="constrained")
        for ax, name in zip(fig.subplots(1, 2), ("procurement_cost_eur", "mean_markup")):
            ax.plot(rounds["round"], rounds[name], marker="o")
            ax.set_xlabel("reasoning round [-]")
            ax.set_ylabel(metric(name).axis_label)
            ax.xaxis.get_major_locator().set_params(integer=True)
        m = self.metrics
        fig.suptitle(f"{self.model.scheme.name}: {m['equilibrium_concept']} after "
                     f"{m['iterations']} rounds, price of anarchy {m['price_of_anarchy']:.3f}")
        return fig

    def __repr__(self) -> str:
        m = self.metrics
        return (f"StrategicOutcome({m['equilibrium_concept']} after {m['iterations']} rounds, "
                f"cost {m['strategic_cost']:.2f} EUR vs truthful {m['truthful_cost']:.2f} EUR, "
                f"price of anarchy {m['price_of_anarchy']:.3f}, epsilon {m['epsilon']:.3g} EUR)")


class Game:
    """FSPs bidding strategically into a coordination scheme on a scenario.

    Args:
        scenario: system and (truthful) bids.
        scheme: scheme name or :class:`ClearingConfig`; ``options`` as for
            :func:`flexgame.experiments.evaluation.clear`.
        settlement: payment rule the FSPs' profits follow.
        strategy: the FSPs' strategy space (settings or an explicit grid); default
            :class:`StrategyConfig` ().
        seed: seed of the model's generator (update order, sampling).
        grid_assessment: the ex-post check of the outcomes, "linear" or "ac".
    """

    def __init__(self, scenario: Scenario, scheme: str | ClearingConfig = "common",
                 settlement: str = "pay_as_bid",
                 strategy: StrategyConfig | StrategySpace | None = None, seed: int = 0,
                 grid_assessment: str = "linear", **options):
        require_choice("settlement", settlement, SETTLEMENTS)
        self.scenario, self.settlement, self.seed = scenario, settlement, seed
        self.grid_assessment = grid_assessment
        self.truthful: Clearing = clear(scenario, scheme, settlement=settlement,
                                        grid_assessment=grid_assessment, **options)
        strategy = strategy or StrategyConfig()
        self.space = strategy.space() if isinstance(strategy, StrategyConfig) else strategy
        unmet_need = self.truthful.scheme.config.penalties.unmet_need
        if not self.space.price_cap < unmet_need:
            raise FlexgameInputError(
                f"price_cap={self.space.price_cap:g} must be below the scheme's penalty for "
                f"unmet need ({unmet_need:g} EUR/MW): a pivotal FSP would price at it")

    def play(self, reasoning: ReasoningConfig, progress: bool = False) -> StrategicOutcome:
        """Run the reasoning process to its end and evaluate where it ended: as a named
        solution concept with its certificate (:func:`flexgame.games.metrics.
        certified_outcome`; reasoning ``equilibrium``: the equilibrium of the model's last
        step, and with ``starts`` > 1 the distinct equilibria from further starts)."""
        reasoning.validate()
        truthful, scenario = self.truthful, self.scenario
        model = FlexMarketModel(truthful.scheme, self.space, reasoning, self.settlement,
                                seed=self.seed, truthful=truthful.result)
        model.run(progress=progress)
        evaluator = model.evaluator
        found = model.equilibrium or certified_outcome(
            evaluator, model.status, model.profile, model.cycle, model.mixed,
            reasoning.samples, model.rng)
        equilibria = None
        if reasoning.name == "equilibrium" and reasoning.starts > 1:
            equilibria = self._more_equilibria(model, found)
        final = found.profiles[int(np.argmax(found.probabilities))]  # the likeliest profile
        result = evaluator.result(final)  # cleared during the game: kept
        grid = assess_with(self.grid_assessment, scenario.system, scenario.bids,
                           result.activation_mw)
        kpis = clearing_kpis(scenario.system, scenario.bids, result, truthful.common_cost_eur,
                             grid, evaluator.outcome(final).payment_eur)
        metrics = strategic_metrics(evaluator, found, model.status, model.round, final,
                                    model.cycle, truthful.common_cost_eur, equilibria)
        metrics["sampling_error_max"] = max(model.sampling_error.values(), default=0.0)
        metrics["clearings"] = evaluator.clearings
        return StrategicOutcome(model, metrics, result, grid, kpis, final, found,
                                equilibria or [found])

    def _more_equilibria(self, model: FlexMarketModel, first: Equilibrium) -> list[Equilibrium]:
        """The distinct equilibria reached from ``starts - 1`` further starting profiles:
        all FSPs at the top of the grid, the level-1 profile (every FSP's best response to
        truthful bids), then profiles drawn with the model's generator."""
        r, space, evaluator = model.reasoning, model.bid_map.space, model.evaluator
        players = model.bid_map.players
        truthful = model.bid_map.truthful()
        candidates = [{p: space.uniform(len(space.markups) - 1) for p in players},
                      {p: best_response(evaluator, truthful, p).strategy for p in players}]
        while len(candidates) < r.starts - 1:
            candidates.append({p: space.strategies[int(model.rng.integers(len(space.strategies)))]
                               for p in players})
        tol = r.tolerance_share * evaluator.outcome(truthful).payment_eur
        more = equilibria_from_starts(evaluator, candidates[:r.starts - 1], model.rng,
                                      r.max_rounds, r.update, tol=tol,
                                      max_profiles=r.max_profiles, cce_rounds=r.cce_rounds,
                                      max_clearings=r.max_clearings)
        found = [first]
        for eq in more.equilibria:
            if not any(eq.same_distribution(other) for other in found):
                found.append(eq)
        return sorted(found, key=lambda e: e.outcome.payment_eur)

    def iterated_best_response(self, max_rounds: int = 30, update: str = "gauss_seidel",
                               **options) -> StrategicOutcome:
        """Iterated best response to a fixed point, a cycle or ``max_rounds``."""
        return self.play(ReasoningConfig("ibr", max_rounds=max_rounds, update=update,
                                         **options))

    def level_k(self, level: int = 2, **options) -> StrategicOutcome:
        """k-level reasoning up to ``level``."""
        return self.play(ReasoningConfig("level_k", level=level, **options))

    def cognitive_hierarchy(self, level: int = 2, tau: float = 1.5,
                            **options) -> StrategicOutcome:
        """Cognitive hierarchy with Poisson(``tau``) beliefs."""
        return self.play(ReasoningConfig("cognitive_hierarchy", level=level, tau=tau,
                                         **options))

    def equilibrium(self, starts: int = 1, tolerance_share: float = 0.01,
                    **options) -> StrategicOutcome:
        """Iterated best response, then a certified pure, mixed or coarse correlated
        equilibrium; ``starts`` > 1 searches from more starting profiles."""
        return self.play(ReasoningConfig("equilibrium", starts=starts,
                                         tolerance_share=tolerance_share, **options))

    def logit(self, rationality: float = 0.5, max_rounds: int = 20,
              **options) -> StrategicOutcome:
        """Logit quantal response with rationality lambda [1/EUR]."""
        return self.play(ReasoningConfig("logit", rationality=rationality,
                                         max_rounds=max_rounds, **options))

    def settle(self, outcome: StrategicOutcome):
        """Payments and FSP profits of the final profile under the game's rule."""
        return settle(self.truthful.scheme, outcome.result, self.settlement)

    def __repr__(self) -> str:
        return (f"Game({self.truthful.scheme.name}, {self.settlement}, "
                f"{self.scenario.bids.fsp.nunique()} FSPs, {len(self.space.strategies)} "
                f"strategies each)")

