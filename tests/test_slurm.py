"""`flexgame sweep hydra/launcher=slurm` on a real SLURM cluster (issue 12, defect 11): the
single-node cluster .ci/run starts as root (slurmctld, slurmd, munged on this host). Skipped
when there is no SLURM (no `sinfo`) or no idle node.

The sweep's jobs run as SLURM jobs (submitit), their results equal a local (joblib) run of
the same sweep except for the runtimes, and a re-run after one job's metrics.json is lost
computes that job only. An interrupted SLURM sweep cancels its jobs."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SWEPT = ["scheme=common,ml01,ml03", "seed=1"]
"""Three truthful jobs."""
JOBS = ["scheme=common,seed=1", "scheme=ml01,seed=1", "scheme=ml03,seed=1"]
"""Their directories."""
SLURM = ["hydra/launcher=slurm", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]
"""Small jobs: a CI machine's node has little memory to give."""
TIMEOUT = 600
"""Seconds a sweep may take (jobs wait in the queue while others run)."""


def _idle_node() -> str | None:
    """Why SLURM cannot run the test here, or None when it can."""
    if shutil.which("sinfo") is None:
        return "no SLURM: sinfo is not on PATH (.ci/run starts a one-node cluster as root)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                                timeout=30)
    except subprocess.TimeoutExpired:
        return "no SLURM: sinfo did not answer within 30 s"
    if states.returncode != 0:
        return f"no SLURM controller: sinfo: {states.stderr.strip()}"
    if "idle" not in states.stdout.split():
        return f"no idle SLURM node (node states: {' '.join(states.stdout.split()) or 'none'})"
    return None


_NO_SLURM = _idle_node()
pytestmark = pytest.mark.skipif(_NO_SLURM is not None, reason=str(_NO_SLURM))


def _job_ids(sweep_dir: Path) -> list[str]:
    """The SLURM job ids of a sweep: its submitit job folders (``<id>``, ``<id>_<task>``)."""
    folders = (sweep_dir / ".submitit").glob("*")
    return sorted({p.name.split("_")[0] for p in folders
                   if p.is_dir() and p.name.split("_")[0].isdigit()})


def _sweep(sweep_dir: Path, *launcher: str) -> str:
    """Run the sweep into ``sweep_dir``; its output. A sweep that does not end within
    :data:`TIMEOUT` has its SLURM jobs cancelled and fails the test."""
    command = [sys.executable, "-m", "flexgame.experiments.cli", "sweep", *launcher, *SWEPT,
               f"hydra.sweep.dir={sweep_dir}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                              cwd=sweep_dir.parent)
    except subprocess.TimeoutExpired:
        ids = _job_ids(sweep_dir)
        if ids:
            subprocess.run(["scancel", *sorted(ids)], check=False)
        pytest.fail(f"the sweep did not end within {TIMEOUT} s; scancel {sorted(ids)}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _results(run_dir: Path) -> dict:
    """A run's metrics without its runtimes (``*_s``: wall-clock seconds)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if not k.endswith("_s")}


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The sweep on local cores (the joblib launcher)."""
    root = tmp_path_factory.mktemp("local") / "sweep"
    _sweep(root, "hydra.launcher.n_jobs=2")
    return root


def test_slurm_sweep_equals_a_local_one_and_reruns_only_a_lost_job(tmp_path, local):
    root = tmp_path / "sweep"
    out = _sweep(root, *SLURM)
    assert "3 done, 0 skipped, 0 failed" in out, out
    # the jobs ran as SLURM jobs: submitit's folder holds one log per array task
    logs = sorted((root / ".submitit").glob("*_*/*_log.out"))
    assert len(logs) == 3, sorted(p.name for p in (root / ".submitit").glob("*"))
    assert sum("done: " in log.read_text() for log in logs) == 3
    for job in JOBS:
        assert _results(root / job) == _results(local / job), job

    lost = root / JOBS[1] / "metrics.json"
    lost.unlink()  # as if the job had been killed before it finished
    kept = {job: (root / job / "metrics.json").stat().st_mtime_ns for job in (JOBS[0], JOBS[2])}
    out = _sweep(root, *SLURM)
    assert "1 done, 2 skipped, 0 failed" in out, out
    assert lost.exists()
    assert {job: (root / job / "metrics.json").stat().st_mtime_ns for job in kept} == kept
    for job in JOBS:
        assert _results(root / job) == _results(local / job), job


def _queued(ids: list[str]) -> str:
    """squeue's lines of the jobs ``ids``."""
    return subprocess.run(["squeue", "-h", "-j", ",".join(ids)], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def test_interrupted_slurm_sweep_cancels_its_jobs(tmp_path):
    root = tmp_path / "sweep"
    # logit responses: minutes per job, still running when the signal comes
    command = [sys.executable, "-m", "flexgame.experiments.cli", "sweep", *SLURM,
               "reasoning=logit", "seed=0,1", f"hydra.sweep.dir={root}"]
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=tmp_path)
    ids: list[str] = []
    try:
        end = time.monotonic() + 120
        while not any(root.glob("*/.hydra")):  # a job has started on the node
            assert sweep.poll() is None and time.monotonic() < end, "no SLURM job started"
            time.sleep(0.2)
        while not _job_ids(root):  # submitit's job folders appear as the jobs start
            assert sweep.poll() is None and time.monotonic() < end, "no SLURM job folder"
            time.sleep(0.2)
        ids = _job_ids(root)
        assert _queued(ids)
        sweep.send_signal(signal.SIGTERM)
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
        left = _queued(ids) if ids else ""
        if left:
            subprocess.run(["scancel", *ids], check=False)
    assert sweep.returncode == 143, err[-3000:]
    assert "Traceback" not in out + err
    assert "0 done, 0 skipped, 0 failed; interrupted by SIGTERM: 2 unfinished" in out, out
    assert not left, f"SLURM jobs of the sweep still queued or running:\n{left}"
