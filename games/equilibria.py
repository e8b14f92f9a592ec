"""Equilibria of the FSPs' market game, each with its certificate (project issue 10).

In pay-as-bid markets with capacity-constrained or pivotal FSPs best responses cycle
(Bertrand-Edgeworth) and there may be no pure equilibrium. A strategic result is therefore
an equilibrium of a named solution concept, and its certificate is epsilon: the largest gain
[EUR] any player could make by a unilateral deviation to any strategy of the FULL game.

* pure Nash equilibrium: a fixed point of iterated best response (epsilon from one exact
  best response per player, :func:`flexgame.games.best_response.certificate`);
* mixed Nash equilibrium: found by the double oracle (McMahan, Gordon & Blum, "Planning in
  the presence of cost functions controlled by an adversary", ICML 2003): solve the game
  restricted to small strategy sets, add every player's best response in the full game to
  the restricted equilibrium, repeat until no player gains more than ``tol``. For n-player
  general-sum games the loop still ends (each round adds a strategy), in the worst case with
  the full game; budgets stop it earlier;
* coarse correlated equilibrium: the empirical distribution of no-regret play
  (:mod:`flexgame.games.no_regret`), always available; epsilon is its exact maximum average
  external regret.

A mixed profile gives each player an independent distribution over its strategies; a
correlated profile is a distribution over pure profiles. Their expected outcome is the
probability-weighted mean of the support profiles' outcomes, their epsilon the largest
expected gain of a deviation: to a strategy against the others' mixed strategies (Nash), or
to a fixed strategy against the others' part of each support profile (coarse correlated,
Moulin & Vial, Int. J. Game Theory 7, 1978). Exact by enumeration when the support is small,
else by seeded sampling with the standard error reported.

Restricted games are solved by nashpy (two players: Lemke-Howson from every dropped label,
Lemke & Howson, J. SIAM 12, 1964; Knight & Campbell, JOSS 3(30), 2018) and by Gambit (three
or more: the logit quantal-response path to its Nash limit, Turocy, Games Econ. Behav. 51,
2005; the global Newton method of Govindan & Wilson, J. Econ. Theory 110, 2003, if that
falls short). On market games the logit path always reached its target (uniform pricing
makes them degenerate: ties everywhere), where global Newton often returns nothing and
iterated polymatrix approximation may not end; nashpy's support enumeration tests
equalities of floats exactly and misses mixed equilibria, its vertex enumeration can take
minutes on a degenerate 15 x 15 game, Lemke-Howson takes milliseconds.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from flexgame.games.best_response import (
    TIE_TOLERANCE_EUR, best_response, certificate, sampled_payoffs,
)
from flexgame.games.dynamics import DynamicsResult, iterated_best_response, play, sample_profiles
from flexgame.games.normal_form import (
    NormalForm, expected_cost, mixed_regrets, payoff_table, to_gambit, to_nashpy,
)
from flexgame.games.payoff import GameEvaluator, Outcome, expected_outcome
from flexgame.games.strategies import Strategy

Profile = dict[str, Strategy]
MixedProfile = dict[str, dict[Strategy, float]]
"""Per player, the probability of each strategy it plays (positive probabilities only; a
player that does not mix has one strategy of probability 1)."""

TOLERANCE_EUR = 1e-3
"""Default epsilon target [EUR]: no player may gain more than this by deviating."""
MAX_PROFILES = 4096
"""Default budget of pure profiles: restricted-game tables and exact expectations."""
SUPPORT_TOLERANCE = 1e-6
"""Probability below which a numerical solver's strategy is dropped from the support."""
SAME_DISTRIBUTION = 1e-6
"""Largest probability difference between two distributions counted as the same."""

PURE_NASH, MIXED_NASH, COARSE_CORRELATED = (
    "pure Nash equilibrium", "mixed Nash equilibrium", "coarse correlated equilibrium")


# --- mixed and correlated profiles ------------------------------------------------------------

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
            profits[p] = deviation_profits(evaluator, others, weights, p)
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
                          probabilities: np.ndarray) -> Deviations:
    """Every player's coarse-correlated deviation profits at the distribution over pure
    ``profiles``: a fixed strategy played against the others' part of each support profile
    (exact; |support| x |strategies| clearings per player, cached)."""
    strategies = evaluator.bid_map.space.strategies
    index = {s: i for i, s in enumerate(strategies)}
    w = np.asarray(probabilities, dtype=float)
    profits, played = {}, {}
    for p in evaluator.bid_map.players:
        table = sampled_payoffs(evaluator, profiles, p)
        profits[p] = w @ table
        played[p] = float(w @ table[np.arange(len(profiles)), [index[d[p]] for d in profiles]])
    return Deviations(profits, played, {p: float("nan") for p in profits})


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


# --- restricted games ------------------------------------------------------------------------

@dataclass(frozen=True)
class RestrictedSolution:
    """An equilibrium of a restricted game: per active player its probabilities over its
    strategy set, the largest regret within the restricted game [EUR] and the solver."""

    mixed: dict[str, np.ndarray]
    regret: float
    solver: str


