"""No-regret learning in the FSPs' market game: regret matching, whose empirical distribution
of play is an approximate coarse correlated equilibrium with an exact certificate.

Regret matching (Hart & Mas-Colell, "A simple adaptive procedure leading to correlated
equilibrium", Econometrica 68(5), 2000; the unconditional-regret variant, whose empirical
play approaches the set of coarse correlated equilibria, the Hannan set): every round each
player plays a strategy drawn with probability proportional to its positive cumulative
regret (uniformly when none is positive; the first round plays the start profile), and
then, for every strategy s of the full space, adds u(s, others' play) - u(its play) to the
regret of s. Each round costs players x strategies clearings (the profile played is one of
them; all cached).

The certificate needs no sampling: the empirical distribution of the T profiles played is a
coarse correlated equilibrium whose epsilon is exactly the largest average external regret
max_s R(s) / T over players. Blackwell's approachability argument bounds it: with payoff
range Delta [EUR] and S strategies, E[max_s R(s) / T] <= Delta sqrt(S - 1) / sqrt(T) (Hart &
Mas-Colell 2000; Cesa-Bianchi & Lugosi, Prediction, Learning, and Games, CUP 2006, sec. 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy

Profile = dict[str, Strategy]


@dataclass(frozen=True)
class NoRegretResult:
    """The play of a no-regret learning run.

    Attributes:
        profiles: the pure profile played in each round (the empirical distribution).
        regret: per player, its largest average external regret [EUR] (>= 0): its best gain
            from playing one fixed strategy in every round instead, the others as played.
        cumulative_regret: per player, R(s) [EUR] for every strategy s of the space.
        payoff_range: per player, the largest minus the smallest profit it met [EUR].
        clearings: clearings run.
        stopped: why it stopped before its rounds ("" if it played them all).
    """

    profiles: list[Profile]
    regret: dict[str, float]
    cumulative_regret: dict[str, np.ndarray]
    payoff_range: dict[str, float]
    clearings: int
    stopped: str = ""

    @property
    def rounds(self) -> int:
        return len(self.profiles)

    @property
    def epsilon(self) -> float:
        """Epsilon [EUR] of the empirical distribution as a coarse correlated equilibrium."""
        return max(self.regret.values(), default=0.0)

    def bound(self, strategies: int) -> dict[str, float]:
        """Per player, the regret-matching bound Delta sqrt(S - 1) / sqrt(T) [EUR] on the
        expected average regret, S = ``strategies``."""
        return {p: d * np.sqrt(strategies - 1) / np.sqrt(self.rounds)
                for p, d in self.payoff_range.items()}

    def __repr__(self) -> str:
        return (f"NoRegretResult({self.rounds} rounds, epsilon {self.epsilon:.3g} EUR, "
                f"{self.clearings} clearings)")


def regret_matching(evaluator: GameEvaluator, start: Profile, rounds: int,
                    rng: np.random.Generator, max_clearings: int | None = None,
                    tol: float | None = None, min_rounds: int = 10) -> NoRegretResult:
    """Regret matching (Hart & Mas-Colell 2000, unconditional regrets) from ``start`` for at
    most ``rounds`` rounds, strategies drawn with ``rng`` (one draw per player with positive
    regret per round, in player order; a player without positive regret keeps its strategy,
    which the procedure allows and which keeps most profiles cached in large games). Stops
    early once more than ``max_clearings`` clearings were run, or, after ``min_rounds``
    rounds, once every player's average regret is at most ``tol`` [EUR]: the empirical
    distribution is then a ``tol``-coarse correlated equilibrium."""
    players = evaluator.bid_map.players
    strategies = evaluator.bid_map.space.strategies
    n = len(strategies)
    index = {s: i for i, s in enumerate(strategies)}
    cumulative = {p: np.zeros(n) for p in players}
    low = {p: np.inf for p in players}
    high = {p: -np.inf for p in players}
    before = evaluator.clearings
    played: list[Profile] = []
    stopped = ""
    for t in range(rounds):
        if t == 0:
            profile = dict(start)
        else:
            profile = {}
            for p in players:
                positive = np.maximum(cumulative[p], 0.0)
                total = positive.sum()
                profile[p] = (strategies[int(rng.choice(n, p=positive / total))] if total > 0
                              else played[-1][p])
        played.append(profile)
        payoffs = evaluator.deviation_payoffs.many([(profile, p, None) for p in players])
        for p, u in zip(players, payoffs):
            cumulative[p] += u - u[index[profile[p]]]
            low[p], high[p] = min(low[p], u.min()), max(high[p], u.max())
        if max_clearings is not None and evaluator.clearings - before > max_clearings:
            stopped = f"more than max_clearings={max_clearings} clearings after {t + 1} rounds"
            break
        if tol is not None and t + 1 >= min_rounds and all(
                cumulative[p].max() / (t + 1) <= tol for p in players):
            stopped = f"every average regret within tol={tol:g} EUR after {t + 1} rounds"
            break
    rounds_played = len(played)
    regret = {p: max(float(cumulative[p].max()) / rounds_played, 0.0) for p in players}
    return NoRegretResult(played, regret, cumulative,
                          {p: float(high[p] - low[p]) for p in players},
                          evaluator.clearings - before, stopped)
