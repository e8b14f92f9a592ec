"""Sweeps: ``flexgame sweep`` runs the ``flexgame run`` app as a Hydra multirun.

:func:`plan` expands the overrides into jobs the way Hydra's basic sweeper does (comma lists,
``range(...)``, the ``hydra.sweeper.params`` of a preset), composes every job's config and
validates it (:func:`experiments.run.validate_config`) before any job starts, so a bad value
stops the whole sweep with one line. The sweep directory is stable for the same overrides
(``results/sweeps/<hash>``) and each job's subdirectory is its ``hydra.job.override_dirname``
(``liquidity=0.5,scheme=ml01,seed=0``) made safe by :func:`job_dirname` (a swept path such as
``../x.m`` never puts a job outside the sweep directory), so re-running a sweep finds its
earlier runs.

Every job runs :func:`run_job` under its lock (:func:`job_lock`; a job another sweep is
running is skipped, never run twice): it skips a finished run (:func:`is_complete`: a
readable ``metrics.json`` and the stored ``config.yaml`` equal to the job's config), and
otherwise runs the simulation and catches any failure into ``error.txt``, so a failed job
never loses the others.
:class:`Progress` draws a bar over the jobs by watching their directories (it works for every
launcher: the jobs run in other processes or on other hosts), and :func:`outcome` sorts the
jobs into done, skipped, running elsewhere and failed afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from flexgame.experiments.config import (canonical, effective_problems, hydra_error,
                                         load_config, parse_overrides, settings)
from flexgame.experiments.run import run_experiment
from flexgame.experiments.schema import check_systems
from flexgame.experiments.store import write_text
from flexgame.markets.errors import FlexgameInputError

METRICS = "metrics.json"
"""Written last by a run: its presence marks a complete run."""
ERROR = "error.txt"
"""The traceback of a failed job."""
CONFIG = "config.yaml"
"""The resolved config a run was computed with."""
LOCK = ".lock"
"""Locked (:func:`job_lock`) by the process running or clearing a job."""
SWEEP_ROOT = Path("results") / "sweeps"
"""Parent of the default sweep directories."""
UNSAFE = re.compile(r"[^\w.,=+\-\[\]{}:@%~()]|\.\.+|^\.$", re.ASCII)
"""What :func:`job_dirname` replaces: characters other than letters, digits and the
punctuation of ordinary overrides (``/``, ``\\``, spaces, quotes, shell characters), any ``..``
and a name that is only ``.``."""
MAX_DIRNAME = 200
"""Longest job directory name (file systems allow 255 bytes)."""


def job_dirname(name: str) -> str:
    """A job directory name for ``name`` (its ``hydra.job.override_dirname``): unchanged when it
    is safe (``liquidity=0.5,scheme=ml01,seed=0``), else with :data:`UNSAFE` parts replaced by
    ``_``, cut to :data:`MAX_DIRNAME` and suffixed with a hash of ``name``, so that it is one
    path component inside the sweep directory and two different names never collide.

    Registered as the OmegaConf resolver ``job_dirname`` (``hydra.sweep.subdir`` in
    ``conf/config.yaml``)."""
    safe = UNSAFE.sub("_", name)
    if safe == name and len(name) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{safe[:MAX_DIRNAME - len(digest) - 1]}-{digest}"


# At import: the launcher's workers resolve hydra.sweep.subdir, and they import this module
# to unpickle run_job.
OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


class UnreadableRun(Exception):
    """A run file that is missing, cut short or not what a run writes; the message says which
    and why in one line."""


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (YAML errors span several)."""
    return " ".join(str(error).split())[:200] or type(error).__name__


def read_metrics(run_dir) -> dict:
    """A run's ``metrics.json``.

    Raises:
        UnreadableRun: it is missing, not JSON (e.g. cut short) or not a JSON object.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise UnreadableRun(f"no {METRICS}")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UnreadableRun(f"{METRICS} is not valid JSON: {_one_line(error)}") from None
    if not isinstance(metrics, dict):
        raise UnreadableRun(f"{METRICS} holds a JSON {type(metrics).__name__}, not an object")
    return metrics


def read_config(run_dir) -> dict:
    """A run's ``config.yaml`` as plain containers, read by OmegaConf's YAML loader (a
    ``yaml.SafeLoader``: a foreign tag such as ``!!python/object`` is an error, never
    constructed).

    Raises:
        UnreadableRun: it is missing, fails to load (any error) or is not a mapping.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UnreadableRun(f"no {CONFIG}")
    try:
        config = OmegaConf.load(path)
    except Exception as error:  # YAML, OmegaConf, decoding or I/O: unreadable all the same
        raise UnreadableRun(f"{CONFIG} is unreadable: {_one_line(error)}") from None
    if not isinstance(config, DictConfig):
        raise UnreadableRun(f"{CONFIG} is not a mapping")
    return OmegaConf.to_container(config)


