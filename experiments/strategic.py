"""Strategic runs: FSPs reason (k-level, cognitive hierarchy, iterated best response or
logit) against a built scheme; the outcome is compared with truthful bidding.

Writes, beside the truthful run's files, ``rounds.csv`` (one row per reasoning round and
player: markup, its FSP's profit, the round's procurement cost) and ``strategies.csv``
(final strategy, markup and FSP profit per player), and adds the strategic keys of SPEC §9
to ``metrics.json``. There ``total_cost`` and ``inefficiency_pct`` are those of the strategic
outcome (``outcome_basis``: the final profile, the time average of a best-response cycle, or
the sampled mean of a mixed profile); the grid KPIs, the tables of bids, clearing and FSPs,
and ``final_profile_cost`` describe the final profile itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flexgame.agents.model import FlexMarketModel
from flexgame.games.reasoning import REASONINGS, ReasoningConfig
from flexgame.experiments.run import METRIC_KEYS, evaluate, write_run
from flexgame.experiments.scenario import _check_keys, _number, _relabel, build_scenario, plain_config
from flexgame.experiments.store import write_csv
from flexgame.games.metrics import strategic_metrics
from flexgame.games.strategies import StrategySpace
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.grid_assessment import assess
from flexgame.markets.kpis import clearing_kpis
from flexgame.markets.settlement import settle

STRATEGIC_KEYS = ("truthful_cost", "strategic_cost", "price_of_anarchy", "mean_markup",
                  "fsp_profit_total", "status", "iterations", "epsilon")
"""Keys strategic runs add to ``metrics.json`` (SPEC §9)."""


def strategy_space(node: dict) -> StrategySpace:
    """The ``reasoning.strategy`` node as a :class:`StrategySpace`."""
    node = dict(node or {})
    _check_keys("reasoning.strategy", node,
                ("kind", "markup_max", "markup_points", "price_cap", "withholding",
                 "per_resource", "reprice_forwarded"))
    kind = node.get("kind", "multiplicative")
    require_choice("reasoning.strategy.kind", kind, ("multiplicative", "additive"))
    first = 1.0 if kind == "multiplicative" else 0.0
    top = _number("reasoning.strategy.markup_max", node.get("markup_max", 2.4), float,
                  low=first, low_open=True)
    points = _number("reasoning.strategy.markup_points", node.get("markup_points", 15), int, low=2)
    cap = _number("reasoning.strategy.price_cap", node.get("price_cap", 500.0), float,
                  low=0, low_open=True)
    withholding = node.get("withholding", [0.0])
    if not isinstance(withholding, list):
        raise FlexgameInputError(f"reasoning.strategy.withholding={withholding!r} must be a list")
    flags = {}
    for key in ("per_resource", "reprice_forwarded"):
        flags[key] = node.get(key, False)
        if not isinstance(flags[key], bool):
            raise FlexgameInputError(f"reasoning.strategy.{key}={flags[key]!r} must be true or false")
    try:
        return StrategySpace(markups=list(np.round(np.linspace(first, top, points), 6)),
                             kind=kind, price_cap=cap, withholding=[float(w) for w in withholding],
                             **flags)
    except FlexgameInputError as error:
        raise _relabel("reasoning.strategy", error, StrategySpace) from None


def reasoning_config(node: dict) -> ReasoningConfig:
    """The ``reasoning`` group (without its strategy node) as a :class:`ReasoningConfig`."""
    node = {k: v for k, v in dict(node).items() if k != "strategy"}
    require_choice("reasoning.name", node.get("name"), REASONINGS)
    allowed = {f for f in ReasoningConfig.__dataclass_fields__}
    _check_keys("reasoning", node, allowed)
    config = ReasoningConfig(**node)
    try:
        config.validate()
    except FlexgameInputError as error:
        raise _relabel("reasoning", error, ReasoningConfig) from None
    return config


def run_strategic(cfg, out_dir) -> dict:
    """A strategic run into ``out_dir``; returns its metrics."""
    plain = plain_config(cfg)
    system, bids, clearing = build_scenario(plain)
    space = strategy_space(plain["reasoning"].get("strategy"))
    reasoning = reasoning_config(plain["reasoning"])
    truthful, common = evaluate(system, bids, clearing)
    rule = plain["settlement"]["name"]
    model = FlexMarketModel(truthful.scheme, space, reasoning, rule, seed=plain["seed"])
    model.run(progress=True)
    price, quantity, forward = model.bid_map.declare(model.profile)
    result = truthful.scheme.clear(price, quantity, forward)
    report = assess(system, bids, result.activation_mw)
    kpis = clearing_kpis(system, bids, result, common.cost_eur, report)
    strategic = strategic_metrics(model.evaluator, model.profile, model.status, model.round,
                                  model.cycle, common.cost_eur, mixed=model.mixed,
                                  samples=reasoning.samples, rng=model.rng)
    settlement = settle(truthful.scheme, result, rule)
    declared = bids.assign(price_eur_per_mw=price, quantity_mw=quantity)
    if forward is not None:
        declared["forward_price_eur_per_mw"] = forward
    metrics = {
        "case": plain["case"]["name"], "settlement": rule, **kpis,
        # cost and eta of the strategic outcome (final profile, cycle average or mixed mean)
        "total_cost": strategic["strategic_cost"],
        "inefficiency_pct": strategic["inefficiency_vs_truthful_common_pct"],
        "final_profile_cost": kpis["total_cost"],
        "final_profile_inefficiency_pct": kpis["inefficiency_pct"],
        "seed": plain["seed"], "liquidity": plain["liquidity"],
        "aggregation": plain["aggregation"]["mode"], "reasoning": reasoning.name,
        **{k: strategic[k] for k in STRATEGIC_KEYS},
        **{k: v for k, v in strategic.items() if k not in STRATEGIC_KEYS},
        "truthful_inefficiency_pct": truthful.kpis["inefficiency_pct"],
        "sampling_error_max": max(model.sampling_error.values(), default=0.0),
        "clearings": model.evaluator.clearings,
    }
    metrics = {**{k: metrics[k] for k in METRIC_KEYS}, **metrics}
    out = Path(out_dir)
    write_csv(out / "rounds.csv", model.rounds_table())
    write_csv(out / "strategies.csv", pd.DataFrame(
        [dict(player=a.name, fsp=a.fsp, level=a.level, markup_index=a.strategy[0],
              withheld_share=space.withholding[a.strategy[1]], markup=a.markup,
              forward_markup=(space.markups[a.strategy[2]] if space.reprice_forwarded
                              else a.markup),
              profit_eur=a.profit_eur) for a in model.fsps]))
    write_run(out, plain, declared, result, report, settlement, metrics)
    return metrics
