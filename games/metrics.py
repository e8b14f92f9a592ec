"""Strategic KPIs of a reasoning run (ALEXANDER D4.1, KER 2): the strategic outcome as a named
solution concept with its certificate, its cost against truthful bidding (price of anarchy and
of stability), markups, FSP profits, market concentration (HHI) and pivotal suppliers per
market layer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from flexgame.games.equilibria import (
    PURE_NASH,
    Equilibrium,
    correlated_equilibrium,
    mixed_equilibrium,
    pure_equilibrium,
)
from flexgame.games.mixed import Profile, distinct_profiles
from flexgame.games.payoff import GameEvaluator
from flexgame.markets.kpis import inefficiency_pct


def pivotal_suppliers(evaluator: GameEvaluator, profile: dict,
                      tol: float = 1e-6) -> dict[str, list[str]]:
    """Pivotal FSPs per market layer: those without whose bids (the others as in
    ``profile``) the layer leaves more need unmet, or pays more penalty for limits it cannot
    meet, than with them (a pivotal FSP can ask up to the operator's penalty price)."""
    price, quantity, forward = evaluator.bid_map.declare(profile)

    def shortfall(result) -> dict[str, tuple[float, float]]:
        return {l.name: (l.outcome.unmet_need_mw, l.outcome.objective_eur - l.outcome.cost_eur)
                for l in result.layers}

    base = shortfall(evaluator.result(profile))
    pivotal: dict[str, list[str]] = {name: [] for name in base}
    for f, rows in evaluator.bid_map.fsp_rows.items():
        q = quantity.copy()
        q[rows] = 0.0
        for name, (unmet, penalty) in shortfall(evaluator.scheme.clear(price, q, forward)).items():
            if unmet > base[name][0] + tol or penalty > base[name][1] + 1e-3:
                pivotal[name].append(f)
    return pivotal


CONCEPTS = {
    "converged": PURE_NASH,
    "cycle": "best-response cycle (time average)",
    "capped": "capped best-response profile",
    "level_k": "level-k",
    "cognitive_hierarchy": "cognitive hierarchy",
    "logit": "logit quantal response",
}
"""The solution concept of each way a reasoning process ends (the equilibrium reasoning names
its own: pure Nash, mixed Nash or coarse correlated equilibrium)."""


def certified_outcome(evaluator: GameEvaluator, status: str, final: Profile,
                      cycle: list[Profile], mixed: dict[str, np.ndarray] | None = None,
                      samples: int = 20, rng: np.random.Generator | None = None) -> Equilibrium:
    """Where a reasoning process ended, as a distribution over pure profiles with its named
    concept and certificate (epsilon in the full game, :mod:`flexgame.games.equilibria`):

    * a fixed point of best responses: a pure Nash equilibrium (epsilon 0);
    * a best-response cycle: the uniform distribution over its profiles (its time average),
      whose epsilon is its exact regret as a coarse correlated distribution: how far the time
      average is from an equilibrium (use reasoning ``equilibrium`` for an equilibrium);
    * a capped run, level-k and cognitive hierarchy: the final pure profile and its
      certificate (distance to equilibrium);
    * logit: the mixed profile ``mixed`` (probabilities over the strategy space), its
      expected outcome and epsilon over ``samples`` profiles drawn with ``rng``.
    """
    strategies = evaluator.bid_map.space.strategies
    if mixed is not None:
        as_dict = {p: {s: float(q) for s, q in zip(strategies, m) if q > 0}
                   for p, m in mixed.items()}
        found = mixed_equilibrium(evaluator, as_dict, samples=samples, rng=rng)
    elif status == "cycle":
        found = correlated_equilibrium(evaluator, *distinct_profiles(evaluator, cycle))
    else:
        found = pure_equilibrium(evaluator, final)
    return replace(found, concept=CONCEPTS.get(status, found.concept))


def _markups(evaluator: GameEvaluator, profile: Profile) -> np.ndarray:
    return np.array([evaluator.bid_map.markup_of(s) for s in profile.values()])


def _price_range(evaluator: GameEvaluator, cycle: list[Profile]) -> tuple[float, float]:
    """Lowest and highest declared price [EUR/MW] of the bids whose player moves in the
    cycle (nan, nan without one)."""
    bm = evaluator.bid_map
    moving = [p for p in bm.players if len({d[p] for d in cycle}) > 1]
    if not moving:
        return float("nan"), float("nan")
    rows = np.concatenate([bm.rows[p] for p in moving])
    prices = np.array([bm.declare(d)[0][rows] for d in cycle])
    return float(prices.min()), float(prices.max())


def strategic_metrics(evaluator: GameEvaluator, outcome: Equilibrium, status: str, rounds: int,
                      final: Profile, cycle: list[Profile], truthful_common_cost: float,
                      equilibria: list[Equilibrium] | None = None) -> dict:
    """Metrics of a strategic outcome (:func:`certified_outcome`, or the equilibrium of
    reasoning ``equilibrium``). Costs are what the buyers pay under the settlement rule
    (the declared cost beside them).

    Keys: equilibrium_concept, epsilon [EUR], epsilon_standard_error [EUR] (nan when exact),
    epsilon_share_pct (epsilon over the outcome's cost [%]), support_size, truthful_cost and
    strategic_cost [EUR] (payments; ``*_declared_cost``: accepted MW x declared price),
    cost_standard_error [EUR] (sampled outcomes), price_of_anarchy and price_of_stability
    [-] (dearest and cheapest of ``equilibria``, else of the outcome, over the truthful cost
    of the same scheme), equilibria_found, inefficiency_vs_truthful_common_pct,
    mean_markup, max_markup, share_at_grid_top (expected over the outcome's distribution),
    fsp_profit_total [EUR], strategic_unmet_need_mw, status, iterations, the cycle's length
    and its markup and price range [EUR/MW], HHI per layer of the final profile (0-10000)
    and its maximum, pivotal FSPs per layer and their number, equilibrium_note and
    equilibrium_clearings. The final profile's clearing comes from the evaluator's cache.
    """
    truthful = evaluator.outcome(evaluator.bid_map.truthful())
    cost = outcome.outcome.payment_eur
    found = equilibria or [outcome]
    costs = [e.outcome.payment_eur for e in found]
    weights = np.asarray(outcome.probabilities, dtype=float)
    top = len(evaluator.bid_map.space.markups) - 1
    markups = [_markups(evaluator, d) for d in outcome.profiles]
    at_top = [np.mean([s[0] == top for s in d.values()]) for d in outcome.profiles]
    sampled = not np.isnan(outcome.epsilon_standard_error) and len(outcome.profiles) > 1
    cost_se = (float(np.std([evaluator.outcome(d).payment_eur for d in outcome.profiles],
                            ddof=1) / np.sqrt(len(outcome.profiles)))
               if sampled else float("nan"))
    visited = cycle or [final]
    cycle_markups = np.concatenate([_markups(evaluator, d) for d in visited])
    low_price, high_price = _price_range(evaluator, cycle) if cycle else (float("nan"),) * 2
    hhi = evaluator.result(final).statistics.hhi().to_dict()
    pivotal = pivotal_suppliers(evaluator, final)
    ratio = (lambda c: c / truthful.payment_eur if truthful.payment_eur > 0 else float("nan"))
    return {
        "equilibrium_concept": outcome.concept,
        "epsilon": outcome.epsilon,
        "epsilon_standard_error": outcome.epsilon_standard_error,
        "epsilon_share_pct": 100.0 * outcome.epsilon / cost if cost > 0 else float("nan"),
        "support_size": outcome.support_size,
        "truthful_cost": truthful.payment_eur,
        "truthful_declared_cost": truthful.cost_eur,
        "strategic_cost": cost,
        "strategic_declared_cost": outcome.outcome.cost_eur,
        "cost_standard_error": cost_se,
        "price_of_anarchy": ratio(max(costs)),
        "price_of_stability": ratio(min(costs)),
        "equilibria_found": len(found),
        "inefficiency_vs_truthful_common_pct": inefficiency_pct(cost, truthful_common_cost),
        "mean_markup": float(weights @ [m.mean() for m in markups]),
        "max_markup": float(max(m.max() for m in markups)),
        "share_at_grid_top": float(weights @ at_top),
        "fsp_profit_total": float(sum(outcome.outcome.profit.values())),
        "strategic_unmet_need_mw": outcome.outcome.unmet_need_mw,
        "status": status,
        "iterations": rounds,
        "cycle_length": len(cycle),
        "cycle_min_markup": float(cycle_markups.min()) if cycle else float("nan"),
        "cycle_max_markup": float(cycle_markups.max()) if cycle else float("nan"),
        "cycle_min_price_eur_per_mw": low_price,
        "cycle_max_price_eur_per_mw": high_price,
        "hhi_max": max(hhi.values(), default=0.0),
        "hhi_by_layer": hhi,
        "pivotal_fsps": len({f for fs in pivotal.values() for f in fs}),
        "pivotal_fsps_by_layer": pivotal,
        "equilibrium_note": outcome.note,
        "equilibrium_clearings": outcome.clearings,
    }
