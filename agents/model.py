"""The Mesa model of the strategic flexibility market (ALEXANDER D4.1, KER 2).

One model step is one round of the reasoning process of :mod:`flexgame.games.dynamics` (a
round of best responses, one more level of reasoning, or one round of logit responses): the
process asks the FSP agents for their moves, then every agent observes the round's outcome
(FSPs their profit, market operators their layer's clearing, system operators their network
in the ex-post assessment). The clearing scheme is built once; every payoff is a re-clearing
of it. A DataCollector records every round (round 0 = the start). All randomness comes from
the model's seeded generator ``self.rng``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import mesa
import numpy as np
import pandas as pd

from flexgame.agents.agents import (TRANSMISSION, FSPAgent, MarketOperatorAgent,
                                    SystemOperatorAgent)
from flexgame.games.dynamics import (RUNNING, DynamicsResult, Round, cognitive_hierarchy,
                                     iterated_best_response, level_k, logit_dynamics)
from flexgame.games.equilibria import Equilibrium, find_equilibrium
from flexgame.games.parallel import WorkerPool, resolve_jobs
from flexgame.games.payoff import GameEvaluator, Outcome, mean_outcome
from flexgame.games.reasoning import ReasoningConfig
from flexgame.games.strategies import BidMap, StrategySpace
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import TOLERANCE, assess_state
from flexgame.markets.schemes import ClearingResult


class FlexMarketModel(mesa.Model):
    """Strategic FSPs bidding into a built coordination scheme.

    Args:
        scheme: a built :class:`markets.schemes.Scheme`.
        space: the FSPs' strategy space (default: ``reasoning.strategy.space()``).
        reasoning: reasoning configuration (default: :class:`ReasoningConfig` ()).
        settlement: settlement rule.
        seed: seed of the model's generator.
        truthful: the scheme's clearing of the truthful bids, when the caller has it (it
            is taken instead of clearing them again; see :meth:`GameEvaluator.remember`).

    Attributes:
        evaluator: the game's :class:`GameEvaluator`; bid_map: its :class:`BidMap`.
        fsps: the FSP agents (one per player), in player order.
        order: the players' update order (Gauss-Seidel: drawn from ``rng``, first of all
            draws whatever the reasoning).
        round: rounds played; status: "running", then how the process ended ("truthful"
            when no game is played; reasoning ``equilibrium``: how its best responses ended,
            the equilibrium's concept is in :attr:`equilibrium`).
        profile: the current pure profile; mixed: the mixed profile (logit), else None.
        current_outcome: the current round's outcome (logit: the mean over :attr:`sample`).
        history: the profile of every round (round 0 = the start).
        cycle: the profiles of a best-response cycle, in order (empty otherwise).
        sampling_error: standard error of sampled expected payoffs per player [EUR].
        sample: logit: the pure profiles drawn from the current mixed profile.
        equilibrium: reasoning ``equilibrium``: the equilibrium computed where iterated best
            response ended (one last step after its rounds), else None.
    """

    def __init__(self, scheme, space: StrategySpace | None = None,
                 reasoning: ReasoningConfig | None = None, settlement: str = "pay_as_bid",
                 seed: int = 0, truthful: ClearingResult | None = None):
        super().__init__(rng=np.random.default_rng(seed))
        reasoning = ReasoningConfig() if reasoning is None else reasoning
        reasoning.validate()
        space = reasoning.strategy.space() if space is None else space
        if not 0 <= reasoning.level0_markup_index < len(space.markups):
            raise FlexgameInputError(
                f"level0_markup_index={reasoning.level0_markup_index} is out of range; allowed: "
                f"0..{len(space.markups) - 1} (the markup grid has {len(space.markups)} points)")
        self.scheme, self.bids, self.reasoning = scheme, scheme.bids, reasoning
        self.bid_map = BidMap(scheme.bids, space)
        self.evaluator = GameEvaluator(scheme, self.bid_map, settlement,
                                       cache_profiles=reasoning.cache_profiles)
        if truthful is not None:
            self.evaluator.remember(self.bid_map.truthful(), truthful)
        jobs = resolve_jobs(reasoning.n_jobs)
        if jobs > 1 and reasoning.name != "truthful":
            self.evaluator.deviation_payoffs.pool = WorkerPool(self.evaluator, jobs)
        system = scheme.system
        bm = self.bid_map
        for p in bm.players:
            level = reasoning.levels.get(p, reasoning.levels.get(bm.owner[p], reasoning.level))
            FSPAgent(self, p, bm.owner[p], bm.rows[p], level)
        SystemOperatorAgent(self, "TSO", TRANSMISSION, system.tso_need_mw)
        for feeder in system.feeders:
            SystemOperatorAgent(self, f"DSO:{feeder.name}", feeder.name)
        self.fsps = self.agents_by_type[FSPAgent]
        self.order = [a.name for a in self.fsps]
        if reasoning.update == "gauss_seidel":
            self.order = list(self.rng.permutation(self.order))
        start = self._level0()
        for layer in self.evaluator.result(start).layers:
            MarketOperatorAgent(self, layer.name, layer.operator)
        self.round = 0
        self.status = RUNNING
        self.cycle: list[dict] = []
        self.sampling_error: dict[str, float] = {}
        self.sample: list[dict] = []
        self.history: list[dict] = []
        self.equilibrium: Equilibrium | None = None
        self._ended: DynamicsResult | None = None
        self.datacollector = self._collector()
        self._observe(start)
        self._rounds = self._process(start)
        self.running = reasoning.name != "truthful"

    @staticmethod
    def _collector() -> mesa.DataCollector:
        """What every round records: the round's cost, unmet need and mean markup; each FSP
        agent's markup and profit, each market operator's layer, each system operator's
        check of its network."""
        return mesa.DataCollector(
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
                SystemOperatorAgent: {"operator": "name", "unmet_need_mw": "unmet_need_mw",
                                      "congestions": "congestions",
                                      "voltage_violations": "voltage_violations"},
            },
        )

    def __repr__(self) -> str:
        r = self.reasoning
        how = {"ibr": f"ibr {r.update}", "logit": f"logit lambda {r.rationality:g}/EUR",
               "cognitive_hierarchy": f"cognitive_hierarchy tau {r.tau:g}"}.get(r.name, r.name)
        return (f"FlexMarketModel({self.scheme.name}, {how}, {len(self.fsps)} FSP agents, "
                f"round {self.round}: {self.status})")

    # --- the profile and its outcome ----------------------------------------------------------
    @property
    def profile(self) -> dict:
        return {a.name: a.strategy for a in self.fsps}

    @property
    def mixed(self) -> dict[str, np.ndarray] | None:
        """The players' mixed strategies (logit response), else None."""
        if self.fsps[0].mixed is None:
            return None
        return {a.name: a.mixed for a in self.fsps}

    def _level0(self) -> dict:
        r, space = self.reasoning, self.bid_map.space
        names = [a.name for a in self.fsps]
        if r.level0 == "random":
            n = len(space.markups)
            return {f: space.uniform(int(self.rng.integers(n))) for f in names}
        if r.level0 == "fixed":
            return {f: space.uniform(int(r.level0_markup_index)) for f in names}
        return {f: space.truthful for f in names}

    def _process(self, start: dict) -> Iterator[Round]:
        """The reasoning process from ``start``, its moves made by the FSP agents."""
        r = self.reasoning
        agent = {a.name: a for a in self.fsps}
        levels = {a.name: a.level for a in self.fsps}
        if r.name in ("ibr", "equilibrium"):
            return iterated_best_response(lambda p, profile: agent[p].best_response(profile),
                                          start, self.order, r.update, r.max_rounds)
        if r.name == "level_k":
            return level_k(lambda p, profile: agent[p].best_response(profile), start, levels)
        if r.name == "cognitive_hierarchy":
            return cognitive_hierarchy(lambda p, beliefs: agent[p].response_to_sample(beliefs),
                                       start, levels, r.tau, r.samples, self.rng)
        if r.name == "logit":
            return logit_dynamics(lambda p, profiles: agent[p].payoffs_against(profiles), start,
                                  self.bid_map.space.strategies, r.rationality, r.samples,
                                  r.max_rounds, self.rng)
        return iter(())

    def _observe(self, profile: dict) -> None:
        """Play ``profile`` (with :attr:`sample` for a mixed profile) and let every agent
        observe its outcome; collect the round."""
        for a in self.fsps:
            a.strategy = profile[a.name]
        if self.sample:
            outcome = mean_outcome([self.evaluator.outcome(p) for p in self.sample])
        else:
            outcome = self.evaluator.outcome(profile)
        self._observe_outcome(profile, outcome)

    def _observe_outcome(self, profile: dict, outcome: Outcome) -> None:
        """Let every agent observe ``outcome`` (of ``profile``, or expected); collect."""
        self.current_outcome: Outcome = outcome
        self.fsps.do("observe", outcome)
        self.agents_by_type[MarketOperatorAgent].do("observe", outcome)
        self.agents_by_type[SystemOperatorAgent].do("observe", outcome,
                                                    self._violations(outcome.activation_mw))
        self.history.append(dict(profile))
        self.datacollector.collect(self)

    def _violations(self, activation_mw: np.ndarray) -> Counter:
        """Elements over their limit per (network, kind) in the ex-post assessment of
        ``activation_mw`` (for a mixed profile, its mean: the expected flows)."""
        state = self.scheme.base_state.after(self.scheme.effects, activation_mw)
        elements = assess_state(self.scheme.system, state).elements
        over = elements.excess_pct.to_numpy() > 100 * TOLERANCE
        return Counter(zip(elements.network.to_numpy()[over], elements.kind.to_numpy()[over]))

    # --- driving -------------------------------------------------------------------------------
    def step(self) -> None:
        """One round of the reasoning process (reasoning ``equilibrium``: after the last round
        of best responses, one step computes the equilibrium where they ended)."""
        if self._ended is not None:
            self._equilibrium_step()
            return
        rnd = next(self._rounds)
        self.round = rnd.number
        if rnd.mixed is not None:
            for a in self.fsps:
                a.mixed = rnd.mixed[a.name]
        self.sample = rnd.sample
        self.sampling_error = dict(rnd.sampling_error)
        self._observe(rnd.profile)
        if rnd.status != RUNNING:
            self.status, self.cycle = rnd.status, rnd.cycle
            if self.reasoning.name == "equilibrium":
                self._ended = DynamicsResult(rnd.status, rnd.profile, list(self.history),
                                             rnd.cycle)
            else:
                self.running = False

    def _equilibrium_step(self) -> None:
        """Certify a fixed point, or compute a mixed Nash or coarse correlated equilibrium
        from the cycle (or the capped profile); its tolerance is ``tolerance_share`` of the
        truthful payments. The FSP agents then hold their marginal mixed strategies and
        observe the equilibrium's expected outcome."""
        r = self.reasoning
        tol = r.tolerance_share * self.evaluator.outcome(self.bid_map.truthful()).payment_eur
        eq = find_equilibrium(self.evaluator, self._ended, self.rng, tol=tol,
                              max_profiles=r.max_profiles, cce_rounds=r.cce_rounds,
                              max_clearings=r.max_clearings)
        self.equilibrium, self._ended = eq, None
        self.round += 1
        strategies = self.bid_map.space.strategies
        index = {s: i for i, s in enumerate(strategies)}
        for a in self.fsps:
            a.mixed = np.zeros(len(strategies))
            for profile, q in zip(eq.profiles, eq.probabilities):
                a.mixed[index[profile[a.name]]] += q
            a.strategy = strategies[int(np.argmax(a.mixed))]
        self.sample = []
        self._observe_outcome(self.profile, eq.outcome)
        self.running = False

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
        self.close()
        if self.reasoning.name == "truthful":
            self.status = "truthful"

    def close(self) -> None:
        """Stop the worker processes, if any (also done when the model is collected)."""
        pool = self.evaluator.deviation_payoffs.pool
        if pool is not None:
            pool.close()
            self.evaluator.deviation_payoffs.pool = None

    def operators_table(self) -> pd.DataFrame:
        """One row per (round, operator): each market operator's layer cost [EUR] and
        accepted MW, and each system operator's check of its network (unmet need [MW],
        congestions and voltage violations ex post)."""
        parts = []
        for kind, cls in (("market", MarketOperatorAgent), ("system", SystemOperatorAgent)):
            frame = self.datacollector.get_agenttype_vars_dataframe(cls).reset_index()
            parts.append(frame.rename(columns={"Step": "step"}).assign(kind=kind))
        table = pd.concat(parts, ignore_index=True).drop(columns=["AgentID"], errors="ignore")
        first = ["step", "kind", "operator", "layer"]
        table = table[first + [c for c in table.columns if c not in first]]
        return table.sort_values(["step", "kind"], kind="stable", ignore_index=True)

    def rounds_table(self) -> pd.DataFrame:
        """One row per (round, FSP): markup, profit, level; with the round's cost."""
        agents = self.datacollector.get_agenttype_vars_dataframe(FSPAgent).reset_index()
        model = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        model["step"] = np.arange(len(model))
        agents = agents.rename(columns={"Step": "step"})
        return agents.merge(model, on="step", how="left").drop(columns=["AgentID"], errors="ignore")