def _cleaned(game: NormalForm, mixed: dict[str, np.ndarray], solver: str) -> RestrictedSolution:
    """Drop probabilities below :data:`SUPPORT_TOLERANCE` (numerical dust), renormalise and
    measure the regret within the restricted game."""
    out = {}
    for p in game.players:
        x = np.clip(np.nan_to_num(np.asarray(mixed[p], dtype=float)), 0.0, None)
        x[x < SUPPORT_TOLERANCE] = 0.0
        if x.sum() <= 0:
            return RestrictedSolution(mixed, float("inf"), solver)
        out[p] = x / x.sum()
    return RestrictedSolution(out, max(mixed_regrets(game, out).values()), solver)


def _nashpy_lemke_howson(game: NormalForm, tol: float) -> list[RestrictedSolution]:
    """Two players: the equilibria Lemke-Howson reaches from every dropped label (nashpy),
    those within ``tol`` of an equilibrium of the restricted game, without repeats."""
    found: list[RestrictedSolution] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate games: nashpy warns, results are checked
        for pair in to_nashpy(game).lemke_howson_enumeration():
            sol = _cleaned(game, dict(zip(game.players, pair)), "nashpy Lemke-Howson")
            if sol.regret <= tol and not any(
                    all(np.allclose(sol.mixed[p], f.mixed[p], atol=SAME_DISTRIBUTION)
                        for p in game.players) for f in found):
                found.append(sol)
    return found


def _gambit(game: NormalForm, tol: float) -> RestrictedSolution:
    """Gambit's logit path to its Nash limit, asked for a regret of at most ``tol`` / 10 [EUR]
    (and at most Gambit's default, 1e-8 of the payoff range); Gambit's global Newton method
    if that falls short of ``tol``. Nothing found: everyone's first strategy, regret inf."""
    import pygambit as gbt

    g = to_gambit(game)
    spread = max(float(np.ptp(v)) for v in game.payoffs.values())
    best = RestrictedSolution({p: np.eye(n)[0] for p, n in zip(game.players, game.shape)},
                              float("inf"), "gambit (no equilibrium found)")
    attempts = (("gambit logit", lambda: gbt.nash.logit_solve(
                    g, maxregret=min(1e-8, 0.1 * tol / spread))),
                ("gambit global Newton", lambda: gbt.nash.gnm_solve(g)))
    for solver, solve in attempts:
        for eq in solve().equilibria:
            mixed = {name: np.array([float(eq[s]) for s in player.strategies])
                     for name, player in zip(game.players, g.players)}
            sol = _cleaned(game, mixed, solver)
            if sol.regret < best.regret:
                best = sol
        if best.regret <= tol:
            break
    return best


def solve_restricted(game: NormalForm, tol: float = TOLERANCE_EUR) -> RestrictedSolution:
    """An equilibrium of the restricted ``game`` within ``tol`` / 2 [EUR] if the solver
    reaches it (check :attr:`RestrictedSolution.regret`).

    One active player: its best strategy (the lowest of equal ones). Two: nashpy's
    Lemke-Howson from every dropped label; of the equilibria it reaches, the one of lowest
    expected procurement cost (then the first); Gambit if it reaches none (a degenerate
    game). Three or more: Gambit (logit path, then global Newton). A game whose payoffs are
    all equal: everyone plays its first strategy.
    """
    first = {p: np.eye(n)[0] for p, n in zip(game.players, game.shape)}
    if not game.players:
        return RestrictedSolution({}, 0.0, "one profile")
    if all(np.ptp(v) == 0 for v in game.payoffs.values()):
        return RestrictedSolution(first, 0.0, "all payoffs equal")
    if len(game.players) == 1:
        (p,) = game.players
        return RestrictedSolution({p: np.eye(game.shape[0])[int(np.argmax(game.payoffs[p]))]},
                                  0.0, "best strategy")
    if len(game.players) == 2:
        found = _nashpy_lemke_howson(game, tol / 2)
        if found:
            return min(found, key=lambda s: expected_cost(game, s.mixed))
    return _gambit(game, tol / 2)


# --- the double oracle -----------------------------------------------------------------------

@dataclass(frozen=True)
class DoubleOracleResult:
    """Where the double oracle stopped.

    Attributes:
        mixed: the last restricted equilibrium, a mixed profile of every player (fixed
            players: their one strategy), or None if no restricted game was solved.
        deviations: its deviation profits in the full game (exact).
        converged: no player gains more than ``tol`` [EUR] by deviating in the full game.
        strategy_sets: the final restricted strategy sets.
        iterations: restricted games solved.
        clearings: clearings run.
        solver: the restricted solver of the last iteration.
        stopped: why it stopped without converging ("" when converged).
    """

    mixed: MixedProfile | None
    deviations: Deviations | None
    converged: bool
    strategy_sets: dict[str, list[Strategy]]
    iterations: int
    clearings: int
    solver: str
    stopped: str = ""

    @property
    def epsilon(self) -> float:
        """Epsilon of the last restricted equilibrium in the full game [EUR] (inf if none)."""
        return self.deviations.epsilon if self.deviations is not None else float("inf")

    def __repr__(self) -> str:
        how = "converged" if self.converged else f"stopped: {self.stopped}"
        return (f"DoubleOracleResult({how}, {self.iterations} iterations, epsilon "
                f"{self.epsilon:.3g} EUR, {self.clearings} clearings)")


