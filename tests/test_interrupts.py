"""`flexgame sweep` interrupted by SIGTERM or SIGINT (Ctrl-C) on the joblib launcher with two
workers: it stops its workers, prints its summary line without a traceback and exits with
128 + the signal's number (issue 12, defect 6)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="needs Linux /proc to find the sweep's processes")

SUMMARY = re.compile(r"^sweep .+: \d+ done, \d+ skipped, .*\d+ failed.*interrupted by SIG",
                     re.MULTILINE)


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: the sweep and everything it started
    (loky workers, resource trackers) unless one made its own session."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != b"Z":
            found.append(int(entry))
    return found


def _started(sweep: subprocess.Popen, sweep_dir: Path, timeout: float = 120) -> None:
    """Wait until a job has started (Hydra made its directory)."""
    end = time.monotonic() + timeout
    while not any(sweep_dir.glob("*/.hydra")):
        assert sweep.poll() is None, sweep.communicate()
        assert time.monotonic() < end, "no job started"
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_sweep_stops_its_workers_and_prints_its_summary(tmp_path, signum):
    sweep_dir = tmp_path / "sweep"
    # logit responses: minutes per job, so the signal always finds both workers busy
    command = [sys.executable, "-m", "flexgame.experiments.cli", "sweep", "seed=range(4)",
               "reasoning=logit", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}"]
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=tmp_path, start_new_session=True)
    try:
        _started(sweep, sweep_dir)
        time.sleep(2)
        assert len(_session(sweep.pid)) > 2  # the sweep, its workers and resource trackers
        sweep.send_signal(signum)
        out, err = sweep.communicate(timeout=60)
        end = time.monotonic() + 5
        while _session(sweep.pid) and time.monotonic() < end:
            time.sleep(0.1)
        left = _session(sweep.pid)
    finally:
        for pid in _session(sweep.pid):  # what a failing sweep left running
            os.kill(pid, signal.SIGKILL)
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    assert "Traceback" not in out + err, err
    assert sweep.returncode == 128 + signum, (sweep.returncode, err[-2000:])
    assert SUMMARY.search(out), out
    assert f"interrupted by {signum.name}: 4 unfinished" in out
    assert not left, f"processes of the sweep still running: {left}"
    # joblib's memory-mapping folders and loky's semaphores of the sweep are removed
    shm = Path("/dev/shm")
    assert not [p.name for p in shm.glob(f"joblib_memmapping_folder_{sweep.pid}_*")]
    assert not [p.name for p in shm.glob(f"sem.loky-{sweep.pid}-*")]
    # the stopped jobs left no result: a re-run of the sweep computes them
    assert not list(sweep_dir.rglob("metrics.json")) and not list(sweep_dir.rglob("error.txt"))
