"""A run of the TSO-DSO model: build the scenario, clear the scheme with truthful bids or let
the FSPs play the strategic game, and write the run's files.

Files (written by :func:`flexgame.experiments.store.write_run`, ``metrics.json`` last):
``config.yaml``, ``provenance.json``, ``bids.csv``, ``clearing.csv``, ``fsp.csv``,
``grid.csv``, ``liquidity.csv``; strategic runs add ``rounds.csv`` (one row per reasoning
round and player), ``operators.csv`` (one row per round and market or system operator) and
``strategies.csv`` (final strategy per player); with ``nfca.enabled``, ``nfca.csv`` (one row
per distribution bid: offered MW, its cap by its LV users' operating envelopes, the MW lost;
:mod:`flexgame.markets.nfca`). In ``metrics.json`` of a
strategic run, ``total_cost`` and ``inefficiency_pct`` are those of the strategic outcome
(``outcome_basis``: the final profile, the time average of a best-response cycle, or the
sampled mean of a mixed profile); the grid KPIs, the tables of bids, clearing and FSPs, and
``final_profile_cost`` describe the final profile itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from flexgame.experiments.evaluation import clear
from flexgame.experiments.scenario import Scenario
from flexgame.experiments.schema import TsoDsoConfig
from flexgame.experiments.store import write_csv, write_run
from flexgame.markets.metrics import ordered
from flexgame.markets.nfca import NFCACaps, capped_bids, nfca_caps

STRATEGIC_KEYS = ("equilibrium_concept", "epsilon", "epsilon_standard_error", "support_size",
                  "truthful_cost", "strategic_cost", "price_of_anarchy", "price_of_stability",
                  "mean_markup", "fsp_profit_total", "status", "iterations")
"""Keys strategic runs add to ``metrics.json``, first in this order."""


def run(settings: TsoDsoConfig, out_dir: Path) -> dict:
    """One run of ``settings`` into ``out_dir``; returns its metrics."""
    scenario = Scenario.from_settings(settings.system, settings.bid_config(), settings.seed)
    scenario, coupled = implicit_dr_first(settings, scenario)
    scenario, nfca = nfca_first(settings, scenario)
    if settings.reasoning.name == "truthful":
        return run_truthful(settings, scenario, out_dir, coupled, nfca)
    return run_strategic(settings, scenario, out_dir, coupled, nfca)


def implicit_dr_first(settings: TsoDsoConfig, scenario: Scenario) -> tuple[Scenario, dict]:
    """With ``implicit_dr.enabled``: the BRP's implicit DR responds to the TSO's need first
    (:mod:`flexgame.experiments.idr_coupling`); returns the scenario the flexibility market
    then clears (its system after the response, the same bids) and the response's metrics,
    with the truthful cost of the scheme without it (under the run's settlement rule, as the
    run's ``total_cost``). Otherwise the scenario and no metrics."""
    if not settings.implicit_dr.enabled:
        return scenario, {}
    from flexgame.experiments.idr_coupling import respond

    config = settings.clearing_config()
    decision, bus, system = respond(scenario.system, scenario.bids, settings.implicit_dr,
                                    config.penalties.unmet_need)
    without = clear(scenario, config, settlement=settings.settlement.name)
    return dataclasses.replace(scenario, system=system), {
        "implicit_dr_bus": bus,
        "implicit_dr_deviation_mw": decision.down_mw - decision.up_mw,
        "implicit_dr_retail_price": decision.retail_price,
        "implicit_dr_imbalance_price": decision.imbalance_price,
        "implicit_dr_profit_eur": decision.net_eur,
        "tso_need_without_implicit_dr_mw": scenario.system.tso_need_mw,
        "total_cost_without_implicit_dr": without.kpis["total_cost"]}


@dataclass(frozen=True)
class NFCARun:
    """The NFCA caps of a run and the truthful clearing's KPIs without them."""

    caps: NFCACaps
    without: dict
    tso_direction: str


def nfca_first(settings: TsoDsoConfig, scenario: Scenario) -> tuple[Scenario, NFCARun | None]:
    """With ``nfca.enabled``: the scenario whose distribution bids offer at most what their
    LV users' operating envelopes allow (:func:`flexgame.markets.nfca.nfca_caps`, drawn from
    the run's seed), and the truthful clearing of the scheme on the uncapped bids (the
    reference of the NFCA metrics). Applied after the implicit DR's response, if any. The
    capped quantities are the bids' true quantities: strategic FSPs declare within them.
    Otherwise the scenario and None."""
    if not settings.nfca.enabled:
        return scenario, None
    caps = nfca_caps(scenario.system, scenario.bids, settings.nfca, settings.seed)
    without = clear(scenario, settings.clearing_config(), settlement=settings.settlement.name)
    capped = dataclasses.replace(scenario, bids=capped_bids(scenario.bids, caps))
    return capped, NFCARun(caps, without.kpis, scenario.system.direction)


def nfca_metrics(nfca: NFCARun | None, truthful_with: dict) -> dict:
    """The NFCA metrics of a run (:mod:`flexgame.markets.metrics`): volume lost to the caps
    by direction and by who could use it (the TSO's need direction, or only the DSOs' other
    direction), truthful cost and unmet need with the caps (``truthful_with``: the KPIs of
    the scheme's truthful clearing of the capped bids) and without, and the change of the TSO's
    and the DSOs' costs where the scheme has those layers. Empty without NFCA."""
    if nfca is None:
        return {}
    caps, without = nfca.caps, nfca.without
    other = "down" if nfca.tso_direction == "up" else "up"
    offered = float(caps.caps.offered_mw.sum())
    out = {
        "nfca_offered_mw": offered,
        "nfca_lost_up_mw": caps.lost_mw("up"),
        "nfca_lost_down_mw": caps.lost_mw("down"),
        "nfca_lost_tso_usable_mw": caps.lost_mw(nfca.tso_direction),
        "nfca_lost_dso_only_mw": caps.lost_mw(other),
        "nfca_lost_pct": 100.0 * caps.lost_mw() / offered if offered > 0 else 0.0,
        "nfca_capped_bids": int((caps.caps.lost_mw > 0).sum()),
        "nfca_lv_feeders": len(caps.sites),
        "nfca_users": int(sum(len(s.participants) for s in caps.sites)),
        "nfca_envelopes_s": caps.runtime_s,
        "truthful_cost_with_nfca": truthful_with["total_cost"],
        "truthful_cost_without_nfca": without["total_cost"],
        "nfca_cost_change": truthful_with["total_cost"] - without["total_cost"],
        "unmet_need_with_nfca_mw": truthful_with["unmet_need_mw"],
        "unmet_need_without_nfca_mw": without["unmet_need_mw"],
    }
    for operator in ("TSO", "DSO"):
        with_cost = _operator_cost(truthful_with, operator)
        without_cost = _operator_cost(without, operator)
        if with_cost is not None or without_cost is not None:
            out[f"nfca_{operator.lower()}_cost_change"] = ((with_cost or 0.0)
                                                           - (without_cost or 0.0))
    return out


def _operator_cost(kpis: dict, operator: str) -> float | None:
    """Cost of the TSO (``cost_TSO``) or of every DSO together (``cost_DSO:<feeder>``) in a
    clearing's KPIs [EUR]; None when the scheme has no such operator (the common market's
    ``joint``)."""
    costs = [v for k, v in kpis.items()
             if k == f"cost_{operator}" or k.startswith(f"cost_{operator}:")]
    return float(sum(costs)) if costs else None


def write_nfca(out_dir: Path, nfca: NFCARun | None) -> None:
    """``nfca.csv``: the caps table (:data:`flexgame.markets.nfca.CAP_COLUMNS`)."""
    if nfca is not None:
        write_csv(Path(out_dir) / "nfca.csv", nfca.caps.caps)


def _labels(settings: TsoDsoConfig) -> dict:
    return {"case": settings.case.name, "settlement": settings.settlement.name}


def _run_values(settings: TsoDsoConfig) -> dict:
    return {"seed": settings.seed, "liquidity": settings.liquidity,
            "aggregation": settings.aggregation.mode}


def run_truthful(settings: TsoDsoConfig, scenario: Scenario, out_dir: Path,
                 coupled: dict | None = None, nfca: NFCARun | None = None) -> dict:
    """Truthful bids (price = true cost): one clearing of the scheme."""
    rule = settings.settlement.name
    clearing = clear(scenario, settings.clearing_config(), settlement=rule,
                     grid_assessment=settings.grid_assessment)
    paid = clearing.settle(rule)
    metrics = ordered({
        **_labels(settings), **clearing.kpis, **_run_values(settings),
        "tso_need_mw": scenario.system.tso_need_mw, "n_bids": len(scenario.bids),
        "n_fsps": int(scenario.bids.fsp.nunique()), "total_payment": paid.total_payment_eur,
        "fsp_profit_total": float(paid.fsp.profit_eur.sum()), **(coupled or {}),
        **nfca_metrics(nfca, clearing.kpis)})
    write_nfca(out_dir, nfca)
    write_run(Path(out_dir), settings, scenario.bids, clearing.result, clearing.grid, paid,
              metrics)
    return metrics


def run_strategic(settings: TsoDsoConfig, scenario: Scenario, out_dir: Path,
                  coupled: dict | None = None, nfca: NFCARun | None = None) -> dict:
    """Strategic FSPs (``settings.reasoning``) against the built scheme."""
    from flexgame.experiments.strategic import Game  # the Mesa model: only strategic runs load it

    game = Game(scenario, settings.clearing_config(), settings.settlement.name,
                settings.reasoning.strategy, seed=settings.seed,
                grid_assessment=settings.grid_assessment)
    outcome = game.play(settings.reasoning, progress=True)
    strategic, kpis = outcome.metrics, outcome.kpis
    metrics = ordered({
        **_labels(settings), **kpis,
        # cost and eta of the strategic outcome (its expectation over its distribution)
        "total_cost": strategic["strategic_cost"],
        "inefficiency_pct": strategic["inefficiency_vs_truthful_common_pct"],
        "final_profile_cost": kpis["total_cost"],
        "final_profile_inefficiency_pct": kpis["inefficiency_pct"],
        **_run_values(settings), "reasoning": settings.reasoning.name,
        **{k: strategic[k] for k in STRATEGIC_KEYS},
        **{k: v for k, v in strategic.items() if k not in STRATEGIC_KEYS},
        "truthful_inefficiency_pct": game.truthful.kpis["inefficiency_pct"],
        **(coupled or {}), **nfca_metrics(nfca, game.truthful.kpis)})
    out = Path(out_dir)
    write_csv(out / "rounds.csv", outcome.model.rounds_table())
    write_csv(out / "operators.csv", outcome.model.operators_table())
    write_csv(out / "strategies.csv", outcome.strategies())
    write_csv(out / "equilibria.csv", outcome.equilibria_table())
    write_csv(out / "distribution.csv", outcome.distribution())
    write_nfca(out, nfca)
    write_run(out, settings, outcome.declared_bids, outcome.result, outcome.grid,
              game.settle(outcome), metrics)
    return metrics
