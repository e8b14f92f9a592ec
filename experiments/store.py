"""Writing run outputs: atomic file writes and provenance.

Every file is written to a temporary file in its own directory and then moved over the target
with :func:`os.replace`, so a reader (or a killed run) never sees a half-written file. The
temporary file is created with the permissions a plain ``open()`` would give (``0o666`` less
the umask), so outputs stay readable by the group and others as usual.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

PACKAGES = ("flexgame", "numpy", "pandas", "pyomo", "highspy", "mesa", "hydra-core")
"""Distributions whose versions go into the provenance record."""


def _new_temporary(path: Path) -> str:
    """Create an empty, uniquely named temporary file beside ``path`` with mode ``0o666``
    less the umask (as ``open()`` does; :func:`tempfile.mkstemp` would give ``0o600``)."""
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def _atomic(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, then move the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def jsonable(obj):
    """``obj`` with numpy scalars and arrays as Python values and nan/inf as None (JSON null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj) -> Path:
    """Write ``obj`` as strict JSON (nan -> null) atomically."""
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"
    return write_text(path, text)


def write_csv(path, table: pd.DataFrame, index: bool = False) -> Path:
    """Write a table as CSV atomically (missing values as empty fields)."""
    return _atomic(path, lambda tmp: table.to_csv(tmp, index=index))


def write_parquet(path, table: pd.DataFrame) -> Path:
    """Write a table as Parquet atomically (needs pyarrow)."""
    return _atomic(path, lambda tmp: table.to_parquet(tmp, index=False))


def write_figure(path, figure) -> Path:
    """Save a matplotlib figure atomically; the format follows the file suffix."""
    fmt = Path(path).suffix.lstrip(".")
    return _atomic(path, lambda tmp: figure.savefig(tmp, format=fmt, bbox_inches="tight"))


def git_revision() -> str | None:
    """The git commit of the source tree the code runs from (with ``-dirty`` when it has
    uncommitted changes), or None when it does not run from a git checkout (an installed
    package) or git is unavailable. ``--no-optional-locks``: ``git status`` would otherwise
    take the checkout's index lock, and parallel runs would make each other's (and the
    user's) git commands fail."""
    source = Path(__file__).resolve().parent.parent
    try:
        def git(*args):
            return subprocess.run(["git", "--no-optional-locks", "-C", str(source), *args],
                                  capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        if Path(git("rev-parse", "--show-toplevel")).resolve() != source:
            return None  # e.g. site-packages inside a virtual environment in a checkout
        revision = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return revision + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_run(out: Path, settings, bids: pd.DataFrame, result, report, settlement,
              metrics: dict) -> None:
    """Write a run's config, provenance, tidy tables and metrics into ``out``; metrics last:
    its presence marks a complete run.

    Args:
        settings: the run's settings (a schema dataclass instance).
        bids: the (declared) bid table; result, report, settlement: the clearing, its
            ex-post assessment and its payments.
    """
    from omegaconf import OmegaConf

    from flexgame.markets.grid_assessment import TOLERANCE

    write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(settings)))
    write_json(out / "provenance.json", provenance(seed=settings.seed))
    write_csv(out / "bids.csv", bids.rename_axis("bid").reset_index())
    write_csv(out / "clearing.csv", settlement.payments)
    write_csv(out / "fsp.csv", settlement.fsp)
    write_csv(out / "grid.csv", report.elements.assign(
        violated=report.elements.excess_pct > 100 * TOLERANCE))
    write_csv(out / "liquidity.csv", result.liquidity())
    write_json(out / "metrics.json", metrics)


def provenance(seed: int | None = None, **extra) -> dict:
    """Where a result comes from: code revision, package and Python versions, seed, time."""
    return {
        "git_revision": git_revision(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
        "seed": seed,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
