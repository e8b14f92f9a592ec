"""`flexgame report` on a strategic run: markup and convergence figures, the tidy table, and
bad input (no runs, parquet without pyarrow)."""

from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import pytest

from flexgame.experiments.cli import main
from flexgame.experiments.run import OUTPUTS, run_experiment
from flexgame.experiments.config import load_config


def _flexgame(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["flexgame", *args])
    main()


@pytest.fixture(scope="module")
def strategic_report(tmp_path_factory):
    """A tiny IBR run (one round, truthful or top markup, six pooled FSPs) and its report
    written beside it."""
    root = tmp_path_factory.mktemp("strategic")
    cfg = load_config(["reasoning=ibr", "reasoning.max_rounds=1",
                       "reasoning.strategy.markup_points=2", "aggregation=random_pools",
                       "aggregation.pool_size=60"])
    run_experiment(cfg, root / "run")
    out = root / "report"
    with pytest.MonkeyPatch.context() as mp:
        _flexgame(mp, "report", str(root / "run"), "--out", str(out))
    return root / "run", out


def test_report_of_a_strategic_run_has_markup_and_convergence_figures(strategic_report):
    run, out = strategic_report
    for stem in ("markup_distribution", "convergence", "grid_safety"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    report = (out / "report.md").read_text()
    assert "![convergence](convergence.png)" in report
    # one run: no liquidity axis and no aggregation contrast; the report says so
    assert "efficiency vs liquidity: the runs have one liquidity level (1.0)" in report
    assert "effect of aggregation: the strategic runs have one aggregation mode" in report
    assert "price of anarchy [-]" in report and "mean markup [-]" in report


def test_strategic_table_holds_the_strategic_metrics(strategic_report):
    run, out = strategic_report
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 1 and runs.run_dir.tolist() == ["."]
    row = runs.iloc[0]
    assert (row.reasoning, row.aggregation, row.markup_kind) == ("ibr", "random_pools",
                                                                 "to_cap")
    assert row.price_of_anarchy == pytest.approx(row.strategic_cost / row.truthful_cost)
    assert row.status in ("converged", "cycle", "capped")
    assert "hhi_by_layer" not in runs  # not a scalar: left to metrics.json


def test_a_strategic_run_writes_only_files_a_new_run_removes(strategic_report):
    """run.OUTPUTS (removed when a run starts in a reused directory) lists every file a
    strategic run writes, so none can outlive it."""
    run, _ = strategic_report
    written = {path.name for path in run.iterdir()}
    assert {"rounds.csv", "strategies.csv", "metrics.json"} <= written <= set(OUTPUTS)


def test_report_of_a_directory_without_runs_is_refused(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "report", str(tmp_path))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path) in err and "metrics.json" in err


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None,
                    reason="pyarrow is installed: parquet works")
def test_parquet_without_pyarrow_names_the_option(monkeypatch, capsys, strategic_report,
                                                  tmp_path):
    run, _ = strategic_report
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "report", str(run), "--out", str(tmp_path), "--format",
                  "parquet")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--format=parquet" in err and "pyarrow" in err and "--format=csv" in err
