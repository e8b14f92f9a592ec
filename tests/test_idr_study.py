"""FOIO, VOIO and SBVOIO on generated data (issue 13, item 6): the selections do what they
claim on validation days, and the study writes its report."""

from __future__ import annotations

import json

import pytest

from flexgame.experiments.idr_data import HistoryConfig
from flexgame.experiments.idr_report import write_study
from flexgame.experiments.idr_study import StudyConfig, findings, run_study
from flexgame.markets.errors import FlexgameInputError

SMALL = StudyConfig(history=HistoryConfig(days=45), validation_days=2, test_days=2, quarter_hours=(22, 24),
                    blocks=(4, 8), windows=(15, 30),
                    quantile_sets=((0.5,), (0.25, 0.5, 0.75)))


@pytest.fixture(scope="module")
def study():
    return run_study(SMALL)


def test_selections_are_what_they_claim(study):
    """FOIO has the least validation forecast error of the single-curve candidates, VOIO the
    most validation profit among them, SBVOIO the most among all: so VOIO >= FOIO and
    SBVOIO >= VOIO on validation days (guaranteed by construction)."""
    grid = study.grid[study.grid.split == "validation"].set_index("candidate")
    single = grid[grid.median_only]
    chosen = study.selected.set_index("method").candidate
    assert single.loc[chosen["FOIO"], "forecast_mae_mw"] == single.forecast_mae_mw.min()
    assert single.loc[chosen["VOIO"], "profit_eur"] == single.profit_eur.max()
    assert grid.loc[chosen["SBVOIO"], "profit_eur"] == grid.profit_eur.max()
    found = findings(study)
    assert found["voio_over_foio_profit_pct_validation"] >= -1e-9
    assert found["sbvoio_over_voio_profit_pct_validation"] >= -1e-9
    n = len(SMALL.quarter_hours) * (SMALL.validation_days + SMALL.test_days)
    assert len(study.quarters) == n * len(SMALL.blocks) * len(SMALL.windows) * 2


def test_every_evaluation_is_settled_consistently(study):
    q = study.quarters
    assert (q.retail_price >= 0).all() and (q.retail_price <= SMALL.max_retail_price).all()
    assert (q.demand_mw >= 0).all()
    # an over-activation is a residual of the other sign than the system imbalance
    residual = q.system_imbalance_mw - (q.demand_mw - q.day_ahead_mw)
    assert ((residual * q.system_imbalance_mw < 0) >= q.over_activation).all()


def test_study_writes_tables_figures_and_report(study, tmp_path):
    report = write_study(study, tmp_path)
    text = report.read_text()
    assert "VOIO over FOIO" in text and "SBVOIO over VOIO" in text
    for name in ("quarters.csv", "grid.csv", "selected.csv", "findings.json",
                 "idr_curves.png", "idr_profit.png", "idr_over_activations.png"):
        assert (tmp_path / name).is_file(), name
    assert set(json.loads((tmp_path / "findings.json").read_text())) == set(findings(study))


def test_study_config_is_checked():
    with pytest.raises(FlexgameInputError, match="longest training window"):
        StudyConfig(history=HistoryConfig(days=50), windows=(90,))
    with pytest.raises(FlexgameInputError, match="must contain 0.5"):
        StudyConfig(quantile_sets=((0.25, 0.75),))
