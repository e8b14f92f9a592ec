"""A run of the implicit-DR model (``flexgame run model=implicit_dr idr.case=C1``).

The BRP of seed 000 KER 3 on the test slot of Vatandoust et al. (EEM 2023; flexgame's IDR
reference §3): one quarter-hour of one of the paper's cases C1-C5, played by the Mesa agents
of :mod:`flexgame.agents.idr` (the BRP decides from its flexibility curve, the DR answers
along the same curve, the TSO clears the SIM and the BRP is settled ex post).

Files: ``config.yaml``, ``provenance.json``, ``quarter_hours.csv`` (one row per
quarter-hour: prices [EUR/MWh], demand and imbalance [MW], profit parts [EUR]) and
``metrics.json`` (written last).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from flexgame.markets.options import check, option

IDR_CASES = ("C1", "C2", "C3", "C4", "C5")
"""The paper's cases on its test slot (:data:`flexgame.experiments.idr_cases.CASES`)."""


@dataclass
class IDRNode:
    """The ``idr`` settings: which case of the test slot (IDR reference §3) is played."""

    case: str = option("C1", choices=IDR_CASES)


@dataclass
class ImplicitDRConfig:
    """One run of the implicit-DR model."""

    model: str = option("implicit_dr", choices=("implicit_dr",))
    idr: IDRNode = option(factory=IDRNode)
    seed: int = option(0, low=0)

    def validate(self) -> None:
        check(self)


def quarter_of(case: str):
    """The test slot's quarter-hour in ``case`` (its reserve bids and imbalance)."""
    from flexgame.agents.idr import QuarterHour
    from flexgame.experiments.idr_cases import (CASES, DAY_AHEAD_MW, DAY_AHEAD_PRICE,
                                                MAX_RETAIL_PRICE)

    imbalance, reserve = CASES[case]
    return QuarterHour(reserve, imbalance, DAY_AHEAD_MW, DAY_AHEAD_PRICE, MAX_RETAIL_PRICE)


def summary(table) -> dict:
    """Metrics of a run from its quarter-hours table: profit parts summed [EUR], the
    number of over-activations, and for a single quarter-hour its prices and volumes."""
    metrics = {
        "net_profit_eur": float(table.net_eur.sum()),
        "planned_net_profit_eur": float(table.planned_net_eur.sum()),
        "sim_eur": float(table.sim_eur.sum()), "dr_net_eur": float(table.dr_net_eur.sum()),
        "over_activations": int(table.over_activation.sum()),
        "quarter_hours": len(table)}
    if len(table) == 1:
        row = table.iloc[0]
        metrics.update(imbalance_price=float(row.imbalance_price_eur_per_mwh),
                       retail_price=float(row.retail_price_eur_per_mwh),
                       up_mw=float(row.up_mw), down_mw=float(row.down_mw))
    return metrics


def run(settings: ImplicitDRConfig, out_dir: Path) -> dict:
    """One run of ``settings`` into ``out_dir``; returns its metrics."""
    from flexgame.agents.idr import ImplicitDRModel
    from flexgame.experiments.idr_cases import TEST_SLOT_CURVE
    from flexgame.experiments.store import provenance, write_csv, write_json, write_text

    model = ImplicitDRModel([quarter_of(settings.idr.case)], TEST_SLOT_CURVE,
                            rng=settings.seed)
    table = model.run()
    metrics = {"idr_case": settings.idr.case, **summary(table)}
    out = Path(out_dir)
    write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(settings)))
    write_json(out / "provenance.json", provenance(seed=settings.seed))
    write_csv(out / "quarter_hours.csv", table)
    write_json(out / "metrics.json", metrics)
    return metrics
