"""Mixed Nash equilibria by the double oracle: restricted games solved exactly or closely,
grown by best responses in the full game (McMahan, Gordon & Blum, "Planning in the presence of
cost functions controlled by an adversary", ICML 2003). For n-player general-sum games the loop
still ends (each round adds a strategy), in the worst case with the full game; budgets stop it
earlier.

Restricted games are solved by nashpy (two players: Lemke-Howson from every dropped label,
Lemke & Howson, J. SIAM 12, 1964; Knight & Campbell, JOSS 3(30), 2018) and by Gambit (three or
more: the logit quantal-response path to its Nash limit, Turocy, Games Econ. Behav. 51, 2005;
the global Newton method of Govindan & Wilson, J. Econ. Theory 110, 2003, if that falls
short). nashpy's support enumeration compares floats exactly and misses equilibria of these
tie-heavy games, and its vertex enumeration takes minutes on a degenerate 15 x 15 game;
Lemke-Howson takes milliseconds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from flexgame.games.best_response import TIE_TOLERANCE_EUR
from flexgame.games.mixed import (
    MAX_PROFILES,
    SAME_DISTRIBUTION,
    Deviations,
    MixedProfile,
    Profile,
    mixed_deviations,
)
from flexgame.games.normal_form import (
    NormalForm,
    expected_cost,
    mixed_regrets,
    payoff_table,
    to_gambit,
    to_nashpy,
)
from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy

TOLERANCE_EUR = 1e-3
"""Default epsilon target [EUR]: no player may gain more than this by deviating."""
SUPPORT_TOLERANCE = 1e-6
"""Probability below which a numerical solver's strategy is dropped from the support."""


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


def check_clearings(mixed: MixedProfile, n_strategies: int) -> int:
    """Clearings the full-game check of ``mixed`` may run (before the cache): every strategy
    of the space of each player against every profile of the product of the others'
    supports."""
    sizes = [len(d) for d in mixed.values()]
    return sum(math.prod(sizes[:i] + sizes[i + 1:]) for i in range(len(sizes))) * n_strategies


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
    ``max_iterations`` restricted games, when the next restricted game or the full-game
    check of its equilibrium (:func:`check_clearings`) would take the clearings run past
    ``max_clearings``, or when the restricted solver is not accurate enough to make progress.
    """
    players = evaluator.bid_map.players
    space = evaluator.bid_map.space.strategies
    order = {s: i for i, s in enumerate(space)}
    sets = {p: sorted(set(strategy_sets[p]), key=order.__getitem__) for p in players}
    before = evaluator.clearings
    mixed, deviations, solver, stopped = None, None, "", ""

    def remaining() -> int | None:
        """Clearings left of the budget (None: no budget)."""
        return None if max_clearings is None else max_clearings - (evaluator.clearings - before)

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
        left = remaining()
        if left is not None and size > left:
            stopped = (f"the restricted game of {size:.3g} pure profiles would take more than "
                       f"the {left} clearings left of max_clearings={max_clearings}")
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
        candidate = {p: restricted.get(p, {fixed.get(p): 1.0}) for p in players}
        needed = check_clearings(candidate, len(space))
        left = remaining()
        if left is not None and needed > left:
            stopped = (f"checking the restricted equilibrium in the full game would take up to "
                       f"{needed:.3g} clearings, more than the {left} left of "
                       f"max_clearings={max_clearings}")
            break
        mixed = candidate
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
