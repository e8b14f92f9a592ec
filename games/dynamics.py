"""Reasoning dynamics: iterated best response, k-level reasoning, cognitive hierarchy and
logit response (SPEC §7).

* Iterated best response (IBR): Gauss-Seidel (FSPs update one after the other in a seeded
  order, each seeing the earlier updates) or Jacobi (all respond to the previous round).
  It stops at a fixed point (a pure Nash equilibrium of the discrete game), at a cycle (a
  profile seen before; its length and the rounds it spans are reported), or at the cap.
* k-level reasoning (Stahl & Wilson 1995; Nagel 1995): level 0 plays a rule (truthful,
  random or a fixed markup); a level-k FSP best-responds to everyone playing level k-1.
* Cognitive hierarchy (Camerer, Ho & Chong 2004): a level-k FSP believes others are of
  levels 0..k-1 with Poisson(tau) weights normalised over 0..k-1; its expected payoff is
  estimated by seeded sampling of the opponents' levels, with the standard error reported.
* Logit response (McKelvey & Palfrey 1995): each FSP draws its strategy with probability
  proportional to exp(lambda * payoff), a noisy best response.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import poisson

from games.best_response import best_response
from games.payoff import GameEvaluator
from games.strategies import Strategy

Profile = dict[str, Strategy]


@dataclass
class DynamicsResult:
    """Outcome of a reasoning process.

    Attributes:
        status: "converged", "cycle" or "capped" (or "level_k", "cognitive_hierarchy",
            "logit" for one-shot / noisy processes).
        profile: final profile.
        history: profile after every round (round 0 = the start).
        cycle: the profiles of a detected cycle, in order (empty otherwise).
        sampling_error: standard error of sampled expected payoffs per FSP [EUR] (mixed
            beliefs only).
    """

    status: str
    profile: Profile
    history: list[Profile]
    cycle: list[Profile] = field(default_factory=list)
    sampling_error: dict[str, float] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return len(self.history) - 1


def ibr_round(evaluator: GameEvaluator, profile: Profile, order: list[str],
              mode: str = "gauss_seidel") -> Profile:
    """One round of best responses."""
    new = dict(profile)
    for f in order:
        basis = new if mode == "gauss_seidel" else profile
        new[f] = best_response(evaluator, {**basis, f: profile[f]}, f).strategy
    return new


def iterated_best_response(evaluator: GameEvaluator, start: Profile, rng: np.random.Generator,
                           mode: str = "gauss_seidel", max_rounds: int = 50,
                           on_round=None) -> DynamicsResult:
    """Iterate best responses from ``start`` until a fixed point, a cycle or ``max_rounds``.

    The Gauss-Seidel order is drawn once from ``rng``. ``on_round(r, profile)`` is called
    after each round (progress reporting, data collection).
    """
    fsps = sorted(start)
    order = list(rng.permutation(fsps)) if mode == "gauss_seidel" else fsps
    history = [dict(start)]
    seen = {evaluator.key(start): 0}
    for r in range(1, max_rounds + 1):
        profile = ibr_round(evaluator, history[-1], order, mode)
        history.append(profile)
        if on_round is not None:
            on_round(r, profile)
        if profile == history[-2]:
            return DynamicsResult("converged", profile, history)
        k = evaluator.key(profile)
        if k in seen:
            return DynamicsResult("cycle", profile, history, cycle=history[seen[k]:-1])
        seen[k] = r
    return DynamicsResult("capped", history[-1], history)


def level0_profile(fsps: list[str], n_markups: int, rule: str, rng: np.random.Generator,
                   fixed_markup_index: int = 0) -> Profile:
    """Level-0 play: truthful, uniformly random markup, or a fixed markup index."""
    if rule == "truthful":
        return {f: (0, 0) for f in fsps}
    if rule == "random":
        return {f: (int(rng.integers(n_markups)), 0) for f in fsps}
    if rule == "fixed":
        return {f: (int(fixed_markup_index), 0) for f in fsps}
    raise ValueError(f"level-0 rule {rule!r}; allowed: truthful, random, fixed")


def level_k_profiles(evaluator: GameEvaluator, level0: Profile, max_level: int,
                     on_round=None) -> list[Profile]:
    """Profiles of levels 0..max_level: level k = everyone's best response to level k-1."""
    levels = [dict(level0)]
    for k in range(1, max_level + 1):
        prev = levels[-1]
        levels.append({f: best_response(evaluator, prev, f).strategy for f in prev})
        if on_round is not None:
            on_round(k, levels[-1])
    return levels


def level_k(evaluator: GameEvaluator, level0: Profile, levels: dict[str, int],
            on_round=None) -> DynamicsResult:
    """Each FSP plays the strategy of its own level (fixed per FSP)."""
    by_level = level_k_profiles(evaluator, level0, max(levels.values(), default=0), on_round)
    profile = {f: by_level[levels[f]][f] for f in level0}
    return DynamicsResult("level_k", profile, by_level + [profile])


def cognitive_hierarchy(evaluator: GameEvaluator, level0: Profile, levels: dict[str, int],
                        tau: float, rng: np.random.Generator, samples: int = 30,
                        on_round=None) -> DynamicsResult:
    """Cognitive hierarchy: level-k FSPs best-respond to sampled opponents whose levels are
    drawn from Poisson(tau) truncated to 0..k-1; strategies of a level are those the
    hierarchy assigns (computed level by level)."""
    max_level = max(levels.values(), default=0)
    fsps = sorted(level0)
    plays = [dict(level0)]  # plays[k][f]: strategy f would play if it were of level k
    errors: dict[str, float] = {}
    for k in range(1, max_level + 1):
        weights = poisson.pmf(np.arange(k), tau)
        weights = weights / weights.sum()
        draws = [rng.choice(k, size=len(fsps), p=weights) for _ in range(samples)]
        nxt = {}
        for i, f in enumerate(fsps):
            best, best_value, best_se = None, -np.inf, 0.0
            for s in evaluator.bid_map.space.strategies:
                values = []
                for d in draws:
                    opp = {g: plays[d[j]][g] for j, g in enumerate(fsps)}
                    opp[f] = s
                    values.append(evaluator.payoff(opp, f))
                mean = float(np.mean(values))
                if mean > best_value + 1e-6:
                    best, best_value = s, mean
                    best_se = float(np.std(values, ddof=1) / np.sqrt(samples)) if samples > 1 else 0.0
            nxt[f] = best
            if levels[f] == k:
                errors[f] = best_se
        plays.append(nxt)
        if on_round is not None:
            on_round(k, nxt)
    profile = {f: plays[levels[f]][f] for f in fsps}
    return DynamicsResult("cognitive_hierarchy", profile, plays + [profile],
                          sampling_error=errors)


def logit_dynamics(evaluator: GameEvaluator, start: Profile, rationality: float,
                   rng: np.random.Generator, rounds: int = 20, on_round=None) -> DynamicsResult:
    """Noisy best response: each round every FSP (seeded order) draws a strategy with
    probability proportional to exp(lambda x payoff) against the others' current play."""
    strategies = evaluator.bid_map.space.strategies
    history = [dict(start)]
    fsps = sorted(start)
    for r in range(1, rounds + 1):
        profile = dict(history[-1])
        for f in rng.permutation(fsps):
            values = np.array([evaluator.payoff({**profile, f: s}, f) for s in strategies])
            z = rationality * (values - values.max())
            p = np.exp(z) / np.exp(z).sum()
            profile[f] = strategies[int(rng.choice(len(strategies), p=p))]
        history.append(profile)
        if on_round is not None:
            on_round(r, profile)
    return DynamicsResult("logit", history[-1], history)
