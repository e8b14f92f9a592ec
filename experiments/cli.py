"""The ``flexgame`` command.

    flexgame run [overrides]     one simulation (a Hydra app: scheme=ml03 case=B seed=3 ...)
    flexgame sweep [overrides]   a multirun of the same app (scheme=common,ml01 seed=range(3))
    flexgame report DIR          table, figures and report.md of a run or sweep directory
    flexgame study [NAME]        a preset sweep (conf/experiment/) followed by its report
    flexgame table [options]     the D3.3 table: every scheme on cases A-D, truthful bids
    flexgame summary [overrides] the test system and its base state

A :class:`flexgame.markets.errors.FlexgameInputError` (a wrong config value, an unknown option)
prints one line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from flexgame.markets.errors import FlexgameInputError, SolverError, require_choice

# The commands import what they need when they run, so that `flexgame --version` and the
# usage text do not load the solvers, Hydra and pandas.

PROG = "flexgame"
USAGE = f"""\
usage: {PROG} <command> [arguments]

Agent-based game-theory simulator of TSO-DSO flexibility markets.
'{PROG} --version' prints the version.

commands:
  run [overrides]      one simulation; Hydra overrides such as
                         {PROG} run scheme=ml03 case=B seed=3 settlement=nodal liquidity=0.5
                       groups: scheme, case, settlement, aggregation, reasoning, system;
                       values: seed, liquidity; Hydra's own (hydra.run.dir=DIR, --cfg job).
                       Outputs go to results/runs/<time>_<scheme>_<case>_s<seed>/.
                       '{PROG} run --help' shows every group and option.
  sweep [overrides]    every combination of comma lists / range(...) as one job each, on
                       all local cores (SLURM: hydra/launcher=slurm), into
                       results/sweeps/<hash>/; re-running skips finished jobs.
                       '{PROG} sweep --help' for details.
  report DIR           one tidy table (runs.csv), figures (PNG, SVG) and report.md of the
                       runs under DIR (a run or sweep directory); '{PROG} report --help'.
  study [NAME]         a preset sweep and its report into results/studies/NAME/; without
                       NAME the main job (default_study). '{PROG} study --help' lists them.
  table [options]      the D3.3 table: every scheme on cases A-D with truthful bids,
                       printed and saved (CSV, PNG/SVG figure, report.md) to results/d33_table/
                       '{PROG} table --help' for options.
  summary [overrides]  the test system (default: IEEE 14-bus + case69 + case141) and its
                       base state.
  envelopes [options]  operating envelopes of non-firm connections on LV feeders (D3.3
                       ch. 5): per user along the IEEE European LV feeder, against the
                       share of users participating, and the feeder types of a generated
                       urban grid, into results/envelopes/; '{PROG} envelopes --help'.
  withholding [opts]   a strategic FSP's markup/withholding in a DLFM (D5.1 §3.6)
  continuous [options] continuous network-aware flexibility market (D5.1 §3.2) against a
                       welfare-maximising auction over seeded arrival orders: Table 6 KPIs,
                       welfare ratio histogram, into results/continuous/;
                       '{PROG} continuous --help'.
  idr table|study      implicit demand response of a BRP (KER 3): the paper's Table II
                       for its cases C1-C5, or the FOIO/VOIO/SBVOIO study on generated
                       EV data into results/idr_study/; '{PROG} idr --help'. One case as a
                       run: '{PROG} run model=implicit_dr idr.case=C1'.

Errors in the input print one line and exit with status 2.
"""


def _launch(task, args: list[str], command: str) -> None:
    """Run the Hydra app (config ``pkg://conf``) on ``args``: ``task(cfg, run_dir)`` is
    called for the run, or for every job of a multirun (``--multirun`` in ``args``)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from flexgame.experiments.config import CONFIG_MODULE
    from flexgame.experiments.models import register_schemas

    register_schemas()

    @hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="config", version_base="1.3")
    def app(cfg) -> None:
        task(cfg, HydraConfig.get().runtime.output_dir)

    argv = sys.argv
    sys.argv = [f"{PROG} {command}", *args]
    try:
        app()
    finally:
        sys.argv = argv


