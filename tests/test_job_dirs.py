"""Job directories of a sweep are named by their overrides, sanitised so that no swept value
(a path with ``/`` or ``..``) puts a job outside the sweep directory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from flexgame.experiments import sweep
from flexgame.experiments.cli import main

CASE14 = Path(__file__).resolve().parent.parent / "markets" / "cases" / "case14.m"
"""The embedded IEEE 14-bus case, copied as a case file given by path."""
VALUE = "../../../case14.m"


@pytest.mark.parametrize("name", ["liquidity=0.5,scheme=ml01,seed=0", "seed=-1",
                                  "case.prices.transmission_up=[90,120]",
                                  "system.tx_ratings_mw={1-2:50}", "x=1e-05"])
def test_ordinary_names_are_kept(name):
    assert sweep.job_dirname(name) == name


@pytest.mark.parametrize("name", ["k=../../../x.m", "k=/etc/passwd", "..", ".", "k=a\\b",
                                  "k=a b", "k=" + "x" * 300, "k=a/..", "k=$(rm -rf ~)"])
def test_unsafe_names_become_one_safe_component(name):
    safe = sweep.job_dirname(name)
    assert safe != name and safe not in ("", ".", "..") and ".." not in safe
    assert "/" not in safe and "\\" not in safe and len(safe.encode()) <= 200
    assert safe == sweep.job_dirname(name)  # stable: a re-run finds its directory


def test_different_values_never_share_a_directory():
    names = ["k=a/b", "k=a_b", "k=a?b", "k=a b", "k=a//b", "k=a..b", "k=a__b"]
    assert len({sweep.job_dirname(n) for n in names}) == len(names)


@pytest.fixture
def case_above(monkeypatch, tmp_path):
    """A valid case file three directories above the working directory and a sweep directory
    beside it: the swept value ``../../../case14.m`` names the file, and as an unsanitised job
    path (``<sweep>/system.transmission_case=../../../case14.m``) it is that file itself."""
    top = tmp_path / "work"
    (top / "a" / "b" / "c").mkdir(parents=True)
    shutil.copy(CASE14, top / "case14.m")
    monkeypatch.chdir(top / "a" / "b" / "c")
    return top, [f"system.transmission_case={VALUE},case14", f"hydra.sweep.dir={top / 'sweep'}"]


def test_plan_keeps_every_job_inside_the_sweep_dir(case_above):
    top, overrides = case_above
    plan = sweep.plan(overrides)
    assert [job.run_dir.parent for job in plan.jobs] == [top / "sweep"] * 2
    names = {job.run_dir.name for job in plan.jobs}
    assert names == {"system.transmission_case=case14",
                     sweep.job_dirname(f"system.transmission_case={VALUE}")}


def test_a_path_value_cannot_write_outside_or_stop_the_sweep(monkeypatch, capsys, case_above):
    """Unsanitised, the path job's directory would be the case file outside the sweep
    directory (the launcher crashed on it and the other job never ran)."""
    top, overrides = case_above
    before = (top / "case14.m").read_bytes()
    monkeypatch.setattr(sys, "argv", ["flexgame", "sweep", *overrides,
                                      "hydra.launcher.n_jobs=1"])
    main()
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in top.iterdir()) == ["a", "case14.m", "sweep"]
    assert (top / "case14.m").read_bytes() == before
    for job in sweep.plan(overrides).jobs:  # where the jobs wrote is where plan looks
        assert job.complete and job.run_dir.parent == top / "sweep"
