"""One simulation: build the scenario, clear the scheme, assess, settle, write the outputs.

:func:`run_experiment` dispatches on ``cfg.reasoning.name``: truthful bidding runs
:func:`run_truthful`, the strategic modes :func:`experiments.strategic.run_strategic`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from flexgame.experiments.scenario import build_scenario, check_scenario, plain_config
from flexgame.experiments.store import provenance, write_csv, write_json, write_text
from flexgame.markets.errors import require_choice
from flexgame.markets.grid_assessment import TOLERANCE, GridReport, assess
from flexgame.markets.kpis import clearing_kpis
from flexgame.markets.schemes import ClearingConfig, ClearingResult, Scheme
from flexgame.markets.settlement import settle

METRIC_KEYS = (
    "scheme", "case", "settlement", "total_cost", "inefficiency_pct", "congestions",
    "max_congestion_pct", "voltage_violations", "max_voltage_violation_pct",
    "unqualified_up_pct", "unqualified_down_pct", "runtime_s",
)
"""Keys every ``metrics.json`` starts with (SPEC §9)."""


@dataclass
class Evaluation:
    """A scheme cleared on one scenario, with its ex-post assessment and KPIs."""

    scheme: Scheme
    result: ClearingResult
    report: GridReport
    kpis: dict


def clear(system, bids, clearing: ClearingConfig) -> tuple[Scheme, ClearingResult, float]:
    """Build the scheme and clear it once; also returns the build time [s]."""
    start = time.perf_counter()
    scheme = Scheme(system, bids, clearing)
    build_s = time.perf_counter() - start
    return scheme, scheme.clear(), build_s


def evaluate(system, bids, clearing: ClearingConfig,
             common: ClearingResult | None = None) -> tuple[Evaluation, ClearingResult]:
    """Clear ``clearing.scheme`` and compute its KPIs against the common market.

    ``common`` is the common market's result on the same scenario; it is cleared here when
    not given (and reused when the scheme is common). Returns the evaluation and the common
    result, so that a caller evaluating several schemes clears common once.
    """
    scheme, result, build_s = clear(system, bids, clearing)
    if clearing.scheme == "common":
        common = result
    elif common is None:
        common = clear(system, bids, dataclasses.replace(clearing, scheme="common"))[1]
    report = assess(system, bids, result.activation_mw)
    kpis = clearing_kpis(system, bids, result, common.cost_eur, report)
    kpis["common_cost"] = common.cost_eur
    kpis["build_s"] = build_s
    return Evaluation(scheme, result, report, kpis), common


def run_truthful(cfg, out_dir) -> dict:
    """A run with truthful bids: writes config, provenance, metrics and tidy tables into
    ``out_dir`` and returns the metrics."""
    plain = plain_config(cfg)
    out = Path(out_dir)
    system, bids, clearing = build_scenario(plain)
    evaluation, _ = evaluate(system, bids, clearing)
    rule = plain["settlement"]["name"]
    settlement = settle(evaluation.scheme, evaluation.result, rule)
    metrics = {
        "case": plain["case"]["name"], "settlement": rule, **evaluation.kpis,
        "seed": plain["seed"], "liquidity": plain["liquidity"],
        "aggregation": plain["aggregation"]["mode"], "tso_need_mw": system.tso_need_mw,
        "n_bids": len(bids), "n_fsps": int(bids.fsp.nunique()),
        "total_payment": settlement.total_payment_eur,
        "fsp_profit_total": float(settlement.fsp.profit_eur.sum()),
    }
    metrics = {**{k: metrics[k] for k in METRIC_KEYS}, **metrics}  # SPEC keys first, in order
    write_run(out, plain, bids, evaluation.result, evaluation.report, settlement, metrics)
    return metrics


def write_run(out: Path, plain: dict, bids, result: ClearingResult, report: GridReport,
              settlement, metrics: dict) -> None:
    """Write a run's config, provenance, tidy tables and metrics (metrics last: its presence
    marks a complete run)."""
    write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plain)))
    write_json(out / "provenance.json", provenance(seed=plain["seed"]))
    write_csv(out / "bids.csv", bids.rename_axis("bid").reset_index())
    write_csv(out / "clearing.csv", settlement.payments)
    write_csv(out / "fsp.csv", settlement.fsp)
    write_csv(out / "grid.csv", report.elements.assign(violated=report.elements.excess_pct > 100 * TOLERANCE))
    write_csv(out / "liquidity.csv", result.liquidity())
    write_json(out / "metrics.json", metrics)


def validate_config(cfg) -> str:
    """Check every value of a run's config without building the system or clearing: the
    scenario, the reasoning mode and, for strategic modes, the reasoning options and strategy
    space. Returns the reasoning mode.

    Raises:
        FlexgameInputError: naming the offending key and what is allowed.
    """
    from flexgame.games.reasoning import REASONINGS
    from flexgame.experiments.strategic import reasoning_config, strategy_space

    plain = plain_config(cfg)
    check_scenario(plain)
    reasoning = plain.get("reasoning") or {}
    require_choice("reasoning.name", reasoning.get("name"), REASONINGS)
    if reasoning["name"] != "truthful":
        strategy_space(reasoning.get("strategy"))
        reasoning_config(reasoning)
    return reasoning["name"]


def run_experiment(cfg, out_dir) -> dict:
    """Run one simulation of ``cfg`` into ``out_dir``: truthful bids, or strategic FSPs."""
    from flexgame.experiments.strategic import run_strategic

    name = validate_config(cfg)
    return run_truthful(cfg, out_dir) if name == "truthful" else run_strategic(cfg, out_dir)


def format_metrics(metrics: dict) -> str:
    """The metrics as aligned ``key: value`` lines."""
    width = max(map(len, metrics))
    lines = []
    for key, value in metrics.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)

