"""Exact best response over a discrete strategy set, and the equilibrium certificate.

The best response of FSP i to the others' profile is found by re-clearing the scheme for
each of i's strategies with the others fixed (an exhaustive search, exact on the grid).
Ties (within ``tol`` EUR) keep the current strategy, then the lowest markup (SPEC §7).
"""

from __future__ import annotations

from dataclasses import dataclass

from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy

TIE_TOLERANCE_EUR = 1e-6


@dataclass(frozen=True)
class BestResponse:
    """Best strategy of one FSP, its payoff, the payoff of its current strategy [EUR]."""

    fsp: str
    strategy: Strategy
    payoff: float
    current_payoff: float
    payoffs: dict[Strategy, float]

    @property
    def regret(self) -> float:
        """Gain of deviating to the best response [EUR] (>= 0)."""
        return max(self.payoff - self.current_payoff, 0.0)


def best_response(evaluator: GameEvaluator, profile: dict[str, Strategy], fsp: str,
                  tol: float = TIE_TOLERANCE_EUR) -> BestResponse:
    """Exhaustive best response of player ``fsp`` (an FSP, or one resource of an FSP that
    prices per resource) to ``profile`` (its own entry is its current strategy)."""
    current = profile[fsp]
    payoffs = {}
    for s in evaluator.bid_map.space.strategies:
        trial = dict(profile)
        trial[fsp] = s
        payoffs[s] = evaluator.payoff(trial, fsp)
    best_value = max(payoffs.values())
    if payoffs[current] >= best_value - tol:
        choice = current
    else:
        choice = min(s for s, v in payoffs.items() if v >= best_value - tol)
    return BestResponse(fsp, choice, payoffs[choice], payoffs[current], payoffs)


@dataclass(frozen=True)
class Certificate:
    """Regret of every FSP at a profile and epsilon = the largest regret [EUR]; epsilon = 0
    certifies a pure Nash equilibrium of the discrete game."""

    regret: dict[str, float]

    @property
    def epsilon(self) -> float:
        return max(self.regret.values(), default=0.0)


def certificate(evaluator: GameEvaluator, profile: dict[str, Strategy]) -> Certificate:
    return Certificate({f: best_response(evaluator, profile, f).regret for f in profile})
