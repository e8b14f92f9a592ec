"""Key performance indicators of a clearing (ALEXANDER D3.3 §4.1.3); their units and
definitions are registered in :mod:`flexgame.markets.metrics`."""

from __future__ import annotations

import numpy as np

from flexgame.markets.grid_assessment import GridReport, assess
from flexgame.markets.idlfm import exchange_of


def inefficiency_pct(cost_eur: float, common_cost_eur: float) -> float:
    """eta = (J_scheme - J_common) / |J_common| x 100 % (nan when J_common is 0)."""
    if abs(common_cost_eur) < 1e-12:
        return float("nan") if abs(cost_eur) > 1e-12 else 0.0
    return 100.0 * (cost_eur - common_cost_eur) / abs(common_cost_eur)


def clearing_kpis(system, bids, result, common_cost_eur: float | None = None,
                  report: GridReport | None = None, payment_eur: float | None = None) -> dict:
    """One flat record of a scheme's clearing: cost (total and per system operator),
    inefficiency vs common, grid safety from the ex-post assessment, unqualified volume,
    unmet need and runtime. ``report`` may be passed when already computed.

    The procurement cost ``total_cost`` is what the buyers pay: ``payment_eur``, the total
    payment under the run's settlement rule, when given (uniform, nodal and VCG pay more than
    the declared prices); otherwise, and under pay-as-bid, the declared cost (accepted MW x
    declared price, D3.3's J), which is also kept as ``declared_cost``. eta compares it with
    ``common_cost_eur`` (the truthful common market's cost at true prices: the least cost of
    meeting every need), so that settlement rules compare on one scale."""
    report = report or assess(system, bids, result.activation_mw)
    cost = result.cost_eur if payment_eur is None else float(payment_eur)
    record = {
        "scheme": result.scheme,
        "total_cost": cost,
        "declared_cost": result.cost_eur,
        "inefficiency_pct": (inefficiency_pct(cost, common_cost_eur)
                             if common_cost_eur is not None else float("nan")),
        "congestions": report.congestions,
        "max_congestion_pct": report.max_congestion_pct,
        "voltage_violations": report.voltage_violations,
        "max_voltage_violation_pct": report.max_voltage_violation_pct,
        "unqualified_up_pct": result.unqualified_up_pct,
        "unqualified_down_pct": result.unqualified_down_pct,
        "unmet_need_mw": result.unmet_need_mw,
        "residual_need_mw": report.residual_need_mw,
        "runtime_s": result.runtime_s,
    }
    for operator, cost in sorted(result.cost_by_operator().items()):
        record[f"cost_{operator}"] = cost
    record["grid_safe"] = bool(report.grid_safe)
    record["feasible"] = bool(report.grid_safe and abs(report.residual_need_mw) < 1e-6)
    exchange = exchange_of(result)
    if exchange is not None:  # I-DLFM: what the TSO and the DSOs exchanged
        record.update(exchange.kpis())
    if hasattr(report, "linear_error"):  # an AC report (grid_assessment=ac): AC vs linear
        from flexgame.markets.ac_assessment import ac_kpis

        record.update(ac_kpis(report))
    return {k: (float(v) if isinstance(v, (np.floating,)) else v) for k, v in record.items()}
