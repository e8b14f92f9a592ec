"""The FSPs' market game in normal form: payoff tables cut out of a :class:`GameEvaluator`,
their pure equilibria and regrets, and the bridges to the equilibrium solvers of nashpy
(two players; Knight & Campbell, J. Open Source Softw. 3(30), 2018) and Gambit (n players;
McKelvey, McLennan & Turocy, Gambit: Software Tools for Game Theory, www.gambit-project.org).

A table is the game *restricted* to per-player strategy sets, the other players fixed: the
restricted games of the double oracle (:mod:`flexgame.games.equilibria`), or the whole game
of a tiny market (every player, every strategy) for brute-force checks. Every entry is one
clearing of the scheme (:meth:`GameEvaluator.outcome`, cached), so a table of the whole game
costs |strategies| ^ |players| clearings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy

Profile = dict[str, Strategy]

PURE_TOLERANCE_EUR = 1e-6
"""Gain [EUR] below which a deviation does not count (the tie tolerance of best responses)."""


@dataclass(frozen=True)
class NormalForm:
    """A finite game: the active players choose from their strategy sets, every other
    player plays its fixed strategy.

    Attributes:
        players: the active players, in axis order.
        strategies: per active player, its strategies (axis index -> strategy).
        fixed: the strategy of every player that is not active.
        payoffs: per active player, the profit [EUR] of its FSP at every profile of the
            table, an array of shape ``shape`` indexed by the active players' strategy
            indices.
        cost_eur: the procurement cost [EUR] at every profile of the table.
    """

    players: list[str]
    strategies: dict[str, list[Strategy]]
    fixed: Profile
    payoffs: dict[str, np.ndarray]
    cost_eur: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.strategies[p]) for p in self.players)

    def __repr__(self) -> str:
        sizes = " x ".join(str(n) for n in self.shape) or "1"
        return (f"NormalForm({len(self.players)} active players, {sizes} strategies, "
                f"{len(self.fixed)} fixed)")

    def profile(self, index: tuple[int, ...]) -> Profile:
        """The complete pure profile at a table index (fixed players included)."""
        return {**self.fixed, **{p: self.strategies[p][i] for p, i in zip(self.players, index)}}

    def index(self, profile: Profile) -> tuple[int, ...]:
        """The table index of a complete profile (its active players' strategy indices)."""
        return tuple(self.strategies[p].index(profile[p]) for p in self.players)

    def profiles(self) -> Iterator[Profile]:
        """Every pure profile of the table, in index order."""
        return (self.profile(i) for i in np.ndindex(*self.shape))

    def payoff(self, profile: Profile, player: str) -> float:
        """Profit [EUR] of ``player``'s FSP at ``profile``."""
        return float(self.payoffs[player][self.index(profile)])

    def deviation_payoffs(self, profile: Profile, player: str) -> dict[Strategy, float]:
        """Profit [EUR] of ``player``'s FSP for each of its strategies, the others as in
        ``profile``."""
        index = list(self.index(profile))
        axis = self.players.index(player)
        index[axis] = slice(None)
        return dict(zip(self.strategies[player], self.payoffs[player][tuple(index)].tolist()))


def payoff_table(evaluator: GameEvaluator, strategy_sets: dict[str, list[Strategy]] | None = None,
                 fixed_profile: Profile | None = None) -> NormalForm:
    """The game restricted to ``strategy_sets`` (per active player, the strategies it may
    play; default: every player, all strategies of the space), every other player playing
    its strategy in ``fixed_profile``. Clears each profile of the table once (cached by the
    evaluator)."""
    players = evaluator.bid_map.players
    if strategy_sets is None:
        strategy_sets = {p: evaluator.bid_map.space.strategies for p in players}
    fixed = {p: s for p, s in (fixed_profile or {}).items() if p not in strategy_sets}
    missing = [p for p in players if p not in strategy_sets and p not in fixed]
    if missing:
        raise ValueError(f"no strategy for players {missing}: give a strategy set or a fixed "
                         "strategy for every player")
    active = [p for p in players if p in strategy_sets]
    strategies = {p: list(dict.fromkeys(strategy_sets[p])) for p in active}
    shape = tuple(len(strategies[p]) for p in active)
    payoffs = {p: np.empty(shape) for p in active}
    cost = np.empty(shape)
    owner = evaluator.bid_map.owner
    for index in np.ndindex(*shape):
        profile = {**fixed, **{p: strategies[p][i] for p, i in zip(active, index)}}
        out = evaluator.outcome(profile)
        cost[index] = out.cost_eur
        for p in active:
            payoffs[p][index] = out.profit[owner[p]]
    return NormalForm(active, strategies, fixed, payoffs, cost)


def regret_tables(game: NormalForm) -> dict[str, np.ndarray]:
    """Per active player, its regret at every profile of the table [EUR]: the gain of its
    best deviation within its strategy set, the others unchanged (>= 0)."""
    return {p: game.payoffs[p].max(axis=a, keepdims=True) - game.payoffs[p]
            for a, p in enumerate(game.players)}


def regrets(game: NormalForm, profile: Profile) -> dict[str, float]:
    """Every active player's regret [EUR] at ``profile`` (within the table)."""
    index = game.index(profile)
    return {p: float(r[index]) for p, r in regret_tables(game).items()}


def pure_equilibria(game: NormalForm, tol: float = PURE_TOLERANCE_EUR) -> list[Profile]:
    """Every pure profile at which no active player gains more than ``tol`` [EUR] by a
    unilateral deviation within its strategy set (brute force over the table)."""
    worst = np.zeros(game.shape)
    for r in regret_tables(game).values():
        worst = np.maximum(worst, r)
    return [game.profile(tuple(int(i) for i in index))
            for index in zip(*np.nonzero(worst <= tol))]


def expected_payoffs(game: NormalForm, mixed: dict[str, np.ndarray], player: str) -> np.ndarray:
    """Expected profit [EUR] of each of ``player``'s strategies when every other active
    player q mixes with probabilities ``mixed[q]`` over its strategy set (independently)."""
    table = np.moveaxis(game.payoffs[player], game.players.index(player), 0)
    for q in reversed([q for q in game.players if q != player]):
        table = table @ mixed[q]  # contracts the last axis: the last other player's
    return table


def mixed_regrets(game: NormalForm, mixed: dict[str, np.ndarray]) -> dict[str, float]:
    """Every active player's regret [EUR] at the mixed profile ``mixed`` (probabilities over
    each player's strategy set): its best expected profit within its set minus the expected
    profit of its mixed strategy, the others mixing independently (>= 0)."""
    out = {}
    for p in game.players:
        values = expected_payoffs(game, mixed, p)
        out[p] = max(float(values.max() - mixed[p] @ values), 0.0)
    return out


def expected_cost(game: NormalForm, mixed: dict[str, np.ndarray]) -> float:
    """Expected procurement cost [EUR] of the mixed profile ``mixed`` (independent mixing)."""
    table = game.cost_eur
    for q in reversed(game.players):
        table = table @ mixed[q]
    return float(table)


def to_nashpy(game: NormalForm):
    """The two-player table as a :class:`nashpy.Game` (row player: ``game.players[0]``)."""
    import nashpy

    if len(game.players) != 2:
        raise ValueError(f"nashpy solves two-player games, not {len(game.players)}")
    return nashpy.Game(*(game.payoffs[p] for p in game.players))


def to_gambit(game: NormalForm):
    """The table as a strategic-form :class:`pygambit.Game`, players and strategies labelled
    by name and strategy (payoffs [EUR] as floats)."""
    import pygambit as gbt

    g = gbt.Game.from_arrays(*(game.payoffs[p].astype(float) for p in game.players),
                             title="flexibility market game")
    for player, name in zip(g.players, game.players):
        player.label = name
        for strategy, s in zip(player.strategies, game.strategies[name]):
            strategy.label = str(s)
    return g