@dataclass
class Job:
    """One job of a sweep: its overrides, run directory, config (the canonical form a run
    stores) and whether it is already complete."""

    overrides: list[str]
    run_dir: Path
    config: dict
    complete: bool


@dataclass
class Plan:
    """A validated sweep: the arguments for Hydra, the sweep directory and the jobs."""

    argv: list[str]
    sweep_dir: Path
    jobs: list[Job] = field(default_factory=list)


def run_overrides(overrides: list[str]) -> list[str]:
    """The overrides that define the runs: all but Hydra's own (launcher, directories)."""
    return [o.input_line for o in parse_overrides(overrides) if not o.is_hydra_override()]


def overrides_hash(overrides: list[str]) -> str:
    """A short hash of :func:`run_overrides` (order-independent): the same sweep on another
    launcher keeps its directory."""
    lines = sorted(run_overrides(overrides))
    return hashlib.sha1(json.dumps(lines).encode()).hexdigest()[:10]


def is_complete(run_dir: Path, config: dict) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly ``config`` (the canonical form of its
    settings, :func:`flexgame.experiments.config.canonical`): its ``metrics.json`` is a JSON
    object and its ``config.yaml`` loads and equals ``config``. A damaged run is not complete:
    a re-run of the sweep computes it again."""
    try:
        read_metrics(run_dir)
        return read_config(run_dir) == config
    except UnreadableRun:
        return False


@contextmanager
def job_lock(run_dir) -> Iterator[bool]:
    """Try to lock a job for the block, without waiting: an exclusive ``flock`` on
    :data:`LOCK` in its directory (made if missing). Yields whether the lock was taken; it is
    not while another process (or thread) runs or clears the job, and is released when the
    block ends, also when its process dies. Concurrent sweeps of one directory use it so
    that none runs a job twice or deletes another's results."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a") as handle:  # closing the file releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True


def running_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds the lock of the job in ``run_dir`` (an existing
    directory; a missing one runs nowhere)."""
    if not run_dir.is_dir():
        return False
    with job_lock(run_dir) as acquired:
        return not acquired


def plan(overrides: list[str], default_dir: Path | None = None) -> Plan:
    """Expand and validate a sweep before launching it.

    Args:
        overrides: Hydra overrides as typed (``scheme=common,ml01 seed=range(3)``).
        default_dir: sweep directory unless ``hydra.sweep.dir`` is among the overrides;
            default ``results/sweeps/<hash of the non-Hydra overrides>``.

    Raises:
        FlexgameInputError: for the first job whose config is invalid, naming the key and
            what is allowed, an override that has no effect in any job (an option of ibr
            swept with truthful and ibr runs has an effect in some: it is kept), a swept
            override without values (no job), or a system that cannot be built from its
            case files (:func:`~flexgame.experiments.schema.check_systems`); no job has run.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    parsed = parse_overrides(overrides)
    hydra_lines = [o.input_line for o in parsed if o.is_hydra_override()]
    task = [o for o in parsed if not o.is_hydra_override()]
    for o in task:
        if o.key_or_group == "experiment" and o.is_sweep_override():
            raise FlexgameInputError(f"{o.input_line}: a sweep takes one experiment preset")
    argv = list(overrides)
    if not any(o.key_or_group == "hydra.sweep.dir" for o in parsed):
        sweep_dir = default_dir or SWEEP_ROOT / overrides_hash(overrides)
        argv.append(f"hydra.sweep.dir={sweep_dir}")
        hydra_lines.append(argv[-1])
    try:
        fixed = [o.input_line for o in task if not o.is_sweep_override()]
        master = load_config([*hydra_lines, *fixed], return_hydra_config=True)
        params = master.hydra.sweeper.get("params") or {}
        swept = parse_overrides([*(f"{k}={v}" for k, v in params.items()), *(o.input_line for o in task)])
        batches = BasicSweeper.split_arguments(swept, None)[0]
    except (HydraException, OmegaConfBaseException) as error:
        raise hydra_error(error) from None
    for o in swept:
        if o.is_sweep_override() and not list(o.sweep_string_iterator()):
            raise FlexgameInputError(f"{o.input_line} gives no value: the sweep has no job")
    result = Plan(argv=argv, sweep_dir=Path(master.hydra.sweep.dir))
    without_effect: list[dict[str, str]] = []
    runs = []
    for job_overrides in batches:
        cfg = load_config([*hydra_lines, *job_overrides], return_hydra_config=True)
        run_dir = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
        job_settings = settings(cfg, check_overrides=False)
        runs.append(job_settings)
        without_effect.append(effective_problems(job_settings, job_overrides))
        config = canonical(job_settings)
        result.jobs.append(Job(job_overrides, run_dir, config, is_complete(run_dir, config)))
    for key, message in (without_effect[0] if without_effect else {}).items():
        if all(key in problems for problems in without_effect):
            raise FlexgameInputError(message)
    check_systems(runs)
    return result


