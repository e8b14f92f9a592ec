"""MATPOWER case loading: embedded cases, unit conversions, paths and bad input."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from flexgame.markets.case_loading import EMBEDDED_CASES, load_case, resolve_case_path
from flexgame.markets.errors import FlexgameInputError

CASES_DIR = Path(__file__).resolve().parents[1] / "markets" / "cases"


def _raw_table_rows(text: str, table: str) -> list[list[float]]:
    """Rows of ``mpc.<table> = [ ... ];`` as read from the raw file (no conversions)."""
    block = re.search(rf"mpc\.{table}\s*=\s*\[(.*?)\];", text, re.S).group(1)
    rows = []
    for line in block.splitlines():
        line = line.split("%")[0].strip().rstrip(";")
        if line:
            rows.append([float(v) for v in line.split()])
    return rows


def _raw_base_mva(text: str) -> float:
    return float(re.search(r"mpc\.baseMVA\s*=\s*([0-9.eE+-]+)", text).group(1))


@pytest.mark.parametrize(
    "name, p_mw, q_mvar",
    [("case69", 3.80, 2.69), ("case141", 11.94, 7.40)],
)
def test_distribution_case_totals_in_mw(name, p_mw, q_mvar):
    """kW / kVA loads are converted (case141 also at pf 0.85)."""
    case = load_case(name)
    assert case.total_load_mw == pytest.approx(p_mw, abs=0.01)
    assert case.total_load_mvar == pytest.approx(q_mvar, abs=0.01)


def test_case14_total_load():
    case = load_case("case14")
    assert case.total_load_mw == pytest.approx(259.0, abs=1e-9)
    assert case.reference_bus == 1
    assert len(case.bus) == 14 and len(case.branch) == 20


@pytest.mark.parametrize("name", ["case69", "case141"])
def test_impedances_converted_from_ohms_to_per_unit(name):
    """Every branch r, x equals the file's Ohm value / (V_base^2 / S_base)."""
    text = (CASES_DIR / f"{name}.m").read_text()
    raw_branch = np.array(_raw_table_rows(text, "branch"))
    raw_bus = np.array(_raw_table_rows(text, "bus"))
    base_kv = raw_bus[0, 9]
    z_base = base_kv**2 / _raw_base_mva(text)  # Ohm, kV^2 / MVA
    case = load_case(name)
    in_service = raw_branch[:, 10] > 0
    np.testing.assert_allclose(case.branch.BR_R, raw_branch[in_service, 2] / z_base, rtol=1e-12)
    np.testing.assert_allclose(case.branch.BR_X, raw_branch[in_service, 3] / z_base, rtol=1e-12)


def test_case69_first_branch_per_unit_value():
    """The first case69 branch is 0.0005 + j0.0012 Ohm on 12.66 kV / 10 MVA."""
    text = (CASES_DIR / "case69.m").read_text()
    first = _raw_table_rows(text, "branch")[0]
    assert first[2] == 0.0005 and first[3] == 0.0012  # the raw file's Ohm values
    case = load_case("case69")
    z_base = 12.66**2 / 10
    assert case.branch.BR_R.iloc[0] == pytest.approx(0.0005 / z_base, rel=1e-12)
    assert case.branch.BR_X.iloc[0] == pytest.approx(0.0012 / z_base, rel=1e-12)


def test_case69_loads_converted_from_kw():
    text = (CASES_DIR / "case69.m").read_text()
    raw_bus = np.array(_raw_table_rows(text, "bus"))
    case = load_case("case69")
    np.testing.assert_allclose(case.bus.PD, raw_bus[:, 2] / 1e3)
    np.testing.assert_allclose(case.bus.QD, raw_bus[:, 3] / 1e3)


def test_case141_loads_converted_from_kva_at_pf_085():
    text = (CASES_DIR / "case141.m").read_text()
    raw_bus = np.array(_raw_table_rows(text, "bus"))
    case = load_case("case141")
    s_mva = raw_bus[:, 2] / 1e3
    np.testing.assert_allclose(case.bus.PD, 0.85 * s_mva)
    np.testing.assert_allclose(case.bus.QD, math.sin(math.acos(0.85)) * s_mva)