def _run(overrides: list[str]) -> None:
    """``flexgame run``: one simulation; Hydra sees only the overrides."""
    from flexgame.experiments.config import load_config, settings
    from flexgame.experiments.run import check_run_dir, format_metrics, run_experiment

    check_run_dir(overrides)  # before Hydra sets up an output directory
    if any(a in ("-m", "--multirun") for a in overrides):
        rest = " ".join(a for a in overrides if a not in ("-m", "--multirun"))
        raise FlexgameInputError(f"{PROG} run runs one simulation; for a multirun use "
                                 f"'{PROG} sweep {rest}'")
    if not any(a.startswith("-") for a in overrides):  # --cfg, --help: Hydra answers
        settings(load_config(overrides), overrides)  # every value checked before running
    failures: list[FlexgameInputError | SolverError] = []

    def task(cfg, out_dir) -> None:
        try:
            metrics = run_experiment(cfg, out_dir, overrides)
        except (FlexgameInputError, SolverError) as error:  # reported by main(), one line
            failures.append(error)
            return
        print(format_metrics(metrics))
        print(f"outputs: {out_dir}")

    _launch(task, overrides, "run")
    if failures:
        raise failures[0]


SWEEP_HELP = f"""\
usage: {PROG} sweep [overrides]

A Hydra multirun of '{PROG} run' over every combination of the overrides' values:
  {PROG} sweep scheme=common,ml01 liquidity=1.0,0.5 seed=range(3)
Every job's config is validated before any job starts. Jobs run on all local cores
(hydra/launcher=joblib, hydra.launcher.n_jobs=N to limit), on SLURM with
hydra/launcher=slurm hydra.launcher.partition=NAME, or one by one in subprocesses with
hydra/launcher=submitit_local. Outputs go to hydra.sweep.dir (default
results/sweeps/<hash of the overrides>), one directory per job named by its overrides.
Re-running the same sweep skips finished runs (metrics.json present, same config) and
recomputes missing or failed ones. A failed job writes error.txt and never stops the others;
the sweep ends with a summary line and exit status 1 if any job failed.
Ctrl-C or SIGTERM stops the workers (on SLURM: scancel of the sweep's jobs), prints the
summary of the jobs so far and exits with status 130 or 143; a re-run computes the rest.
Presets: +experiment=NAME (conf/experiment/); '{PROG} study' also writes the report.
"""


@contextmanager
def _environment(**values: str):
    """Set environment variables (seen by the jobs' worker processes) for the block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the SIGTERM handler of :func:`_interrupts`."""


