"""`flexgame sweep`: Hydra multiruns with up-front validation, failed jobs that do not stop the
others, skipping of finished runs, the local submitit launcher; `flexgame report` on a sweep."""

from __future__ import annotations

import math
import sys

import pandas as pd
import pytest

from flexgame.experiments import sweep, tso_dso
from flexgame.experiments.cli import main
from flexgame.experiments.config import load_config

SWEPT = ["scheme=common,ml01", "liquidity=1.0,0.5", "seed=0,1"]
"""A small truthful sweep: 2 schemes x 2 liquidity levels x 2 seeds."""


def _flexgame(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["flexgame", *args])
    main()


def _metrics(root):
    return sorted(root.rglob(sweep.METRICS))


@pytest.fixture(scope="module")
def truthful_sweep(tmp_path_factory):
    """The 8-job sweep on the joblib launcher (the default), then its report."""
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        _flexgame(mp, "sweep", *SWEPT, f"hydra.sweep.dir={root}")
        _flexgame(mp, "report", str(root))
    return root


def test_sweep_runs_every_combination_and_report_collects_them(truthful_sweep):
    root = truthful_sweep
    assert len(_metrics(root)) == 8
    runs = pd.read_csv(root / "runs.csv")
    assert len(runs) == 8
    assert list(runs.columns[:8]) == ["scheme", "case", "settlement", "reasoning", "liquidity",
                                      "aggregation", "seed", "run_dir"]
    assert {"total_cost", "inefficiency_pct", "congestions", "max_congestion_pct",
            "voltage_violations", "runtime_s"} <= set(runs.columns)
    combos = set(zip(runs.scheme, runs.liquidity, runs.seed))
    assert combos == {(s, l, k) for s in ("common", "ml01") for l in (1.0, 0.5) for k in (0, 1)}
    # each job's directory is named by its overrides (stable across re-runs)
    assert "liquidity=0.5,scheme=ml01,seed=1" in set(runs.run_dir)
    assert set(runs.reasoning) == {"truthful"} and runs.total_cost.gt(0).all()


def test_report_of_a_truthful_sweep_draws_what_it_has_data_for(truthful_sweep):
    root = truthful_sweep
    for stem in ("efficiency_vs_liquidity", "grid_safety"):
        assert (root / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (root / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    for stem in ("markup_distribution", "convergence", "aggregation_effect"):
        assert not (root / f"{stem}.png").exists()
    report = (root / "report.md").read_text()
    assert "cost [EUR]" in report and "eta [%]" in report
    assert "![efficiency_vs_liquidity](efficiency_vs_liquidity.png)" in report
    assert "min-max range over the 2 runs (seeds)" in report  # band rule with 2 seeds
    assert "markup distributions: no strategic runs" in report


def test_rerun_recomputes_only_the_killed_run(monkeypatch, capsys, truthful_sweep):
    root = truthful_sweep
    killed, *others = _metrics(root)
    killed.unlink()  # a job killed before it wrote metrics.json
    before = {path: path.stat().st_mtime_ns for path in others}
    _flexgame(monkeypatch, "sweep", *SWEPT, f"hydra.sweep.dir={root}")
    assert "1 done, 7 skipped, 0 failed" in capsys.readouterr().out
    assert killed.exists()
    assert {path: path.stat().st_mtime_ns for path in others} == before


def test_failed_job_keeps_the_others_and_exits_non_zero(monkeypatch, capsys, tmp_path):
    """A job failing at run time (the model's run raises for seed 1; the jobs run in this
    process with n_jobs=1, and plan-time checks pass) writes error.txt; the other finishes."""
    real = tso_dso.run

    def run(settings, out_dir):
        if settings.seed == 1:
            raise RuntimeError("no_such_result")
        return real(settings, out_dir)

    monkeypatch.setattr(tso_dso, "run", run)
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "sweep", "seed=0,1", "hydra.launcher.n_jobs=1",
                  f"hydra.sweep.dir={tmp_path}")
    assert stop.value.code == 1
    good, bad = tmp_path / "seed=0", tmp_path / "seed=1"
    assert (good / "metrics.json").exists() and not (good / "error.txt").exists()
    error = (bad / "error.txt").read_text()
    assert not (bad / "metrics.json").exists()
    assert "Traceback" in error and "no_such_result" in error
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 done, 0 skipped, 1 failed" in summary and str(bad) in summary


@pytest.mark.parametrize("override, expected", [
    ("scheme=common,ml09", ["scheme", "ml09", "common", "bid_aggregation"]),
    ("liquidity=0.5,1.5", ["liquidity=1.5", "(0, 1]"]),
    ("seed=range(-1,2)", ["seed=-1", ">= 0"]),
    ("+experiment=ker3", ["experiment", "ker3", "default_study", "ker2"]),
])
def test_bad_value_in_a_sweep_stops_before_any_job(monkeypatch, capsys, tmp_path, override,
                                                    expected):
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "sweep", "case=A,B", override, f"hydra.sweep.dir={tmp_path}")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in expected:
        assert word in err
    assert list(tmp_path.iterdir()) == []  # no job ran, no directory was made


def test_default_sweep_dir_is_stable_for_the_same_overrides():
    first = sweep.plan(["seed=0,1", "scheme=common,ml01"])
    again = sweep.plan(["scheme=common,ml01", "seed=0,1", "hydra.launcher.n_jobs=1"])
    other = sweep.plan(["scheme=common,ml01", "seed=0,2"])
    assert first.sweep_dir == again.sweep_dir != other.sweep_dir
    assert first.sweep_dir.parent == sweep.SWEEP_ROOT
    assert sorted(job.run_dir.name for job in first.jobs) == [
        "scheme=common,seed=0", "scheme=common,seed=1", "scheme=ml01,seed=0", "scheme=ml01,seed=1"]


def test_presets_expand_to_their_studies(tmp_path):
    study = sweep.plan(["+experiment=default_study"], default_dir=tmp_path)
    assert len(study.jobs) == 16 and study.sweep_dir == tmp_path
    job = study.jobs[0]
    assert job.run_dir == tmp_path / "liquidity=1.0,reasoning=truthful,scheme=common"
    strategic = load_config(["+experiment=default_study", "reasoning=equilibrium"])
    assert (strategic.reasoning.max_rounds, strategic.aggregation.mode,
            strategic.case.name) == (20, "random_pools", "B")
    sizes = {name: math.prod(len(str(v).split(",")) for v in load_config(
        [f"+experiment={name}"], return_hydra_config=True).hydra.sweeper.params.values())
        for name in ("ker2", "d33_table")}
    assert sizes == {"ker2": 3 * 5 * 3 * 3, "d33_table": 11 * 4}


def test_submitit_local_launcher_runs_a_job(monkeypatch, tmp_path):
    _flexgame(monkeypatch, "sweep", "hydra/launcher=submitit_local", "scheme=ml01",
              f"hydra.sweep.dir={tmp_path}")
    assert (tmp_path / "scheme=ml01" / "metrics.json").exists()
    assert (tmp_path / ".submitit").is_dir()
