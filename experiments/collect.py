"""Collecting run directories into tidy tables.

A run directory is any directory holding a run's ``metrics.json``, ``error.txt`` or
``config.yaml`` (outside hidden directories such as Hydra's ``.hydra``); a sweep directory
holds many, at any depth. A run is reported when its ``metrics.json`` is a JSON object and its
``config.yaml`` a valid config (:func:`find_runs`); the others are listed with why: failed,
unreadable or incomplete. :func:`collect` makes one row per reported run: the config columns of
the runs' model (:attr:`flexgame.experiments.models.Model.columns`; for the TSO-DSO game scheme,
case, settlement, reasoning, liquidity, aggregation, seed), any other config value that
differs between the runs (by its dotted key), then every scalar of ``metrics.json``.
:func:`rounds` and :func:`strategies` stack the per-run tables of strategic runs with the
run's config values in front.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flexgame.experiments.config import effective
from flexgame.experiments.models import model_of
from flexgame.experiments.store import write_csv, write_parquet
from flexgame.experiments.sweep import (CONFIG, ERROR, METRICS, UnreadableRun, read_config,
                                        read_metrics)
from flexgame.markets.errors import FlexgameInputError

OPTIONAL_COLUMNS = {"use_case": "use_case", "markup_kind": "reasoning.strategy.kind"}
"""Columns added when some run has a value for the key: the D4.1 KER 2 use case, and the
kind of markups of strategic runs (truthful runs have no strategy space)."""

FORMATS = ("csv", "parquet")


Run = tuple[dict, dict]
"""A readable run: its config without the options that had no effect in it, its metrics."""


def find_runs(root) -> tuple[dict[Path, Run], dict[Path, str]]:
    """The runs under ``root``, sorted by directory: the readable ones (:data:`Run`) and the
    others with why, in one line: failed (the last line of ``error.txt``), unreadable (which
    file and why) or incomplete (no ``metrics.json``: still running, or killed).

    Raises:
        FlexgameInputError: when ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FlexgameInputError(f"DIR={root} is not a directory; give a run or sweep directory")
    readable, problems = {}, {}
    for run_dir in _run_dirs(root):
        finished = (run_dir / METRICS).exists()
        if not finished and (run_dir / ERROR).is_file():
            problems[run_dir] = f"failed: {_last_line(run_dir / ERROR)}"
        elif not finished:
            problems[run_dir] = f"incomplete: no {METRICS} (still running, or killed)"
        else:
            try:
                readable[run_dir] = _load(run_dir)
            except UnreadableRun as why:
                problems[run_dir] = f"unreadable: {why}"
    return readable, problems


def _run_dirs(root: Path) -> list[Path]:
    """Directories under ``root`` (itself included) holding a run's file, outside hidden
    directories (Hydra's ``.hydra`` holds a ``config.yaml`` of its own), sorted."""
    return sorted({path.parent for name in (METRICS, ERROR, CONFIG) for path in root.rglob(name)
                   if not any(part.startswith(".") for part in path.relative_to(root).parts)})


def _load(run_dir: Path) -> Run:
    """A run's config (without the options that had no effect) and metrics.

    Raises:
        UnreadableRun: a file is unreadable, or the config is not a valid config.
    """
    metrics = read_metrics(run_dir)
    try:
        return effective(read_config(run_dir)), metrics
    except FlexgameInputError as error:
        raise UnreadableRun(f"{CONFIG} is not a valid config: {error}") from None


def _last_line(path: Path) -> str:
    """The last non-blank line of a text file (of a traceback: the exception)."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"(empty {path.name})"


def _flat(config: dict) -> dict:
    """A config as ``{dotted key: scalar value}`` (lists are left out)."""
    flat = pd.json_normalize(config, sep=".").iloc[0].to_dict()
    return {k: v for k, v in flat.items() if not isinstance(v, (list, dict))}


def _scalars(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items()
            if v is None or isinstance(v, (bool, int, float, str))}


def collect(root) -> tuple[pd.DataFrame, dict[Path, str]]:
    """One row per readable run under ``root`` (:func:`find_runs`): config columns (the
    model's, then :data:`OPTIONAL_COLUMNS`, then other config values that vary between runs,
    by dotted key), ``run_dir`` (relative to ``root``), then the scalar metrics; rows sorted
    by the config columns. Also the runs left out, with why.

    Raises:
        FlexgameInputError: when ``root`` holds no readable run.
    """
    root = Path(root)
    found, problems = find_runs(root)
    if not found:
        raise FlexgameInputError(f"DIR={root} holds no run (no readable {METRICS} at any "
                                 f"depth; {len(problems)} failed, unreadable or incomplete)")
    runs = list(found)
    loaded = [config for config, _ in found.values()]
    configs = pd.DataFrame([_flat(config) for config in loaded])
    columns = {}
    for config in loaded:
        columns.update(model_of(config).columns)
    known = {**columns, **{k: v for k, v in OPTIONAL_COLUMNS.items()
                           if v in configs and configs[v].notna().any()}}
    # values that differ between runs of the same group option (not only present or absent)
    varying = [k for k in configs.columns
               if k not in known.values() and configs[k].dropna().astype(str).nunique() > 1]
    table = pd.DataFrame({name: configs.get(key) for name, key in known.items()})
    table[varying] = configs[varying]
    table["run_dir"] = [str(run.relative_to(root)) for run in runs]
    metrics = pd.DataFrame([_scalars(values) for _, values in found.values()])
    table = pd.concat([table, metrics.drop(columns=table.columns, errors="ignore")], axis=1)
    return table.sort_values([*known, *varying], kind="stable", ignore_index=True), problems


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The config columns of a collected table (those before ``run_dir``)."""
    return list(runs.columns[:list(runs.columns).index("run_dir")])


def _stack(runs: pd.DataFrame, root: Path, name: str) -> pd.DataFrame:
    """The ``name`` tables of the runs that have one, with their config columns in front."""
    parts = [pd.read_csv(root / run / name).assign(run_dir=run)
             for run in runs.run_dir if (root / run / name).is_file()]
    if not parts:
        return pd.DataFrame()
    return runs[[*config_columns(runs), "run_dir"]].merge(pd.concat(parts, ignore_index=True),
                                                          on="run_dir")


def rounds(runs: pd.DataFrame, root) -> pd.DataFrame:
    """Stacked ``rounds.csv`` of the strategic runs (one row per run, round and FSP)."""
    return _stack(runs, Path(root), "rounds.csv")


def strategies(runs: pd.DataFrame, root) -> pd.DataFrame:
    """Stacked ``strategies.csv`` of the strategic runs (final markup per run and FSP)."""
    return _stack(runs, Path(root), "strategies.csv")


def write_table(table: pd.DataFrame, path, fmt: str = "csv") -> Path:
    """Write the runs table as CSV or Parquet (``fmt``); the suffix follows the format.

    Raises:
        FlexgameInputError: for an unknown format, or parquet without pyarrow installed.
    """
    if fmt not in FORMATS:
        raise FlexgameInputError(f"--format={fmt} is not allowed; allowed: {', '.join(FORMATS)}")
    path = Path(path).with_suffix(f".{fmt}")
    if fmt == "csv":
        return write_csv(path, table)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise FlexgameInputError("--format=parquet needs pyarrow, which is not installed; "
                                 "pip install pyarrow, or use --format=csv") from None
    return write_parquet(path, table)
