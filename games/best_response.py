"""What one player computes: its exact best response over the discrete strategy set, its best
response to sampled opponents, its payoffs against sampled opponents, and the equilibrium
certificate built from best responses.

The best response of player i to the others' profile is the best of the payoffs of all of i's
strategies with the others fixed (an exhaustive search, exact on the grid), each found by
re-clearing the scheme or, where exact, read off the price ranges of a nearby clearing
(:mod:`flexgame.games.deviations`). Ties
(within ``tol`` EUR) follow a tie rule (:data:`TIE_RULES`): by default they keep the current
strategy, then the lowest markup, so that iterated best response stops at a fixed point
instead of wandering between equally good strategies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy

TIE_TOLERANCE_EUR = 1e-6
TIE_RULES = ("keep_then_lowest", "lowest", "highest")
"""How a best response chooses among equally good strategies: keep the current one if it is
among them, else the lowest (markup, withholding, ...) index; always the lowest; always the
highest."""


@dataclass(frozen=True)
class BestResponse:
    """Best strategy of one player, its payoff and the payoff of its current strategy [EUR]
    (the profit of the player's FSP), and the payoff of every strategy."""

    fsp: str
    strategy: Strategy
    payoff: float
    current_payoff: float
    payoffs: dict[Strategy, float]

    @property
    def regret(self) -> float:
        """Gain of deviating to the best response [EUR] (>= 0)."""
        return max(self.payoff - self.current_payoff, 0.0)

    def __repr__(self) -> str:
        return (f"BestResponse({self.fsp} -> {self.strategy}, {self.payoff:.2f} EUR, "
                f"regret {self.regret:.3g} EUR)")


def best_response(evaluator: GameEvaluator, profile: dict[str, Strategy], fsp: str,
                  tol: float = TIE_TOLERANCE_EUR,
                  tie_rule: str = "keep_then_lowest") -> BestResponse:
    """Exhaustive best response of player ``fsp`` (an FSP, or one resource of an FSP that
    prices per resource) to ``profile`` (its own entry is its current strategy); strategies
    within ``tol`` EUR of the best are tied and chosen by ``tie_rule`` (:data:`TIE_RULES`)."""
    current = profile[fsp]
    strategies = evaluator.bid_map.space.strategies
    payoffs = dict(zip(strategies, evaluator.deviation_payoffs(profile, fsp).tolist()))
    best_value = max(payoffs.values())
    tied = [s for s, v in payoffs.items() if v >= best_value - tol]
    if tie_rule == "keep_then_lowest" and current in tied:
        choice = current
    elif tie_rule == "highest":
        choice = max(tied)
    else:
        choice = min(tied)
    return BestResponse(fsp, choice, payoffs[choice], payoffs[current], payoffs)


@dataclass(frozen=True)
class SampledResponse:
    """Best response to sampled opponents: the strategy, its mean payoff over the sample and
    the standard error of that mean [EUR]."""

    strategy: Strategy
    expected_payoff: float
    standard_error: float


def sampled_best_response(evaluator: GameEvaluator, beliefs: list[dict[str, Strategy]],
                          player: str, tol: float = TIE_TOLERANCE_EUR) -> SampledResponse:
    """Best response of ``player`` to opponents it is unsure of (the cognitive hierarchy's
    level-k player): the strategy of highest mean payoff over ``beliefs``, opponent profiles
    drawn from its belief (its own entry is replaced), the same draws for every strategy.
    Ties within ``tol`` EUR go to the lowest strategy."""
    samples = len(beliefs)
    best, best_mean, best_se = None, -np.inf, 0.0
    table = sampled_payoffs(evaluator, beliefs, player)
    for j, s in enumerate(evaluator.bid_map.space.strategies):
        values = table[:, j]
        mean = float(np.mean(values))
        if mean > best_mean + tol:
            best, best_mean = s, mean
            best_se = float(np.std(values, ddof=1) / np.sqrt(samples)) if samples > 1 else 0.0
    return SampledResponse(best, best_mean, best_se)


def sampled_payoffs(evaluator: GameEvaluator, profiles: list[dict[str, Strategy]],
                    player: str) -> np.ndarray:
    """Payoff [EUR] of ``player`` for each of its strategies (columns, in the order of the
    strategy space) against each of ``profiles`` (rows; its own entry is replaced): the
    sampled expectations of the logit response."""
    return np.array(evaluator.deviation_payoffs.many([(d, player, None) for d in profiles]))


@dataclass(frozen=True)
class Certificate:
    """Regret of every player at a profile and epsilon = the largest regret [EUR]; epsilon = 0
    certifies a pure Nash equilibrium of the discrete game."""

    regret: dict[str, float]

    @property
    def epsilon(self) -> float:
        return max(self.regret.values(), default=0.0)

    def __repr__(self) -> str:
        worst = max(self.regret, key=self.regret.get, default=None)
        return (f"Certificate(epsilon {self.epsilon:.3g} EUR over {len(self.regret)} players"
                + (f", largest regret {worst})" if self.epsilon > 0 else ")"))


def certificate(evaluator: GameEvaluator, profile: dict[str, Strategy],
                players: list[str] | None = None,
                stop_above: float | None = None) -> Certificate:
    """The regret of every player at ``profile`` (one exact best response each), in the
    order of ``players`` (default: the profile's); ``stop_above`` [EUR]: stop after the first
    player whose regret exceeds it (the certificate then holds only the players examined)."""
    regret = {}
    for f in players or list(profile):
        regret[f] = best_response(evaluator, profile, f).regret
        if stop_above is not None and regret[f] > stop_above:
            break
    return Certificate(regret)
