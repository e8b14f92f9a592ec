"""Sweeps: ``flexgame sweep`` runs the ``flexgame run`` app as a Hydra multirun.

:func:`plan` expands the overrides into jobs the way Hydra's basic sweeper does (comma lists,
``range(...)``, the ``hydra.sweeper.params`` of a preset), composes every job's config and
validates it (:func:`experiments.run.validate_config`) before any job starts, so a bad value
stops the whole sweep with one line. The sweep directory is stable for the same overrides
(``results/sweeps/<hash>``) and each job's subdirectory is its ``hydra.job.override_dirname``
(``liquidity=0.5,scheme=ml01,seed=0``), so re-running a sweep finds its earlier runs.

Every job runs :func:`run_job`: it skips a finished run (``metrics.json`` present and the
stored ``config.yaml`` equal to the job's config), and otherwise runs the simulation and
catches any failure into ``error.txt``, so a failed job never loses the others.
:class:`Progress` draws a bar over the jobs by watching their directories (it works for every
launcher: the jobs run in other processes or on other hosts), and :func:`outcome` sorts the
jobs into done, skipped and failed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
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
SWEEP_ROOT = Path("results") / "sweeps"
"""Parent of the default sweep directories."""


@dataclass
class Job:
    """One job of a sweep: its overrides, run directory and whether it is already complete."""

    overrides: list[str]
    run_dir: Path
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
    """Whether ``run_dir`` holds a finished run (``metrics.json``) of exactly ``config`` (the
    canonical form of its settings, :func:`flexgame.experiments.config.canonical`)."""
    run_dir = Path(run_dir)
    if not (run_dir / METRICS).is_file() or not (run_dir / CONFIG).is_file():
        return False
    return OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG)) == config


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
        result.jobs.append(Job(job_overrides, run_dir,
                               is_complete(run_dir, canonical(job_settings))))
    for key, message in (without_effect[0] if without_effect else {}).items():
        if all(key in problems for problems in without_effect):
            raise FlexgameInputError(message)
    check_systems(runs)
    return result


def clear_stale(sweep: Plan) -> None:
    """Remove ``metrics.json`` and ``error.txt`` left by earlier attempts of the jobs that will
    run (another config, a failure), so that afterwards these files report this sweep."""
    for job in sweep.jobs:
        if not job.complete:
            for name in (METRICS, ERROR):
                (job.run_dir / name).unlink(missing_ok=True)


def run_job(cfg, out_dir) -> str:
    """One job of a sweep (runs inside the launcher's worker): skip a complete run, else run
    it and write any exception's traceback to ``error.txt``. Never raises an ``Exception``.
    Returns ``"skipped"``, ``"done"`` or ``"failed"``."""
    out = Path(out_dir)
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
    """How the jobs of a sweep ended."""

    done: list[Job]
    skipped: list[Job]
    failed: list[Job]

    def summary(self, sweep_dir: Path) -> str:
        """One line: counts and the failed jobs' directories."""
        line = (f"sweep {sweep_dir}: {len(self.done)} done, {len(self.skipped)} skipped, "
                f"{len(self.failed)} failed")
        if self.failed:
            line += " (" + ", ".join(str(job.run_dir) for job in self.failed) + ")"
        return line


def outcome(sweep: Plan) -> Outcome:
    """Sort the jobs after the sweep: skipped (complete before), done (``metrics.json``),
    failed (``error.txt``, or no output at all: the job was killed or never ran)."""
    result = Outcome([], [], [])
    for job in sweep.jobs:
        if job.complete:
            result.skipped.append(job)
        elif (job.run_dir / METRICS).exists() and not (job.run_dir / ERROR).exists():
            result.done.append(job)
        else:
            result.failed.append(job)
    return result
