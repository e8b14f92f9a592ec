"""Issue 12, defect 1: a solver that fails, or refuses a change of its model, never yields a
normal-looking number. Every LP / MILP / QP status and every model change is checked; a
failure raises :class:`SolverError` naming what was solved, a run stops with one line, and a
sweep's failed job is listed, with that line, by the report."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from flexgame.experiments import sweep
from flexgame.experiments.cli import main
from flexgame.experiments.config import load_config
from flexgame.experiments.report import make_report
from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.errors import SolverError
from flexgame.markets.lp import CompiledLP, LPSolution
from flexgame.markets.schemes import ClearingConfig, Scheme


def _small_lp() -> CompiledLP:
    """min x0 + x1 s.t. x0 + x1 >= 1, 0 <= x <= 1."""
    return CompiledLP.from_arrays([1.0, 1.0], [[1.0, 1.0]], [1.0], [np.inf], [0.0, 0.0],
                                  [1.0, 1.0])


@pytest.mark.parametrize("change", [
    lambda lp: lp.set_costs(np.array([0]), [np.nan]),
    lambda lp: lp.set_costs(np.array([0]), [np.inf]),
    lambda lp: lp.set_col_bounds(np.array([1]), 0.0, [np.nan]),
    lambda lp: lp.set_row_bounds(np.array([0]), [np.nan], np.inf),
    lambda lp: lp.set_col_bounds(np.array([7]), 0.0, 1.0),  # HiGHS refuses: no column 7
])
def test_a_refused_or_non_numeric_change_raises_and_keeps_the_model(change):
    """HiGHS takes a NaN cost silently and refuses a NaN bound or a missing column while
    keeping its old data; either way the change must stop with an error, not solve the
    previous question."""
    lp = _small_lp()
    before = lp.solve().objective
    with pytest.raises(SolverError):
        change(lp)
    assert np.isfinite(lp.cost).all() and not np.isnan(lp.col_upper).any()
    assert lp.solve().objective == before


def test_an_infeasible_lp_is_not_optimal_and_cannot_be_read():
    lp = _small_lp()
    lp.set_col_bounds(np.array([0, 1]), 0.0, 0.2)  # x0 + x1 >= 1 cannot hold
    sol = lp.solve()
    assert not sol.optimal and sol.status == "Infeasible"
    with pytest.raises(SolverError, match="Infeasible"):
        sol.require_optimal("a test LP")


def _failing(monkeypatch, lps: list[CompiledLP]) -> None:
    """Make ``lps`` return a non-optimal solution (as after a time limit) from now on."""
    real = CompiledLP.solve
    ids = {id(lp) for lp in lps}

    def solve(self):
        sol = real(self)
        if id(self) not in ids:
            return sol
        return LPSolution(False, "Time limit reached", 0.0, np.zeros_like(sol.x),
                          np.zeros_like(sol.row_dual), np.zeros_like(sol.reduced_cost))

    monkeypatch.setattr(CompiledLP, "solve", solve)


@pytest.mark.parametrize("scheme, where, ties", [
    ("common", "common", "bid_order"),               # a market layer
    ("fragmented", "dso:case141", "bid_order"),      # one layer of several
    ("fragmented", "tso", "pro_rata"),               # the pro-rata split's QP
    ("ml03", "prequalification", "bid_order"),       # the envelope LP
    ("bid_aggregation", "rsf:case69", "bid_order"),  # a residual supply function
    ("bid_aggregation", "relaxation", "bid_order"),  # its MILP's relaxation, solved first
    ("bid_aggregation", "milp", "bid_order"),        # its MILP (relaxation fractional)
])
def test_a_solver_failure_in_one_part_of_a_scheme_raises(monkeypatch, system, scheme, where,
                                                         ties):
    bids = generate_bids(system, BidConfig(case="B"), np.random.default_rng(0))
    built = Scheme(system, bids, ClearingConfig(scheme=scheme, ties=ties))
    built.clear()  # clears when nothing fails
    # other prices (no cached residual supply function), rounded: ties to split pro rata
    price = np.round(bids.price_eur_per_mw.to_numpy(float) / 10) * 10
    stages = built.stages
    if where == "prequalification":
        (lps,) = [[part[-1] for part in s.prequalification.parts] for s in stages
                  if getattr(s, "prequalification", None) is not None]
    elif where == "relaxation":
        lps = [stages[0].relaxation]
    elif where == "milp":  # a relaxation that is never integral: the MILP decides
        monkeypatch.setattr("flexgame.markets.bid_aggregation.INTEGRALITY_TOLERANCE", -1.0)
        lps = [stages[0].milp]
    elif ties == "pro_rata":
        lps = [b.layer.pro_rata.face for b in built.layers() if b.name == where]
    else:
        lps = [b.layer.lp for b in built.layers() if b.name == where]
        if where.startswith("rsf:"):  # its steps are solved in sensitivity form
            lps += [r.lp for b, r in zip(stages[0].layers, stages[0].reduced) if b.name == where]
    assert lps, where
    _failing(monkeypatch, lps)
    with pytest.raises(SolverError, match="Time limit reached") as error:
        built.clear(price=price)
    if where in ("milp", "relaxation"):
        assert str(error.value).startswith("bid aggregation's MILP" +
                                           (", relaxed" if where == "relaxation" else ":"))
    else:
        assert where.split(":")[-1] in str(error.value) or where == "prequalification"


def test_fault_injected_in_one_job_is_flagged_by_the_sweep_and_its_report(monkeypatch, tmp_path):
    """A sweep job whose DSO layer fails: no metrics.json (no number), its error in
    error.txt, the other job complete, and the report counts and names the failure."""
    real = CompiledLP.solve
    calls = {"n": 0}

    def solve(self):  # the second LP solve of the failing job: its first DSO layer
        sol = real(self)
        calls["n"] += 1
        if calls["n"] == 2:
            return LPSolution(False, "Time limit reached", 0.0, sol.x, sol.row_dual,
                              sol.reduced_cost)
        return sol

    ok, bad = tmp_path / "scheme=common", tmp_path / "scheme=fragmented"
    assert sweep.run_job(load_config(["scheme=common"]), ok) == "done"
    monkeypatch.setattr(CompiledLP, "solve", solve)
    assert sweep.run_job(load_config(["scheme=fragmented"]), bad) == "failed"
    assert not (bad / sweep.METRICS).exists()
    error = (bad / sweep.ERROR).read_text()
    assert "SolverError" in error and "Time limit reached" in error
    report = make_report(tmp_path)
    assert report.runs == 1 and report.failed == 1
    text = report.report.read_text()
    assert "scheme=fragmented" in text and "Time limit reached" in text


def test_a_run_with_a_failing_solver_stops_with_one_line(monkeypatch, capsys, tmp_path):
    real = CompiledLP.solve

    def solve(self):
        sol = real(self)
        return LPSolution(False, "Time limit reached", 0.0, sol.x, sol.row_dual,
                          sol.reduced_cost)

    monkeypatch.setattr(CompiledLP, "solve", solve)
    monkeypatch.setattr(sys, "argv", ["flexgame", "run", f"hydra.run.dir={tmp_path}"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("flexgame: solver failure: layer ")
    assert "Time limit reached" in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "metrics.json").exists()
