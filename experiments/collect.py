"""Collecting run directories into tidy tables.

A run directory is any directory holding ``metrics.json`` (a complete run); a sweep directory
holds many, at any depth. :func:`collect` makes one row per run: the config columns of the
runs' model (:attr:`flexgame.experiments.models.Model.columns`; for the TSO-DSO game scheme,
case, settlement, reasoning, liquidity, aggregation, seed), any other config value that
differs between the runs (by its dotted key), then every scalar of ``metrics.json``. :func:`rounds` and :func:`strategies` stack the per-run tables of strategic
runs with the run's config values in front.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from flexgame.experiments.config import effective
from flexgame.experiments.models import model_of
from flexgame.experiments.store import write_csv, write_parquet
from flexgame.experiments.sweep import CONFIG, ERROR, METRICS
from flexgame.markets.errors import FlexgameInputError

OPTIONAL_COLUMNS = {"use_case": "use_case", "markup_kind": "reasoning.strategy.kind"}
"""Columns added when some run has a value for the key: the D4.1 KER 2 use case, and the
kind of markups of strategic runs (truthful runs have no strategy space)."""

FORMATS = ("csv", "parquet")


def find_runs(root) -> tuple[list[Path], list[Path]]:
    """Complete runs (directories with ``metrics.json``) and failed runs (``error.txt``
    without ``metrics.json``) under ``root``, sorted.

    Raises:
        FlexgameInputError: when ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FlexgameInputError(f"DIR={root} is not a directory; give a run or sweep directory")
    done = sorted(p.parent for p in root.rglob(METRICS))
    failed = sorted(p.parent for p in root.rglob(ERROR) if not (p.parent / METRICS).exists())
    return done, failed


def _load_config(run_dir: Path) -> dict:
    """A run's ``config.yaml`` without the options that had no effect in it."""
    return effective(OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG)))


def _flat(config: dict) -> dict:
    """A config as ``{dotted key: scalar value}`` (lists are left out)."""
    flat = pd.json_normalize(config, sep=".").iloc[0].to_dict()
    return {k: v for k, v in flat.items() if not isinstance(v, (list, dict))}


def _scalars(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items()
            if v is None or isinstance(v, (bool, int, float, str))}


def collect(root) -> pd.DataFrame:
    """One row per complete run under ``root``: config columns (the model's, then
    :data:`OPTIONAL_COLUMNS`, then other config values that vary between runs, by dotted key),
    ``run_dir`` (relative to ``root``), then the scalar metrics. Rows are sorted by the config
    columns.

    Raises:
        FlexgameInputError: when ``root`` holds no complete run.
    """
    root = Path(root)
    runs, _ = find_runs(root)
    if not runs:
        raise FlexgameInputError(f"DIR={root} holds no run (no {METRICS} at any depth)")
    loaded = [_load_config(run) for run in runs]
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
    metrics = pd.DataFrame([_scalars(json.loads((run / METRICS).read_text())) for run in runs])
    table = pd.concat([table, metrics.drop(columns=table.columns, errors="ignore")], axis=1)
    return table.sort_values([*known, *varying], kind="stable", ignore_index=True)


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
