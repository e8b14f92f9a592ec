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
* Logit quantal response (McKelvey & Palfrey 1995): each player's mixed strategy puts
  probability proportional to exp(lambda * expected payoff) on each strategy, a noisy best
  response; expected payoffs against mixed opponents come from seeded samples, with their
  standard error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import poisson

from flexgame.games.best_response import best_response
from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy

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


def level_k_round(evaluator: GameEvaluator, previous: Profile) -> Profile:
    """Level k from level k-1: every FSP's best response to everyone playing ``previous``."""
    return {f: best_response(evaluator, previous, f).strategy for f in previous}


def hierarchy_level(evaluator: GameEvaluator, plays: list[Profile], tau: float, samples: int,
                    rng: np.random.Generator) -> tuple[Profile, dict[str, float]]:
    """Cognitive-hierarchy play of level k = len(plays): each FSP maximises its expected
    payoff against opponents whose levels are drawn from Poisson(tau) truncated to 0..k-1
    (``plays[l]`` is what level l plays), estimated over ``samples`` seeded draws.

    Returns the level-k profile and the standard error of each FSP's chosen expected payoff.
    """
    k = len(plays)
    weights = poisson.pmf(np.arange(k), tau)
    weights = weights / weights.sum()
    names = sorted(plays[0])
    draws = [rng.choice(k, size=len(names), p=weights) for _ in range(samples)]
    out, errors = {}, {}
    for f in names:
        best, best_mean, best_se = None, -np.inf, 0.0
        for s in evaluator.bid_map.space.strategies:
            values = [evaluator.payoff({**{g: plays[d[j]][g] for j, g in enumerate(names)}, f: s}, f)
                      for d in draws]
            mean = float(np.mean(values))
            if mean > best_mean + 1e-6:
                best, best_mean = s, mean
                best_se = float(np.std(values, ddof=1) / np.sqrt(samples)) if samples > 1 else 0.0
        out[f], errors[f] = best, best_se
    return out, errors


@dataclass(frozen=True)
class LogitRound:
    """One round of logit responses.

    Attributes:
        mixed: each player's new mixed strategy (probabilities over the strategy list).
        expected_payoff: per player, the sampled expected payoff of each strategy [EUR].
        standard_error: per player, the largest standard error of those estimates [EUR].
        regret: per player, best expected payoff minus the expected payoff of the mixed
            strategy it played this round [EUR] (its epsilon, estimated by sampling).
        draws: the sampled opponent profiles (pure), whose average is the round's outcome.
    """

    mixed: dict[str, np.ndarray]
    expected_payoff: dict[str, np.ndarray]
    standard_error: dict[str, float]
    regret: dict[str, float]
    draws: list[Profile]


def sample_profiles(strategies: list, mixed: dict[str, np.ndarray], samples: int,
                    rng: np.random.Generator) -> list[Profile]:
    """``samples`` pure profiles drawn from independent mixed strategies (seeded)."""
    players = sorted(mixed)
    picks = {p: rng.choice(len(strategies), size=samples, p=mixed[p]) for p in players}
    return [{p: strategies[int(picks[p][n])] for p in players} for n in range(samples)]


def logit_response(evaluator: GameEvaluator, mixed: dict[str, np.ndarray], rationality: float,
                   samples: int, rng: np.random.Generator) -> LogitRound:
    """Logit quantal response (McKelvey & Palfrey, Games Econ. Behav. 10, 1995): every
    player's new mixed strategy is p(s) ~ exp(lambda u(s)), with u(s) its expected payoff of
    strategy s against the others' current mixed strategies (simultaneous update; a fixed
    point is a logit quantal response equilibrium). Expectations are estimated over
    ``samples`` seeded opponent draws, the same draws for every strategy of a player (common
    random numbers)."""
    strategies = evaluator.bid_map.space.strategies
    draws = sample_profiles(strategies, mixed, samples, rng)
    new, expected, errors, regret = {}, {}, {}, {}
    for f in sorted(mixed):
        values = np.array([[evaluator.payoff({**d, f: s}, f) for s in strategies] for d in draws])
        mean = values.mean(axis=0)
        z = rationality * (mean - mean.max())
        new[f] = np.exp(z) / np.exp(z).sum()
        expected[f] = mean
        errors[f] = float(values.std(axis=0, ddof=1).max() / np.sqrt(samples)) if samples > 1 else 0.0
        regret[f] = float(max(mean.max() - mixed[f] @ mean, 0.0))
    return LogitRound(new, expected, errors, regret, draws)
