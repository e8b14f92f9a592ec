"""Mixed and correlated profiles of the FSPs' market game, their expected outcome and how much
a player could gain by deviating from them, in the full game.

A mixed profile gives each player an independent distribution over its strategies; a
correlated profile is a distribution over pure profiles. Their expected outcome is the
probability-weighted mean of the support profiles' outcomes, their epsilon the largest
expected gain of a deviation: to a strategy against the others' mixed strategies (Nash), or
to a fixed strategy against the others' part of each support profile (coarse correlated,
Moulin & Vial, Int. J. Game Theory 7, 1978). Exact by enumeration when the support is small,
else by seeded sampling with the standard error reported.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from flexgame.games.best_response import sampled_payoffs
from flexgame.games.dynamics import sample_profiles
from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy

Profile = dict[str, Strategy]
MixedProfile = dict[str, dict[Strategy, float]]
"""Per player, the probability of each strategy it plays (positive probabilities only; a
player that does not mix has one strategy of probability 1)."""

MAX_PROFILES = 4096
"""Default budget of pure profiles: restricted-game tables and exact expectations."""
SAME_DISTRIBUTION = 1e-6
"""Largest probability difference between two distributions counted as the same."""


def point_mass(profile: Profile) -> MixedProfile:
    """The pure ``profile`` as a mixed profile."""
    return {p: {s: 1.0} for p, s in profile.items()}


def support_size(mixed: MixedProfile) -> int:
    """Number of pure profiles with positive probability (the product of the supports)."""
    return math.prod(len(d) for d in mixed.values())


def support_profiles(mixed: MixedProfile) -> tuple[list[Profile], np.ndarray]:
    """Every pure profile of the product of the players' supports, with its probability
    (independent mixing)."""
    players = list(mixed)
    profiles, probabilities = [], []
    for combo in itertools.product(*(mixed[p].items() for p in players)):
        profiles.append({p: s for p, (s, _) in zip(players, combo)})
        probabilities.append(math.prod(q for _, q in combo))
    return profiles, np.array(probabilities)


def probability_arrays(mixed: MixedProfile, strategies: list[Strategy]) -> dict[str, np.ndarray]:
    """Per player, the probability of each of ``strategies`` (e.g. the strategy space)."""
    return {p: np.array([d.get(s, 0.0) for s in strategies]) for p, d in mixed.items()}


def deviation_profits(evaluator: GameEvaluator, profiles: list[Profile],
                      probabilities: np.ndarray, player: str) -> np.ndarray:
    """Expected profit [EUR] of each of ``player``'s strategies (in the order of the
    strategy space) against the others' part of ``profiles`` weighted by ``probabilities``
    (its own entry is replaced): |profiles| x |strategies| clearings, cached."""
    return np.asarray(probabilities, dtype=float) @ sampled_payoffs(evaluator, profiles, player)


@dataclass(frozen=True)
class Deviations:
    """What every player earns by deviating from a mixed or correlated profile.

    Attributes:
        profits: per player, the expected profit [EUR] of each strategy of the space (in its
            order) against the others' play.
        played: per player, the expected profit [EUR] of its own play.
        standard_error: per player, the standard error of its regret [EUR] (nan: exact).
    """

    profits: dict[str, np.ndarray]
    played: dict[str, float]
    standard_error: dict[str, float]

    @property
    def regret(self) -> dict[str, float]:
        """Per player, its best expected gain of a unilateral deviation [EUR] (>= 0)."""
        return {p: max(float(v.max()) - self.played[p], 0.0) for p, v in self.profits.items()}

    @property
    def epsilon(self) -> float:
        """The largest regret [EUR]."""
        return max(self.regret.values(), default=0.0)

    @property
    def epsilon_standard_error(self) -> float:
        """Standard error of the largest regret [EUR] (nan when exact)."""
        regret = self.regret
        return self.standard_error[max(regret, key=regret.get)] if regret else float("nan")

    def __repr__(self) -> str:
        return f"Deviations({len(self.profits)} players, epsilon {self.epsilon:.3g} EUR)"


def sample_mixed(evaluator: GameEvaluator, mixed: MixedProfile, samples: int,
                 rng: np.random.Generator | None) -> list[Profile]:
    """``samples`` pure profiles drawn from the mixed profile ``mixed`` with ``rng``."""
    if rng is None:
        raise ValueError(f"the support of {support_size(mixed):.3g} profiles is sampled: pass "
                         "a seeded rng")
    strategies = evaluator.bid_map.space.strategies
    return sample_profiles(strategies, probability_arrays(mixed, strategies), samples, rng)


def mixed_deviations(evaluator: GameEvaluator, mixed: MixedProfile,
                     max_profiles: int = MAX_PROFILES, samples: int = 200,
                     rng: np.random.Generator | None = None,
                     draws: list[Profile] | None = None) -> Deviations:
    """Every player's deviation profits at the mixed profile ``mixed`` (one distribution per
    player of the game), in the full strategy space.

    Exact when the support has at most ``max_profiles`` pure profiles: player i's expected
    profits are enumerated over the product of the others' supports. Otherwise estimated over
    ``draws`` (default: ``samples`` profiles drawn with ``rng``), the same draws for every
    strategy (common random numbers); a player's regret is then the mean gain of its best
    strategy over its mixed strategy, with that mean's standard error.
    """
    players = evaluator.bid_map.players
    arrays = probability_arrays(mixed, evaluator.bid_map.space.strategies)
    profits, played, errors = {}, {}, {}
    exact = support_size(mixed) <= max_profiles
    if not exact and draws is None:
        draws = sample_mixed(evaluator, mixed, samples, rng)
    for p in players:
        own = arrays[p]
        if exact:
            others, weights = support_profiles({q: mixed[q] for q in players if q != p})
            # each completed by p's likeliest strategy (its own entry is replaced): whole
            # support profiles, whose clearings every player's deviations share
            anchor = max(mixed[p], key=mixed[p].get)
            profits[p] = deviation_profits(evaluator, [{**d, p: anchor} for d in others],
                                           weights, p)
            played[p] = float(own @ profits[p])
            errors[p] = float("nan")
        else:
            table = sampled_payoffs(evaluator, draws, p)
            profits[p] = table.mean(axis=0)
            played[p] = float(own @ profits[p])
            gain = table[:, int(np.argmax(profits[p]))] - table @ own
            n = len(draws)
            errors[p] = float(gain.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return Deviations(profits, played, errors)


def correlated_deviations(evaluator: GameEvaluator, profiles: list[Profile],
                          probabilities: np.ndarray, players: list[str] | None = None,
                          stop_above: float | None = None) -> Deviations:
    """Every player's coarse-correlated deviation profits at the distribution over pure
    ``profiles``: a fixed strategy played against the others' part of each support profile
    (exact; |support| x |strategies| clearings per player, cached). ``players``: in this
    order (default: the evaluator's); ``stop_above`` [EUR]: stop after the first player whose
    regret exceeds it (the distribution is then no ``stop_above``-equilibrium, and the result
    holds only the players examined so far)."""
    strategies = evaluator.bid_map.space.strategies
    index = {s: i for i, s in enumerate(strategies)}
    w = np.asarray(probabilities, dtype=float)
    profits, played = {}, {}
    for p in players or evaluator.bid_map.players:
        table = sampled_payoffs(evaluator, profiles, p)
        profits[p] = w @ table
        played[p] = float(w @ table[np.arange(len(profiles)), [index[d[p]] for d in profiles]])
        if stop_above is not None and profits[p].max() - played[p] > stop_above:
            break
    return Deviations(profits, played, {p: float("nan") for p in profits})


def distinct_profiles(evaluator: GameEvaluator, profiles: list[Profile],
                      probabilities: np.ndarray | None = None
                      ) -> tuple[list[Profile], np.ndarray]:
    """The distribution over ``profiles`` (equal weights by default) with repeated profiles
    merged, in order of first appearance: e.g. the empirical distribution of play."""
    if probabilities is None:
        probabilities = np.full(len(profiles), 1.0 / len(profiles))
    mass: dict[tuple, float] = {}
    first: dict[tuple, Profile] = {}
    for d, q in zip(profiles, probabilities):
        k = evaluator.key(d)
        first.setdefault(k, d)
        mass[k] = mass.get(k, 0.0) + float(q)
    return [dict(first[k]) for k in mass], np.array(list(mass.values()))