def test_transmission_case_not_converted():
    """case14 has no conversion code: values stay as in the file."""
    text = (CASES_DIR / "case14.m").read_text()
    raw_branch = np.array(_raw_table_rows(text, "branch"))
    case = load_case("case14")
    np.testing.assert_allclose(case.branch.BR_X, raw_branch[:, 3])


def test_load_by_file_path(tmp_path):
    target = tmp_path / "my_feeder.m"
    shutil.copy(CASES_DIR / "case69.m", target)
    for given in (target, str(target)):
        case = load_case(given)
        assert case.name == "my_feeder"
        assert Path(case.source) == target
        assert case.total_load_mw == pytest.approx(load_case("case69").total_load_mw)
        np.testing.assert_allclose(case.branch.BR_R, load_case("case69").branch.BR_R)


def test_embedded_names_resolve_to_shipped_files():
    for name in EMBEDDED_CASES:
        path = resolve_case_path(name)
        assert path.is_file() and path.name == f"{name}.m"


def test_unknown_case_name_lists_embedded_cases():
    with pytest.raises(FlexgameInputError) as err:
        load_case("case_does_not_exist")
    message = str(err.value)
    assert "case_does_not_exist" in message
    for name in EMBEDDED_CASES:
        assert name in message


def test_missing_case_file_named(tmp_path):
    missing = tmp_path / "nowhere.m"
    with pytest.raises(FlexgameInputError, match="nowhere.m"):
        load_case(missing)


@pytest.mark.parametrize(
    "content",
    [
        "this is not a MATPOWER case at all [[[ ;;; \n",
        "function mpc = half\nmpc.baseMVA = 100;\nmpc.bus = [ 1 3 0 ];\n",
    ],
    ids=["garbage", "truncated"],
)
def test_malformed_case_file_named(tmp_path, content):
    bad = tmp_path / "broken_case.m"
    bad.write_text(content)
    with pytest.raises(FlexgameInputError) as err:
        load_case(bad)
    assert str(bad) in str(err.value)


# --- in-memory cases ----------------------------------------------------------------------

def _case14_tables() -> dict:
    """case14 as a dict of the file's raw MATPOWER tables (case14 needs no conversions)."""
    text = (CASES_DIR / "case14.m").read_text()
    return {"name": "grid14", "baseMVA": _raw_base_mva(text),
            **{t: _raw_table_rows(text, t) for t in ("bus", "gen", "branch")}}


def _assert_same_case(a, b):
    assert a.base_mva == b.base_mva and a.reference_bus == b.reference_bus
    for table in ("bus", "branch", "gen"):
        left, right = getattr(a, table), getattr(b, table)
        assert list(left.columns) == list(right.columns)
        np.testing.assert_array_equal(left.to_numpy(), right.to_numpy())


def test_dict_of_tables_loads_like_the_file():
    """A dict with baseMVA and the bus, gen and branch rows in MATPOWER units is the case."""
    case = load_case(_case14_tables())
    assert case.name == "grid14" and "in memory" in case.source
    _assert_same_case(case, load_case("case14"))


def test_caseframes_loads_like_the_file():
    from matpowercaseframes import CaseFrames

    _assert_same_case(load_case(CaseFrames(str(CASES_DIR / "case14.m"))), load_case("case14"))
    loaded = load_case("case69")
    assert load_case(loaded) is loaded  # a loaded case is taken as it is


@pytest.mark.parametrize("change, message", [
    (dict(gen=None), r"lacks \['gen'\]"),
    (dict(baseMVA="a lot"), "baseMVA='a lot' must be a number"),
    (dict(bus=[["one", 3, 0]]), "table 'bus' must be rows of numbers"),
    (dict(branch=[]), "table 'branch' must be a non-empty table"),
    (dict(bus=[[1, 3, 0, 0]]), r"lacks columns \['VMAX', 'VMIN', 'BASE_KV'\]"),
    (dict(baseMVA=0), "baseMVA=0.0 must be > 0"),
])
def test_in_memory_case_errors_name_what_is_wrong(change, message):
    tables = _case14_tables()
    for key, value in change.items():
        if value is None:
            del tables[key]
        else:
            tables[key] = value
    with pytest.raises(FlexgameInputError, match=message) as err:
        load_case(tables)
    assert "in-memory case 'grid14'" in str(err.value)


def test_case_of_another_kind_is_refused():
    with pytest.raises(FlexgameInputError, match="got int"):
        load_case(14)
