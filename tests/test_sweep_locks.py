"""Concurrent sweeps over the same directory: a job runs in one process at a time (a per-job
lock), the others skip it, and clearing stale files never deletes another sweep's results."""

from __future__ import annotations

import threading

import pytest

from flexgame.experiments import sweep
from flexgame.experiments.config import load_config
from flexgame.experiments.run import run_experiment

OVERRIDES = ["scheme=ml01"]


@pytest.fixture
def planned(tmp_path):
    """A one-job sweep planned before any job ran."""
    plan = sweep.plan(OVERRIDES, default_dir=tmp_path)
    (job,) = plan.jobs
    assert not job.complete
    return plan, job


@pytest.fixture
def held():
    """``held(run_dir)``: hold the job's lock in another thread until the test ends (as a
    sweep running it in another process would)."""
    release, threads = threading.Event(), []

    def hold(run_dir):
        taken = threading.Event()

        def worker():
            with sweep.job_lock(run_dir) as acquired:
                assert acquired
                taken.set()
                release.wait(60)

        threads.append(threading.Thread(target=worker))
        threads[-1].start()
        assert taken.wait(60)

    yield hold
    release.set()
    for thread in threads:
        thread.join()


def test_a_job_running_elsewhere_is_skipped_not_run_twice(monkeypatch, planned):
    _, job = planned
    entered, proceed, calls = threading.Event(), threading.Event(), []

    def slow_run(cfg, out):
        calls.append(out)
        entered.set()
        proceed.wait(30)
        return run_experiment(cfg, out)

    monkeypatch.setattr(sweep, "run_experiment", slow_run)
    cfg = load_config(OVERRIDES)
    first: list[str] = []
    thread = threading.Thread(target=lambda: first.append(sweep.run_job(cfg, job.run_dir)))
    thread.start()
    assert entered.wait(30)
    second = sweep.run_job(cfg, job.run_dir)  # another sweep reaches the same job
    proceed.set()
    thread.join()
    assert (first, second, len(calls)) == (["done"], "skipped", 1)
    assert sweep.run_job(cfg, job.run_dir) == "skipped"  # and once it is complete
    assert len(calls) == 1


def test_clear_stale_keeps_a_run_finished_after_planning(planned):
    plan, job = planned
    run_experiment(load_config(OVERRIDES), job.run_dir)  # another sweep finishes the job
    sweep.clear_stale(plan)
    assert (job.run_dir / sweep.METRICS).is_file() and job.complete
    assert sweep.outcome(plan).skipped == [job]


def test_clear_stale_leaves_a_running_job_alone(planned, held):
    plan, job = planned
    job.run_dir.mkdir(parents=True)
    held(job.run_dir)
    (job.run_dir / sweep.METRICS).write_text("{}")  # being written by the other sweep
    sweep.clear_stale(plan)
    assert (job.run_dir / sweep.METRICS).read_text() == "{}"


def test_outcome_reports_a_job_running_elsewhere(planned, held):
    plan, job = planned
    held(job.run_dir)
    result = sweep.outcome(plan)
    assert (result.elsewhere, result.failed) == ([job], [])
    assert "1 running elsewhere" in result.summary(plan.sweep_dir)
