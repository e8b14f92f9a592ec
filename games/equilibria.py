"""Equilibria of the FSPs' market game, each with its certificate (ALEXANDER D4.1 KER 2).

In pay-as-bid markets with capacity-constrained or pivotal FSPs best responses cycle
(Bertrand-Edgeworth) and there may be no pure equilibrium. A strategic result is therefore
an equilibrium of a named solution concept, and its certificate is epsilon: the largest gain
[EUR] any player could make by a unilateral deviation to any strategy of the FULL game.

* pure Nash equilibrium: a fixed point of iterated best response (epsilon 0), or a profile
  of a best-response cycle whose epsilon is within the tolerance (epsilon from one exact
  best response per player, :func:`flexgame.games.best_response.certificate`);
* mixed Nash equilibrium: found by the double oracle (:mod:`flexgame.games.double_oracle`);
* coarse correlated equilibrium: the time average of a best-response cycle, or the
  empirical distribution of no-regret play (:mod:`flexgame.games.no_regret`), always
  available; epsilon is its exact maximum average external regret.

Expected outcomes and deviations of mixed and correlated profiles: :mod:`flexgame.games.mixed`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from flexgame.games.best_response import best_response, certificate
from flexgame.games.double_oracle import TOLERANCE_EUR, double_oracle, strategy_sets_of
from flexgame.games.dynamics import DynamicsResult, iterated_best_response, play
from flexgame.games.mixed import (
    MAX_PROFILES,
    SAME_DISTRIBUTION,
    MixedProfile,
    Profile,
    correlated_deviations,
    distinct_profiles,
    mixed_deviations,
    point_mass,
    sample_mixed,
    support_profiles,
    support_size,
)
from flexgame.games.payoff import GameEvaluator, Outcome, expected_outcome
from flexgame.games.strategies import Strategy

PURE_NASH, MIXED_NASH, COARSE_CORRELATED = (
    "pure Nash equilibrium", "mixed Nash equilibrium", "coarse correlated equilibrium")


# --- the result ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Equilibrium:
    """An equilibrium of a named solution concept with its certificate.

    Attributes:
        concept: "pure Nash equilibrium", "mixed Nash equilibrium" or "coarse correlated
            equilibrium".
        profiles, probabilities: the distribution over pure profiles (a mixed profile: the
            product of the supports, or the sampled profiles at equal weight when the support
            is too large to enumerate).
        epsilon: the largest expected gain of a unilateral deviation in the full game [EUR].
        epsilon_standard_error: its standard error [EUR] (nan when exact).
        support_size: number of pure profiles with positive probability.
        outcome: the expected outcome (probability-weighted mean of the profiles' outcomes).
        regret: per player, its best expected gain of a deviation [EUR].
        clearings: clearings run to find and certify it.
        mixed: the mixed profile of a Nash equilibrium (None for a correlated one).
        note: how it was found (and why a fallback was needed).
    """

    concept: str
    profiles: list[Profile]
    probabilities: np.ndarray
    epsilon: float
    epsilon_standard_error: float
    support_size: int
    outcome: Outcome
    regret: dict[str, float]
    clearings: int
    mixed: MixedProfile | None = None
    note: str = ""

    def __repr__(self) -> str:
        exact = "" if np.isnan(self.epsilon_standard_error) else \
            f" +- {self.epsilon_standard_error:.2g}"
        return (f"Equilibrium({self.concept}, {self.support_size} profiles, expected cost "
                f"{self.outcome.cost_eur:.2f} EUR, epsilon {self.epsilon:.3g}{exact} EUR, "
                f"{self.clearings} clearings)")

    def same_distribution(self, other: Equilibrium, tol: float = SAME_DISTRIBUTION) -> bool:
        """Whether both put the same probability (within ``tol``) on every pure profile."""
        def mass(e: Equilibrium) -> dict[tuple, float]:
            out: dict[tuple, float] = {}
            for d, q in zip(e.profiles, e.probabilities):
                k = tuple(sorted(d.items()))
                out[k] = out.get(k, 0.0) + float(q)
            return out

        a, b = mass(self), mass(other)
        return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) <= tol for k in a.keys() | b.keys())


def pure_equilibrium(evaluator: GameEvaluator, profile: Profile, note: str = "") -> Equilibrium:
    """``profile`` as a pure equilibrium candidate, certified by one exact best response per
    player (its epsilon is 0 at a fixed point of best responses)."""
    before = evaluator.clearings
    cert = certificate(evaluator, profile)
    return Equilibrium(PURE_NASH, [dict(profile)], np.ones(1), cert.epsilon, float("nan"), 1,
                       evaluator.outcome(profile), cert.regret, evaluator.clearings - before,
                       point_mass(profile), note)


def mixed_equilibrium(evaluator: GameEvaluator, mixed: MixedProfile,
                      max_profiles: int = MAX_PROFILES, samples: int = 200,
                      rng: np.random.Generator | None = None, note: str = "") -> Equilibrium:
    """The mixed profile ``mixed`` with its expected outcome and its epsilon in the full game
    (exact up to ``max_profiles`` support profiles, else over ``samples`` profiles drawn with
    ``rng``, the same for both, see :func:`mixed_deviations`). Concept: pure Nash if its
    support is one profile."""
    before = evaluator.clearings
    size = support_size(mixed)
    if size <= max_profiles:
        profiles, probabilities = support_profiles(mixed)
        deviations = mixed_deviations(evaluator, mixed, max_profiles)
    else:
        profiles = sample_mixed(evaluator, mixed, samples, rng)
        probabilities = np.full(samples, 1.0 / samples)
        deviations = mixed_deviations(evaluator, mixed, max_profiles, draws=profiles)
    outcome = expected_outcome([evaluator.outcome(d) for d in profiles], probabilities)
    return Equilibrium(PURE_NASH if size == 1 else MIXED_NASH, profiles, probabilities,
                       deviations.epsilon, deviations.epsilon_standard_error, size, outcome,
                       deviations.regret, evaluator.clearings - before, mixed, note)


def correlated_equilibrium(evaluator: GameEvaluator, profiles: list[Profile],
                           probabilities: np.ndarray, note: str = "") -> Equilibrium:
    """The distribution over ``profiles`` as a coarse correlated equilibrium, with its
    expected outcome and exact epsilon (:func:`correlated_deviations`)."""
    before = evaluator.clearings
    deviations = correlated_deviations(evaluator, profiles, probabilities)
    outcome = expected_outcome([evaluator.outcome(d) for d in profiles], probabilities)
    return Equilibrium(COARSE_CORRELATED, list(profiles), np.asarray(probabilities, float),
                       deviations.epsilon, float("nan"), len(profiles), outcome,
                       deviations.regret, evaluator.clearings - before, None, note)


# --- the search ------------------------------------------------------------------------------

def _within(checked, players: list[str], tol: float) -> bool:
    """Whether a screening (a certificate or deviations stopped at the first regret above
    ``tol``) examined every player and found every regret within ``tol``."""
    return len(checked.regret) == len(players) and max(checked.regret.values()) <= tol


def find_equilibrium(evaluator: GameEvaluator, visited: DynamicsResult | list[Profile],
                     rng: np.random.Generator, tol: float = TOLERANCE_EUR,
                     max_profiles: int = MAX_PROFILES, max_iterations: int = 100,
                     max_clearings: int | None = None, cce_rounds: int = 500) -> Equilibrium:
    """An equilibrium with its certificate, from where a reasoning process ended.

    ``visited``: a run of iterated best response (its cycle, else its final profile) or the
    profiles it visited. A single profile whose epsilon is at most ``tol`` [EUR] (a fixed
    point of best responses) is a pure Nash equilibrium. Otherwise the double oracle
    (:func:`double_oracle`) starts from the strategies the profiles use; if it converges the
    result is its mixed Nash equilibrium (pure if its support is one profile). If it stops on
    a budget and the profiles are a cycle, a profile of the cycle whose epsilon is within
    ``tol`` is a pure (``tol``-)Nash equilibrium; else the time average of the cycle (equal
    weight on its profiles) is a coarse correlated equilibrium (Moulin & Vial 1978) if its
    exact epsilon is within ``tol``. Both are screened player by player, the players who
    switch in the cycle first, and rejected at the first regret above ``tol``. The last
    fallback is the empirical distribution of at most ``cce_rounds`` rounds of regret
    matching from the first profile, stopped once every regret is within ``tol`` or after
    ``max_clearings`` clearings (:func:`flexgame.games.no_regret.regret_matching`, drawn with
    ``rng``); its epsilon may then exceed ``tol``: it is what the certificate says.
    ``max_clearings`` budgets the double oracle and regret matching each (None: no budget).
    """
    from flexgame.games.no_regret import regret_matching

    before = evaluator.clearings
    if isinstance(visited, DynamicsResult):
        profiles = visited.cycle or [visited.profile]
        how = f"iterated best response {visited.status} after {visited.rounds} rounds"
    else:
        profiles, how = list(visited), f"{len(visited)} profiles visited"
    if len(profiles) == 1:
        pure = pure_equilibrium(evaluator, profiles[0])
        if pure.epsilon <= tol:
            return replace(pure, clearings=evaluator.clearings - before,
                           note=f"{how}: a fixed point of best responses")
    oracle = double_oracle(evaluator, strategy_sets_of(profiles), tol, max_profiles,
                           max_iterations, max_clearings)
    if oracle.converged:
        found = mixed_equilibrium(evaluator, oracle.mixed, max_profiles)
        return replace(found, clearings=evaluator.clearings - before,
                       note=f"{how}; double oracle converged in {oracle.iterations} "
                            f"iterations ({oracle.solver})")
    stopped = f"{how}; double oracle stopped ({oracle.stopped})"
    if len(profiles) > 1:
        support, probabilities = distinct_profiles(evaluator, profiles)
        # the players who switch in the cycle first: the likeliest to regret its average
        players = sorted(evaluator.bid_map.players,
                         key=lambda p: len({d[p] for d in support}) == 1)
        for profile in support:  # a profile of the cycle may itself be within tol
            if _within(certificate(evaluator, profile, players, tol), players, tol):
                pure = pure_equilibrium(evaluator, profile)  # its best responses are cached
                return replace(pure, clearings=evaluator.clearings - before,
                               note=f"{stopped}; a profile of the cycle")
        screen = correlated_deviations(evaluator, support, probabilities, players, tol)
        if _within(screen, players, tol):
            cycle = correlated_equilibrium(evaluator, support, probabilities)  # cached
            return replace(cycle, clearings=evaluator.clearings - before,
                           note=f"{stopped}; the time average of the cycle")
        worst = max(screen.regret, key=screen.regret.get)
        stopped += (f"; the cycle's time average is no equilibrium ({worst} would gain "
                    f"{screen.regret[worst]:.3g} EUR)")
    learning = regret_matching(evaluator, profiles[0], cce_rounds, rng,
                               max_clearings=max_clearings, tol=tol)
    support, probabilities = distinct_profiles(evaluator, learning.profiles)
    found = correlated_equilibrium(evaluator, support, probabilities)
    return replace(found, clearings=evaluator.clearings - before,
                   note=f"{stopped}; {learning.rounds} rounds of regret matching")


@dataclass(frozen=True)
class EquilibriumSet:
    """The distinct equilibria reached from several starts.

    Attributes:
        equilibria: distinct equilibria (different distributions), cheapest expected
            procurement cost first.
        reached_from: per start, the index of the equilibrium its search ended in.
        reference_cost_eur: procurement cost of truthful bidding [EUR].
        clearings: clearings run.
    """

    equilibria: list[Equilibrium]
    reached_from: list[int]
    reference_cost_eur: float
    clearings: int

    @property
    def price_of_stability(self) -> float:
        """Expected cost of the cheapest equilibrium over the truthful cost [-]."""
        return self.equilibria[0].outcome.cost_eur / self.reference_cost_eur

    @property
    def price_of_anarchy(self) -> float:
        """Expected cost of the dearest equilibrium over the truthful cost [-]."""
        return self.equilibria[-1].outcome.cost_eur / self.reference_cost_eur

    def __repr__(self) -> str:
        return (f"EquilibriumSet({len(self.equilibria)} equilibria from "
                f"{len(self.reached_from)} starts, price of stability "
                f"{self.price_of_stability:.3f}, of anarchy {self.price_of_anarchy:.3f})")


def equilibria_from_starts(evaluator: GameEvaluator, starts: list[Profile],
                           rng: np.random.Generator, max_rounds: int = 50,
                           update: str = "gauss_seidel", **search) -> EquilibriumSet:
    """Iterated best response (players in the evaluator's order) from each of ``starts``,
    then :func:`find_equilibrium` (``search``: its options) where it ended; equilibria with
    the same distribution (within :data:`SAME_DISTRIBUTION`) are counted once. The cheapest
    and dearest give the price of stability and of anarchy against truthful bidding."""
    before = evaluator.clearings
    players = evaluator.bid_map.players

    def respond(player: str, profile: Profile) -> Strategy:
        return best_response(evaluator, profile, player).strategy

    found: list[Equilibrium] = []
    reached = []
    for start in starts:
        run = play(iterated_best_response(respond, start, players, update, max_rounds), start)
        eq = find_equilibrium(evaluator, run, rng, **search)
        same = [i for i, e in enumerate(found) if e.same_distribution(eq)]
        if not same:
            found.append(eq)
        reached.append(same[0] if same else len(found) - 1)
    order = sorted(range(len(found)), key=lambda i: found[i].outcome.cost_eur)
    rank = {old: new for new, old in enumerate(order)}
    truthful = evaluator.outcome(evaluator.bid_map.truthful()).cost_eur
    return EquilibriumSet([found[i] for i in order], [rank[i] for i in reached], truthful,
                          evaluator.clearings - before)