@contextmanager
def _interrupts():
    """Turn SIGTERM into :class:`_Interrupted` (a ``KeyboardInterrupt``, as SIGINT already is)
    in the main thread for the block, so that both unwind the launcher the same way (joblib
    aborts its workers on a ``KeyboardInterrupt``); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise _Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _descendants(pid: int | None = None) -> list[int]:
    """The process ids of every descendant of ``pid`` (default: this process), read from
    ``/proc`` (empty where there is none)."""
    pid = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2:].split()  # after "pid (name) "
        if fields[0] != b"Z":  # a zombie has ended already
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stop_workers(grace: float = 3.0) -> None:
    """Stop every process the sweep started: joblib's loky workers (its reusable executor,
    when one exists, is shut down with its workers killed) and any other descendant (the
    submitit_local jobs, a worker's own children): SIGTERM, then SIGKILL after ``grace``
    seconds. The resource trackers are left to end with this process: they remove the
    semaphores and ``/dev/shm/joblib_memmapping_folder_*`` they track when it exits."""
    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(loky, "_executor", None) if loky else None
    if executor is not None:
        try:
            executor.shutdown(wait=False, kill_workers=True)
        except Exception:  # already broken or shut down: the processes are handled below
            pass
    deadline = time.monotonic() + grace
    signum = signal.SIGTERM
    while True:
        workers = [pid for pid in _descendants() if "resource_tracker" not in _cmdline(pid)]
        if not workers:
            return
        if time.monotonic() > deadline:
            signum = signal.SIGKILL
        for pid in workers:
            try:
                os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in workers:  # reap those that are our own children
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.1)


SLURM_LAUNCHERS = ("slurm", "submitit_slurm")
"""The ``hydra/launcher`` options that submit the jobs to SLURM."""


def _slurm_jobs(plan, since: float) -> list[str]:
    """The SLURM job ids this sweep submitted (``hydra/launcher=slurm``): the job folders
    submitit made in ``<sweep dir>/.submitit`` (``<id>`` or ``<array id>_<index>``) since the
    time ``since``; none on another launcher."""
    launcher = None
    for arg in plan.argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~").removeprefix("override ").strip() == "hydra/launcher":
            launcher = value.strip()
    if launcher not in SLURM_LAUNCHERS:
        return []
    folders = [p for p in (plan.sweep_dir / ".submitit").glob("*")
               if p.is_dir() and p.stat().st_mtime >= since - 1]
    return sorted({p.name.split("_")[0] for p in folders if p.name.split("_")[0].isdigit()})


def _cancel_slurm_jobs(ids: list[str], wait: float = 60.0) -> None:
    """``scancel`` the jobs and wait (at most ``wait`` seconds) until SLURM has ended them,
    so that the summary finds them stopped."""
    import subprocess

    print(f"{PROG} sweep: cancelling SLURM jobs {' '.join(ids)}", file=sys.stderr, flush=True)
    try:
        subprocess.run(["scancel", *ids], timeout=30, check=False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            queue = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)],
                                   capture_output=True, text=True, timeout=30)
            if queue.returncode != 0 or not queue.stdout.strip():
                return
            time.sleep(1)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"{PROG} sweep: could not cancel SLURM jobs {' '.join(ids)}: {error}",
              file=sys.stderr)


def _interrupted_summary(plan, signame: str) -> str:
    """The summary line of an interrupted sweep: the jobs done, skipped and failed (with
    ``error.txt``) so far, and how many were stopped or never started."""
    import dataclasses

    from flexgame.experiments import sweep

    outcome = sweep.outcome(plan)
    failed = [job for job in outcome.failed if (job.run_dir / sweep.ERROR).exists()]
    unfinished = len(outcome.failed) - len(failed)
    line = dataclasses.replace(outcome, failed=failed).summary(plan.sweep_dir)
    return f"{line}; interrupted by {signame}: {unfinished} unfinished"


def _sweep_jobs(overrides: list[str], default_dir=None):
    """Validate, launch and sort the jobs of a sweep; returns (plan, outcome).

    SIGINT (Ctrl-C) or SIGTERM stop the sweep: its workers are stopped
    (:func:`_stop_workers`; on SLURM its jobs are cancelled), the summary line of the jobs so far is printed and the process
    exits with status 130 (SIGINT) or 143 (SIGTERM), without a traceback; a re-run of the
    sweep computes the unfinished jobs."""
    from flexgame.experiments import sweep

    plan = None
    started = time.time()
    try:
        with _interrupts():
            plan = sweep.plan(overrides, default_dir)
            ready = sum(job.complete for job in plan.jobs)
            print(f"sweep: {len(plan.jobs)} jobs ({ready} already complete) into "
                  f"{plan.sweep_dir}", flush=True)
            sweep.clear_stale(plan)
            args = [*plan.argv, "--multirun"]
            # the jobs' own progress bars (strategic rounds) would garble the sweep's bar
            with _environment(TQDM_DISABLE="1"), sweep.Progress(plan):
                try:
                    _launch(sweep.run_job, args, "sweep")
                except SystemExit as stop:  # Hydra itself failed; the jobs' files tell what ran
                    print(f"{PROG} sweep: the launcher stopped with status {stop.code}",
                          file=sys.stderr)
    except KeyboardInterrupt as interrupt:
        signum = signal.SIGTERM if isinstance(interrupt, _Interrupted) else signal.SIGINT
        # a second Ctrl-C must not cut the clean-up short
        previous = ({s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
                    if threading.current_thread() is threading.main_thread() else {})
        try:
            _stop_workers()
            if plan is not None:
                slurm_jobs = _slurm_jobs(plan, started)
                if slurm_jobs:
                    _cancel_slurm_jobs(slurm_jobs)
                print(_interrupted_summary(plan, signum.name), flush=True)
            print(f"{PROG} sweep: interrupted by {signum.name}", file=sys.stderr, flush=True)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        raise SystemExit(128 + signum) from None
    return plan, sweep.outcome(plan)


def _sweep(overrides: list[str]) -> None:
    """``flexgame sweep``: a multirun of the ``run`` app, with a summary line."""
    if any(a in ("-h", "--help") for a in overrides):
        print(SWEEP_HELP, end="")
        return
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in overrides):
        _launch(None, [*overrides, "--multirun"], "sweep")  # --cfg, --info: Hydra answers
        return
    plan, outcome = _sweep_jobs([a for a in overrides if a not in ("-m", "--multirun")])
    print(outcome.summary(plan.sweep_dir))
    if outcome.failed:
        raise SystemExit(1)


def _report_parser() -> argparse.ArgumentParser:
    from flexgame.experiments.collect import FORMATS

    parser = argparse.ArgumentParser(
        prog=f"{PROG} report",
        description="Collect every run under DIR (a run or sweep directory: every "
                    "metrics.json at any depth) into one tidy table (one row per run: swept "
                    "config values and scalar metrics) and write it with figures (PNG, SVG) "
                    "and report.md.")
    parser.add_argument("dir", metavar="DIR", help="run or sweep directory")
    parser.add_argument("--out", help="output directory (default: DIR)")
    parser.add_argument("--format", default="csv", choices=FORMATS,
                        help="format of the runs table (default: csv; parquet needs pyarrow)")
    return parser


def _print_report(report) -> None:
    for path in [report.table, *report.figures.values(), report.report]:
        print(f"wrote {path}")
    for why in report.left_out:
        print(f"left out: {why}")


def _report(args: list[str]) -> None:
    """``flexgame report DIR``: table, figures and report.md of a run or sweep."""
    from flexgame.experiments.report import make_report

    opts = _report_parser().parse_args(args)
    _print_report(make_report(opts.dir, opts.out, opts.format))


STUDY_DIR = "results/studies"
"""Parent of the studies' sweep directories."""
DEFAULT_STUDY = "default_study"
"""The main job: ``flexgame study`` without a name."""


def _study_help() -> str:
    """Usage of ``flexgame study`` with every preset and the first line of its comment."""
    from importlib import resources

    from flexgame.experiments.config import CONFIG_MODULE, group_options

    lines = [f"usage: {PROG} study [NAME] [overrides]", "",
             "Run a preset sweep (conf/experiment/NAME.yaml) and write its report into",
             f"{STUDY_DIR}/NAME/ (NAME_<hash> when overrides are added, or hydra.sweep.dir).",
             "Overrides as for 'sweep' (e.g. hydra/launcher=slurm, seed=0,1). Presets:", ""]
    for name in group_options("experiment"):
        text = (resources.files(CONFIG_MODULE) / "experiment" / f"{name}.yaml").read_text()
        about = next(line[1:].strip() for line in text.splitlines()
                     if line.startswith("#") and "@package" not in line)
        lines.append(f"  {name:<14} {about}")
    lines.append(f"\nWithout NAME: {DEFAULT_STUDY}, the main job.")
    return "\n".join(lines) + "\n"


def _study(args: list[str]) -> None:
    """``flexgame study [NAME] [overrides]``: a preset sweep followed by its report."""
    import time
    from pathlib import Path

    from flexgame.experiments.config import group_options
    from flexgame.experiments.report import make_report
    from flexgame.experiments.sweep import overrides_hash, run_overrides

    if any(a in ("-h", "--help") for a in args):
        print(_study_help(), end="")
        return
    start = time.perf_counter()
    name = args[0] if args and "=" not in args[0] and not args[0].startswith("-") else None
    extra = args[1:] if name else args
    name = name or DEFAULT_STUDY
    require_choice("study", name, group_options("experiment"))
    folder = f"{name}_{overrides_hash(extra)}" if run_overrides(extra) else name
    plan, outcome = _sweep_jobs([f"+experiment={name}", *extra], Path(STUDY_DIR) / folder)
    print(outcome.summary(plan.sweep_dir))
    if len(outcome.done) + len(outcome.skipped):
        report = make_report(plan.sweep_dir)
        _print_report(report)
        print(f"study {name}: {len(plan.jobs)} runs in {time.perf_counter() - start:.0f} s; "
              f"report: {report.report}")
    if outcome.failed:
        raise SystemExit(1)


def _seed(text: str) -> int:
    """An argparse type: a seed, an integer >= 0."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return seed


def _table_parser() -> argparse.ArgumentParser:
    from flexgame.experiments.table import DEFAULT_OUT
    from flexgame.markets.ac_assessment import ASSESSMENTS
    from flexgame.markets.bids import CASES
    from flexgame.markets.schemes import DSO_MODELS, SCHEMES

    parser = argparse.ArgumentParser(
        prog=f"{PROG} table",
        description="The D3.3 table: every coordination scheme on the D3.3 cases with truthful "
                    "bids on the default system. Prints it and writes CSV (long and wide), a "
                    "figure (PNG, SVG) and report.md.")
    parser.add_argument("--cases", nargs="+", default=list(CASES), metavar="CASE",
                        help=f"cases (default: {' '.join(CASES)})")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), metavar="SCHEME",
                        help=f"schemes (default: all: {' '.join(SCHEMES)})")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the bids (default: 0)")
    parser.add_argument("--assessment", choices=ASSESSMENTS, default="linear",
                        help="ex-post check: linear (PTDF + LinDistFlow) or ac (AC power flows "
                             "beside the linear check; needs the grid extra)")
    parser.add_argument("--system", default="default",
                        help="system preset of conf/system/ (default, high_dg, scale)")
    parser.add_argument("--dso-model", choices=DSO_MODELS, default="lindistflow",
                        help="feeder model of the DSO markets that clear first with a free "
                             "interface (fragmented, ml01-ml04); socp needs the grid extra")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _table(args: list[str]) -> None:
    from flexgame.experiments.table import format_table, run_table

    opts = _table_parser().parse_args(args)
    from flexgame.experiments.config import load_config, settings

    system = settings(load_config([f"system={opts.system}"])).system
    table, files = run_table(opts.cases, opts.schemes, opts.seed, opts.out,
                             progress=not opts.no_progress, assessment=opts.assessment,
                             system=system, dso_model=opts.dso_model)
    print(format_table(table))
    print()
    for path in files.values():
        print(f"wrote {path}")


def _summary(overrides: list[str]) -> None:
    if any(a in ("-h", "--help") for a in overrides):
        print(f"usage: {PROG} summary [overrides]\n\nPrints the test system and its base "
              "state; overrides as for 'run' (e.g. case=D system.dg_share=0.5).")
        return
    from flexgame.experiments.config import load_config, settings
    from flexgame.markets.system import build_system

    run = settings(load_config(overrides), overrides)
    print(build_system(run.system, direction=run.bid_config().direction).summary())


def _idr_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} idr",
        description="Implicit demand response of a BRP in the single imbalance market "
                    "(ALEXANDER D4.1 KER 3; Vatandoust et al., EEM 2023). 'table': the "
                    "paper's Table II layout for its cases C1-C5 on its test slot, solved by "
                    "enumeration and cross-checked by the MPEC. 'study': FOIO, VOIO and "
                    "SBVOIO on generated EV data, with tables, figures and report.md.")
    parser.add_argument("what", choices=("table", "study"))
    parser.add_argument("--out", default="results/idr_study",
                        help="output directory of the study (default: results/idr_study)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the study (default: 0)")
    parser.add_argument("--quick", action="store_true",
                        help="a small study: 2 quarter-hours, 5+5 evaluation days, N in "
                             "{5, 10, 20}, W in {30, 60} (about a minute)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _idr(args: list[str]) -> None:
    opts = _idr_parser().parse_args(args)
    if opts.what == "table":
        import pandas as pd

        from flexgame.experiments.idr_cases import table_ii

        with pd.option_context("display.width", 200, "display.max_columns", None):
            print(table_ii().round(3).to_string(index=False))
        return
    from flexgame.experiments.idr_report import write_study
    from flexgame.experiments.idr_study import StudyConfig, run_study

    from flexgame.experiments.idr_data import HistoryConfig

    quick = dict(history=HistoryConfig(days=80), validation_days=5, test_days=5,
                 quarter_hours=(22, 24), blocks=(5, 10, 20), windows=(30, 60)) if opts.quick else {}
    result = run_study(StudyConfig(seed=opts.seed, **quick), progress=not opts.no_progress)
    print(result.selected.to_string(index=False))
    print(f"wrote {write_study(result, opts.out)}")


def _envelopes(args: list[str]) -> None:
    """``flexgame envelopes``: the studies of D3.3 chapter 5 with their report."""
    from flexgame.markets.lv_feeder import IMPEDANCE_MODELS, PHASE_MODELS

    parser = argparse.ArgumentParser(
        prog=f"{PROG} envelopes",
        description="Operating envelopes of non-firm connection agreements (ALEXANDER D3.3 "
                    "ch. 5): each user's guaranteed import and export along the IEEE "
                    "European LV feeder (optimal, fair, proportional fair), the fair level "
                    "against the share of users participating, and the feeder types of a "
                    "generated 49-feeder urban grid; tables, figures and report.md.")
    parser.add_argument("--model", choices=IMPEDANCE_MODELS, default="balanced",
                        help="impedance model of the LV feeders (default: balanced)")
    parser.add_argument("--phase-model", choices=PHASE_MODELS,
                        default="single_phase_equivalent",
                        help="the IEEE feeder's model: single_phase_equivalent (LinDistFlow, "
                             "the default) or three_phase (linearised unbalanced)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed of the participant subsets and the grid (default: 0)")
    parser.add_argument("--out", default="results/envelopes",
                        help="output directory (default: results/envelopes)")
    opts = parser.parse_args(args)
    from flexgame.experiments.envelope_study import run, write

    print(f"wrote {write(run(opts.model, opts.seed, opts.phase_model), opts.out)}")


def _withholding(args: list[str]) -> None:
    """``flexgame withholding``: the strategic-withholding study of FLEXGRID D5.1 §3.6."""
    from flexgame.experiments.withholding_study import WITHHOLDING
    from flexgame.markets.bids import AGGREGATIONS, CASES

    def shares(text: str) -> list[float]:
        try:
            return [float(x) for x in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of numbers") from None

    parser = argparse.ArgumentParser(
        prog=f"{PROG} withholding",
        description="One strategic FSP in a distribution-level flexibility market (the "
                    "R-DLFM: the DSO layers of the fragmented scheme with the interface flow "
                    "fixed) plays every markup x withheld share, the others truthful; its "
                    "profit, the FMO's payment and the social cost under vcg, nodal and "
                    "pay_as_bid settlement (FLEXGRID D5.1 §3.6): profit_grid.csv, "
                    "summary.csv, a heatmap per rule and report.md.")
    parser.add_argument("--fsp", help="the strategic FSP (default: the largest accepted "
                                      "truthful volume in the DLFMs)")
    parser.add_argument("--case", choices=CASES, default="A", help="D3.3 case (default: A)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the bids (default: 0)")
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default="none",
                        help="FSPs from resources (default: none, one FSP per resource)")
    parser.add_argument("--liquidity", type=float, default=1.0,
                        help="share of the potential resources that bid (default: 1)")
    parser.add_argument("--markup-points", type=int, default=15,
                        help="to_cap markups from truthful to the price cap (default: 15)")
    parser.add_argument("--withholding", type=shares, default=list(WITHHOLDING),
                        help="withheld shares, comma separated, the first 0 (default: "
                             f"{','.join(f'{w:g}' for w in WITHHOLDING)})")
    parser.add_argument("--out", default="results/withholding",
                        help="output directory (default: results/withholding)")
    opts = parser.parse_args(args)
    from flexgame.experiments.withholding_study import WithholdingConfig, run, write
    from flexgame.games.strategies import StrategyConfig

    study = run(WithholdingConfig(
        case=opts.case, seed=opts.seed, aggregation=opts.aggregation, liquidity=opts.liquidity,
        fsp=opts.fsp, strategies=StrategyConfig(markup_points=opts.markup_points,
                                                withholding=opts.withholding)))
    print(study.summary[["rule", "best_markup", "best_withholding", "profit_truthful_eur",
                         "profit_best_eur", "gain_eur", "buyer_payment_change_eur"]]
          .to_string(index=False))
    print(f"wrote {write(study, opts.out)}")


def _continuous(args: list[str]) -> None:
    """``flexgame continuous``: the continuous market against the auction (D5.1 §3.2)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} continuous",
        description="Continuous network-aware distribution flexibility market (FLEXGRID D5.1 "
                    "§3.2: price-time priority, LinDistFlow-checked matches, IOC/FOK/AON, "
                    "pay-as-bid) on the default system's feeders, against a welfare-maximising "
                    "auction of the same orders over seeded arrival orders; Table 6 KPIs, a "
                    "histogram of the welfare ratio, samples.csv and report.md.")
    parser.add_argument("--samples", type=_seed, default=100,
                        help="arrival orders to sample, >= 1 (default: 100)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed of the scenario, the demand side and the arrivals (default: 0)")
    parser.add_argument("--out", default="results/continuous",
                        help="output directory (default: results/continuous)")
    opts = parser.parse_args(args)
    from flexgame.experiments.continuous_study import run, write

    study = run(samples=opts.samples, seed=opts.seed, progress=True)
    print(study.kpi_statistics().to_string(index=False))
    print(f"wrote {write(study, opts.out)}")


COMMANDS = {"run": _run, "sweep": _sweep, "report": _report, "study": _study,
            "table": _table, "summary": _summary, "idr": _idr, "envelopes": _envelopes,
            "withholding": _withholding, "continuous": _continuous}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``flexgame`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        stream = sys.stdout if args else sys.stderr
        print(USAGE, file=stream, end="")
        if not args:
            raise SystemExit(2)
        return
    if args[0] in ("-V", "--version"):
        from flexgame import __version__

        print(f"{PROG} {__version__}")
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(USAGE, file=sys.stderr, end="")
        print(f"{PROG}: error: unknown command {command!r}; choose one of: "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    try:
        COMMANDS[command](rest)
    except FlexgameInputError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except SolverError as error:  # no result is written: it would not be the model's
        print(f"{PROG}: solver failure: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