def clear_stale(sweep: Plan) -> None:
    """Remove ``metrics.json`` and ``error.txt`` left by earlier attempts of the jobs that will
    run (another config, a failure, a damaged file), so that afterwards these files report
    this sweep. Each job is checked again under its lock (another sweep may have run it since
    planning): a job another process holds is left alone, and one found complete now is
    marked complete (skipped) and kept."""
    for job in sweep.jobs:
        if job.complete or not job.run_dir.is_dir():
            continue
        with job_lock(job.run_dir) as acquired:
            if not acquired:
                continue
            job.complete = is_complete(job.run_dir, job.config)
            if not job.complete:
                for name in (METRICS, ERROR):
                    (job.run_dir / name).unlink(missing_ok=True)


def run_job(cfg, out_dir) -> str:
    """One job of a sweep (runs inside the launcher's worker), under its lock: skip a job
    another process is running or a complete run, else run it and write any exception's
    traceback to ``error.txt``. Never raises an ``Exception``.
    Returns ``"skipped"``, ``"done"`` or ``"failed"``."""
    out = Path(out_dir)
    with job_lock(out) as acquired:
        if not acquired:
            print(f"skipped (running elsewhere): {out}", flush=True)
            return "skipped"
        if is_complete(out, canonical(settings(cfg, check_overrides=False))):
            print(f"skipped (already complete): {out}", flush=True)
            return "skipped"
        try:
            run_experiment(cfg, out)
        except Exception:
            write_text(out / ERROR, traceback.format_exc())
            print(f"failed: {out} (traceback in {ERROR})", flush=True)
            return "failed"
    print(f"done: {out}", flush=True)
    return "done"


def finished(job: Job) -> bool:
    """Whether a job has ended (complete before the sweep, or written metrics or an error)."""
    return job.complete or any((job.run_dir / name).exists() for name in (METRICS, ERROR))


class Progress:
    """A tqdm bar over a sweep's jobs, advanced by a thread that polls the jobs' run
    directories every ``interval`` seconds (shown on a terminal only)."""

    def __init__(self, sweep: Plan, interval: float = 0.5):
        self.jobs = sweep.jobs
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.bar = tqdm(total=len(self.jobs), desc="sweep", unit="job", disable=None,
                        initial=sum(job.complete for job in self.jobs))

    def _update(self) -> None:
        self.bar.n = sum(map(finished, self.jobs))
        self.bar.refresh()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._update()
        self.bar.close()


@dataclass
class Outcome:
    """How the jobs of a sweep ended (``elsewhere``: still running in another process)."""

    done: list[Job]
    skipped: list[Job]
    failed: list[Job]
    elsewhere: list[Job] = field(default_factory=list)

    def summary(self, sweep_dir: Path) -> str:
        """One line: counts and the failed jobs' directories."""
        running = f"{len(self.elsewhere)} running elsewhere, " if self.elsewhere else ""
        line = (f"sweep {sweep_dir}: {len(self.done)} done, {len(self.skipped)} skipped, "
                f"{running}{len(self.failed)} failed")
        if self.failed:
            line += " (" + ", ".join(str(job.run_dir) for job in self.failed) + ")"
        return line


def outcome(sweep: Plan) -> Outcome:
    """Sort the jobs after the sweep: skipped (complete before), done (complete now, without
    ``error.txt``), elsewhere (another process holds its lock), failed (``error.txt``, or no
    complete output: the job was killed or never ran)."""
    result = Outcome([], [], [])
    for job in sweep.jobs:
        if job.complete:
            result.skipped.append(job)
        elif is_complete(job.run_dir, job.config) and not (job.run_dir / ERROR).exists():
            result.done.append(job)
        elif running_elsewhere(job.run_dir):
            result.elsewhere.append(job)
        else:
            result.failed.append(job)
    return result
