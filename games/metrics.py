"""Strategic KPIs of a reasoning run (SPEC §6, strategic part)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from games.best_response import certificate
from games.payoff import GameEvaluator
from markets.kpis import inefficiency_pct


def hhi_by_layer(result, bids: pd.DataFrame) -> dict[str, float]:
    """Herfindahl-Hirschman index of accepted MW per market layer (0-10000)."""
    out = {}
    for layer in result.layers:
        a = layer.outcome.activation_mw
        if a.sum() <= 0:
            continue
        shares = pd.Series(a).groupby(bids.fsp.to_numpy()).sum() / a.sum()
        out[layer.name] = float(10000 * (shares**2).sum())
    return out


def pivotal_suppliers(evaluator: GameEvaluator, profile: dict, tol: float = 1e-6) -> list[str]:
    """FSPs without whose bids (the others as in ``profile``) the scheme leaves need unmet or
    pays more penalty for limits it cannot meet than with them."""
    price, quantity, forward = evaluator.bid_map.declare(profile)
    base = evaluator.scheme.clear(price, quantity, forward)
    base_penalty = base.objective_eur - base.cost_eur
    pivotal = []
    for f, rows in evaluator.bid_map.fsp_rows.items():
        q = quantity.copy()
        q[rows] = 0.0
        r = evaluator.scheme.clear(price, q, forward)
        if r.unmet_need_mw > base.unmet_need_mw + tol or \
                (r.objective_eur - r.cost_eur) > base_penalty + 1e-3:
            pivotal.append(f)
    return pivotal


def strategic_metrics(evaluator: GameEvaluator, final: dict, status: str, rounds: int,
                      cycle: list[dict], truthful_common_cost: float) -> dict:
    """Metrics of a strategic outcome; a cycle is evaluated by its time average.

    Keys: truthful_cost, strategic_cost [EUR], price_of_anarchy [-] (strategic / truthful
    cost of the same scheme), inefficiency_vs_truthful_common_pct, mean_markup, max_markup
    (over FSPs, of the final profile or the cycle), fsp_profit_total [EUR], status,
    iterations, epsilon [EUR], cycle_length, cycle markup range, HHI per layer, pivotal FSPs.
    """
    truthful = evaluator.outcome(evaluator.bid_map.truthful())
    visited = cycle if cycle else [final]
    outcomes = [evaluator.outcome(p) for p in visited]
    cost = float(np.mean([o.cost_eur for o in outcomes]))
    markups = np.array([[evaluator.bid_map.markup_of(s) for s in p.values()] for p in visited])
    result = evaluator.scheme.clear(*evaluator.bid_map.declare(final))
    hhi = hhi_by_layer(result, evaluator.scheme.bids)
    return {
        "truthful_cost": truthful.cost_eur,
        "strategic_cost": cost,
        "price_of_anarchy": cost / truthful.cost_eur if truthful.cost_eur > 0 else float("nan"),
        "inefficiency_vs_truthful_common_pct": inefficiency_pct(cost, truthful_common_cost),
        "mean_markup": float(markups.mean()),
        "max_markup": float(markups.max()),
        "fsp_profit_total": float(np.mean([sum(o.profit.values()) for o in outcomes])),
        "strategic_unmet_need_mw": float(np.mean([o.unmet_need_mw for o in outcomes])),
        "status": status,
        "iterations": rounds,
        "epsilon": certificate(evaluator, final).epsilon,
        "cycle_length": len(cycle),
        "cycle_min_markup": float(markups.min()) if cycle else float("nan"),
        "cycle_max_markup": float(markups.max()) if cycle else float("nan"),
        "hhi_max": max(hhi.values(), default=0.0),
        "hhi_by_layer": hhi,
        "pivotal_fsps": pivotal_suppliers(evaluator, final),
    }