def strategy_sets_of(profiles: list[Profile]) -> dict[str, list[Strategy]]:
    """Per player, the strategies it plays in ``profiles`` (e.g. a best-response cycle)."""
    return {p: sorted({d[p] for d in profiles}) for p in profiles[0]}


def double_oracle(evaluator: GameEvaluator, strategy_sets: dict[str, list[Strategy]],
                  tol: float = TOLERANCE_EUR, max_profiles: int = MAX_PROFILES,
                  max_iterations: int = 100, max_clearings: int | None = None
                  ) -> DoubleOracleResult:
    """Mixed Nash equilibrium by the double oracle (McMahan, Gordon & Blum, ICML 2003).

    Starts from ``strategy_sets`` (one non-empty set per player, e.g. the strategies a
    best-response cycle visits; a player with one strategy is fixed, not part of the
    restricted game). Each iteration solves the restricted game (:func:`solve_restricted`),
    then asks every player, fixed ones included, for its expected profit of every strategy
    of the full space against the others' restricted equilibrium (exact, over the product of
    the others' supports) and adds each player's best response (the lowest of equal ones)
    that gains more than ``tol`` [EUR]. Converges when no player gains more than ``tol``: the
    restricted equilibrium is then a ``tol``-Nash equilibrium of the full game. Stops
    unconverged when the restricted game would exceed ``max_profiles`` pure profiles, after
    ``max_iterations`` restricted games, once more than ``max_clearings`` clearings were run,
    or when the restricted solver is not accurate enough to make progress.
    """
    players = evaluator.bid_map.players
    space = evaluator.bid_map.space.strategies
    order = {s: i for i, s in enumerate(space)}
    sets = {p: sorted(set(strategy_sets[p]), key=order.__getitem__) for p in players}
    before = evaluator.clearings
    mixed, deviations, solver, stopped = None, None, "", ""
    converged, iteration = False, 0
    while True:
        size = math.prod(len(sets[p]) for p in players)
        if size > max_profiles:
            stopped = (f"the restricted game would have {size:.3g} pure profiles, more than "
                       f"max_profiles={max_profiles}")
            break
        if iteration >= max_iterations:
            stopped = f"not converged after max_iterations={max_iterations}"
            break
        if max_clearings is not None and evaluator.clearings - before > max_clearings:
            stopped = f"more than max_clearings={max_clearings} clearings"
            break
        iteration += 1
        active = [p for p in players if len(sets[p]) > 1]
        fixed = {p: sets[p][0] for p in players if len(sets[p]) == 1}
        game = payoff_table(evaluator, {p: sets[p] for p in active}, fixed)
        solution = solve_restricted(game, tol)
        solver = solution.solver
        if math.isinf(solution.regret):
            stopped = f"no equilibrium of the restricted game {game.shape} found ({solver})"
            break
        restricted = {p: {s: float(q) for s, q in zip(game.strategies[p], solution.mixed[p])
                          if q > 0} for p in active}
        mixed = {p: restricted.get(p, {fixed.get(p): 1.0}) for p in players}
        deviations = mixed_deviations(evaluator, mixed, max_profiles=size)
        added = 0
        for p, gain in deviations.regret.items():
            if gain > tol:
                values = deviations.profits[p]
                best = space[int(np.flatnonzero(values >= values.max() - TIE_TOLERANCE_EUR)[0])]
                if best not in sets[p]:
                    sets[p] = sorted([*sets[p], best], key=order.__getitem__)
                    added += 1
        if deviations.epsilon <= tol:
            converged = True
            break
        if added == 0:
            stopped = (f"the restricted equilibrium ({solver}, regret {solution.regret:.3g} "
                       f"EUR) is not accurate enough for tol={tol:g} EUR")
            break
    return DoubleOracleResult(mixed, deviations, converged, sets, iteration,
                              evaluator.clearings - before, solver, stopped)


# --- the search ------------------------------------------------------------------------------

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
    a budget, the fallback is the coarse correlated equilibrium of at most ``cce_rounds``
    rounds of regret matching from the first profile, stopped once every regret is within
    ``tol`` (:func:`flexgame.games.no_regret.regret_matching`, drawn with ``rng``); its
    epsilon may exceed ``tol`` after ``cce_rounds`` rounds: it is what the certificate says.
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
    learning = regret_matching(evaluator, profiles[0], cce_rounds, rng, tol=tol)
    support, probabilities = distinct_profiles(evaluator, learning.profiles)
    found = correlated_equilibrium(evaluator, support, probabilities)
    return replace(found, clearings=evaluator.clearings - before,
                   note=f"{how}; double oracle stopped ({oracle.stopped}); "
                        f"{learning.rounds} rounds of regret matching")


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
