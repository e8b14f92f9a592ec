"""Strategic KPIs of a reasoning run (ALEXANDER D4.1, KER 2): the strategic outcome's cost
against truthful bidding (price of anarchy), markups, FSP profits, the equilibrium certificate,
market concentration (HHI) and pivotal suppliers per market layer."""

from __future__ import annotations

import numpy as np

from flexgame.games.best_response import certificate, sampled_payoffs
from flexgame.games.dynamics import logit_response
from flexgame.games.payoff import GameEvaluator, mean_outcome
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


def strategic_metrics(evaluator: GameEvaluator, final: dict, status: str, rounds: int,
                      cycle: list[dict], truthful_common_cost: float,
                      mixed: dict[str, np.ndarray] | None = None, samples: int = 20,
                      rng: np.random.Generator | None = None) -> dict:
    """Metrics of a strategic outcome: of the final profile, of a best-response cycle (its
    time average) or of a mixed profile ``mixed`` (logit response: the mean over ``samples``
    profiles drawn with ``rng``, its epsilon the largest sampled regret of a mixed strategy).

    Keys: truthful_cost, strategic_cost [EUR], price_of_anarchy [-] (strategic / truthful
    cost of the same scheme), inefficiency_vs_truthful_common_pct, mean_markup, max_markup
    (over players, of the final profile, the cycle or the sample), fsp_profit_total [EUR],
    status, iterations, epsilon [EUR], outcome_basis, cost_standard_error and
    epsilon_standard_error [EUR] (sampled outcomes only), cycle_length, cycle markup range,
    HHI per layer of the final profile (0-10000, ``ClearingResult.statistics.hhi``) and its
    maximum, pivotal FSPs per layer and their number. The final profile's clearing is taken
    from the evaluator (:meth:`GameEvaluator.result`): not cleared again if it was cleared
    last.
    """
    truthful = evaluator.outcome(evaluator.bid_map.truthful())
    cost_se = epsilon_se = float("nan")
    if mixed is not None:
        if rng is None:
            raise ValueError("a mixed profile is evaluated by sampling: pass its seeded rng")
        step = logit_response(lambda p, profiles: sampled_payoffs(evaluator, profiles, p),
                              mixed, evaluator.bid_map.space.strategies, 0.0, samples, rng)
        visited, basis = step.draws, f"mixed profile, mean of {samples} sampled profiles"
        epsilon = max(step.regret.values())
        epsilon_se = max(step.standard_error.values())
    else:
        visited = cycle if cycle else [final]
        basis = f"time average of a {len(cycle)}-profile cycle" if cycle else "final profile"
        epsilon = certificate(evaluator, final).epsilon
    outcomes = [evaluator.outcome(p) for p in visited]
    mean = mean_outcome(outcomes)
    if mixed is not None and len(outcomes) > 1:
        cost_se = float(np.std([o.cost_eur for o in outcomes], ddof=1) / np.sqrt(len(outcomes)))
    markups = np.array([[evaluator.bid_map.markup_of(s) for s in p.values()] for p in visited])
    hhi = evaluator.result(final).statistics.hhi().to_dict()
    pivotal = pivotal_suppliers(evaluator, final)
    return {
        "truthful_cost": truthful.cost_eur,
        "strategic_cost": mean.cost_eur,
        "price_of_anarchy": (mean.cost_eur / truthful.cost_eur if truthful.cost_eur > 0
                             else float("nan")),
        "inefficiency_vs_truthful_common_pct": inefficiency_pct(mean.cost_eur,
                                                                truthful_common_cost),
        "mean_markup": float(markups.mean()),
        "max_markup": float(markups.max()),
        "fsp_profit_total": float(sum(mean.profit.values())),
        "strategic_unmet_need_mw": mean.unmet_need_mw,
        "status": status,
        "iterations": rounds,
        "epsilon": epsilon,
        "outcome_basis": basis,
        "cost_standard_error": cost_se,
        "epsilon_standard_error": epsilon_se,
        "cycle_length": len(cycle),
        "cycle_min_markup": float(markups.min()) if cycle else float("nan"),
        "cycle_max_markup": float(markups.max()) if cycle else float("nan"),
        "hhi_max": max(hhi.values(), default=0.0),
        "hhi_by_layer": hhi,
        "pivotal_fsps": len({f for fs in pivotal.values() for f in fs}),
        "pivotal_fsps_by_layer": pivotal,
    }
