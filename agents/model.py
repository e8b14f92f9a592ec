"""The Mesa model of the strategic flexibility market.

One model step is one reasoning round (SPEC §7): a round of best responses (iterated best
response), one more level of reasoning (k-level, cognitive hierarchy) or one round of noisy
logit responses. The clearing scheme is built once; every payoff is a re-clearing of it. A
DataCollector records every round's profile (markups), procurement cost and FSP profits.
All randomness comes from the model's seeded generator ``self.rng``.
"""

from __future__ import annotations

import mesa
import numpy as np
import pandas as pd

from flexgame.agents.agents import FSPAgent, MarketOperatorAgent, SystemOperatorAgent
from flexgame.games.dynamics import (hierarchy_level, ibr_round, level_k_round, logit_response,
                            sample_profiles)
from flexgame.games.payoff import GameEvaluator, mean_outcome
from flexgame.games.reasoning import REASONINGS, ReasoningConfig
from flexgame.games.strategies import BidMap, StrategySpace
from flexgame.markets.errors import FlexgameInputError, require_choice

class FlexMarketModel(mesa.Model):
    """Strategic FSPs bidding into a built coordination scheme.

    Args:
        scheme: a built :class:`markets.schemes.Scheme`.
        space: the FSPs' strategy space.
        reasoning: reasoning configuration.
        settlement: settlement rule.
        seed: seed of the model's generator.
    """

    def __init__(self, scheme, space: StrategySpace, reasoning: ReasoningConfig,
                 settlement: str = "pay_as_bid", seed: int = 0):
        super().__init__(rng=np.random.default_rng(seed))
        reasoning.validate()
        if not 0 <= reasoning.level0_markup_index < len(space.markups):
            raise FlexgameInputError(
                f"level0_markup_index={reasoning.level0_markup_index} is out of range; allowed: "
                f"0..{len(space.markups) - 1} (the markup grid has {len(space.markups)} points)")
        self.scheme, self.bids, self.reasoning = scheme, scheme.bids, reasoning
        self.bid_map = BidMap(scheme.bids, space)
        self.evaluator = GameEvaluator(scheme, self.bid_map, settlement)
        system = scheme.system
        bm = self.bid_map
        for p in bm.players:
            level = reasoning.levels.get(p, reasoning.levels.get(bm.owner[p], reasoning.level))
            FSPAgent(self, p, bm.owner[p], bm.rows[p], level)
        SystemOperatorAgent(self, "TSO", system.tso_need_mw)
        for feeder in system.feeders:
            SystemOperatorAgent(self, f"DSO:{feeder.name}", feeder=feeder.name)
        for layer in scheme.clear().layers:
            MarketOperatorAgent(self, layer.name, layer.operator)
        self.fsps = self.agents_by_type[FSPAgent]
        self.level_of = {a.name: a.level for a in self.fsps}
        self.order = [a.name for a in self.fsps]
        if reasoning.update == "gauss_seidel":
            self.order = list(self.rng.permutation(self.order))
        self.round = 0
        self.status = "running"
        self.cycle: list[dict] = []
        self.sampling_error: dict[str, float] = {}
        self.sample: list[dict] = []  # pure profiles drawn from the mixed profile (logit)
        self.history: list[dict] = []
        self._seen: dict[tuple, int] = {}
        self._level_plays: list[dict] = []
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "round": "round",
                "procurement_cost_eur": lambda m: m.current_outcome.cost_eur,
                "unmet_need_mw": lambda m: m.current_outcome.unmet_need_mw,
                "mean_markup": lambda m: float(np.mean([a.markup for a in m.fsps])),
            },
            agenttype_reporters={
                FSPAgent: {"player": "name", "fsp": "fsp", "markup": "markup",
                           "withheld_index": lambda a: a.strategy[1],
                           "profit_eur": "profit_eur", "level": "level"},
                MarketOperatorAgent: {"layer": "layer", "operator": "operator",
                                      "cost_eur": "cost_eur", "accepted_mw": "accepted_mw"},
            },
        )
        self._set_profile(self._level0())
        self.running = reasoning.name != "truthful"

    # --- profile book-keeping ------------------------------------------------------------
    @property
    def profile(self) -> dict:
        return {a.name: a.strategy for a in self.fsps}

    @property
    def mixed(self) -> dict[str, np.ndarray] | None:
        """The players' mixed strategies (logit response), else None."""
        if self.fsps[0].mixed is None:
            return None
        return {a.name: a.mixed for a in self.fsps}

    @property
    def current_outcome(self):
        """Outcome of the current profile; for a mixed profile, the mean over its sample."""
        if self.sample:
            return mean_outcome([self.evaluator.outcome(p) for p in self.sample])
        return self.evaluator.outcome(self.profile)

    def _set_profile(self, profile: dict) -> None:
        for a in self.fsps:
            a.strategy = profile[a.name]
        out = self.current_outcome
        for a in self.fsps:
            a.profit_eur = out.profit[a.fsp]
        for op in self.agents_by_type[MarketOperatorAgent]:
            op.cost_eur = out.layer_cost_eur[op.layer]
            op.accepted_mw = out.layer_accepted_mw[op.layer]
        self.history.append(dict(profile))
        self._seen.setdefault(self.evaluator.key(profile), len(self.history) - 1)
        self.datacollector.collect(self)

    def _level0(self) -> dict:
        r, space = self.reasoning, self.bid_map.space
        names = [a.name for a in self.fsps]
        if r.level0 == "random":
            n = len(space.markups)
            return {f: space.uniform(int(self.rng.integers(n))) for f in names}
        if r.level0 == "fixed":
            return {f: space.uniform(int(r.level0_markup_index)) for f in names}
        return {f: space.truthful for f in names}

    # --- one reasoning round ---------------------------------------------------------------
    def step(self) -> None:
        self.round += 1
        r = self.reasoning
        if r.name == "ibr":
            self._ibr_round()
        elif r.name == "level_k":
            self._level_round(belief=None)
        elif r.name == "cognitive_hierarchy":
            self._level_round(belief="poisson")
        elif r.name == "logit":
            self._logit_round()

    def _ibr_round(self) -> None:
        before = self.profile
        new = ibr_round(self.evaluator, before, self.order, self.reasoning.update)
        key = self.evaluator.key(new)
        seen_at = self._seen.get(key)
        self._set_profile(new)
        if new == before:
            self.status, self.running = "converged", False
        elif seen_at is not None:
            self.status, self.running = "cycle", False
            self.cycle = self.history[seen_at:-1]
        elif self.round >= self.reasoning.max_rounds:
            self.status, self.running = "capped", False

    def _level_round(self, belief: str | None) -> None:
        """Round k computes what a level-k FSP plays; FSPs of level >= k adopt it."""
        k = self.round
        if not self._level_plays:
            self._level_plays = [self.history[0]]
        plays = self._level_plays
        if belief is None:
            nxt = level_k_round(self.evaluator, plays[k - 1])
        else:
            r = self.reasoning
            nxt, errors = hierarchy_level(self.evaluator, plays, r.tau, r.samples, self.rng)
            self.sampling_error.update({f: e for f, e in errors.items()
                                        if self.level_of[f] == k})
        plays.append(nxt)
        self._set_profile({a.name: plays[min(a.level, k)][a.name] for a in self.fsps})
        if k >= max(a.level for a in self.fsps):
            self.status, self.running = self.reasoning.name, False

    def _logit_round(self) -> None:
        """Every player takes its logit response to the others' mixed strategies (a point
        mass on the level-0 profile before round 1); the round's outcome is the mean over
        ``samples`` profiles drawn from the new mixed profile."""
        r, space = self.reasoning, self.bid_map.space
        mixed = self.mixed
        if mixed is None:
            index = {s: i for i, s in enumerate(space.strategies)}
            mixed = {a.name: np.eye(len(index))[index[a.strategy]] for a in self.fsps}
        step = logit_response(self.evaluator, mixed, r.rationality, r.samples, self.rng)
        self.sampling_error = step.standard_error
        for a in self.fsps:
            a.mixed = step.mixed[a.name]
        self.sample = sample_profiles(space.strategies, step.mixed, r.samples, self.rng)
        self._set_profile({a.name: space.strategies[int(np.argmax(a.mixed))] for a in self.fsps})
        if self.round >= r.max_rounds:
            self.status, self.running = "logit", False

    # --- driving -----------------------------------------------------------------------------
    def run(self, progress: bool = False) -> None:
        """Step until the reasoning process stops (tqdm bar over rounds if ``progress``)."""
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.reasoning.max_rounds, desc=f"{self.scheme.name} rounds",
                       leave=False)
        while self.running:
            self.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(cost=f"{self.current_outcome.cost_eur:.0f}", status=self.status)
        if bar is not None:
            bar.close()
        if self.reasoning.name == "truthful":
            self.status = "truthful"

    def rounds_table(self) -> pd.DataFrame:
        """One row per (round, FSP): markup, profit, level; with the round's cost."""
        agents = self.datacollector.get_agenttype_vars_dataframe(FSPAgent).reset_index()
        model = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        model["step"] = np.arange(len(model))
        agents = agents.rename(columns={"Step": "step"})
        return agents.merge(model, on="step", how="left").drop(columns=["AgentID"], errors="ignore")
