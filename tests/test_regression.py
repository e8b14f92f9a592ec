"""The refactor of issue 9 changed no result: the D3.3 table (cases A-D, every scheme, seed 0,
truthful bids) and one strategic run give exactly the metrics recorded on main before it
(``tests/data/regression_baseline.json``). Issue 12 changed two things on purpose and
re-recorded the table: the penalties are ordered interface > line > unmet need
(:class:`~flexgame.markets.constraints.Penalties`; they were equal for line, interface and
need), so the DSO layers of ml02 and ml05 keep their held interface flow in cases B and C
and relieve their feeders only within it: 19 congestions (up to 94.6 %) in B and 9 (44.2 %)
in C, where they had pushed 1.32 and 0.46 MW of imbalance back onto the TSO to keep two
congestions (3.6 % and 2.9 %); and bid aggregation's DSO costs moved in the last bit (its
residual supply functions are solved along another pivoting path). Issue 11 moved them in the
last bit once more (cases A, C and D): the residual supply functions are now solved in
sensitivity form (:class:`~flexgame.markets.reduced_layer.ReducedFeederLayer`)."""

from __future__ import annotations

import json
import math
from pathlib import Path


from flexgame.experiments.run import run_experiment
from flexgame.experiments.config import load_config
from flexgame.experiments.table import compute

BASELINE = json.loads((Path(__file__).parent / "data" / "regression_baseline.json").read_text())
EFFORT = {"runtime_s", "build_s", "clearings"}
REDEFINED = {"epsilon", "outcome_basis"}
"""Redefined by issue 10: a cycle's certificate is now the exact regret of its time average as
a correlated distribution (it was the final profile's), and its concept is named in
``equilibrium_concept`` (``outcome_basis`` is gone)."""


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _differences(expected: dict, got: dict) -> list[str]:
    out = []
    for key, value in expected.items():
        if key in EFFORT or key in REDEFINED:
            continue
        if key not in got:
            out.append(f"{key}: missing")
        elif not _same(value, got[key]):
            out.append(f"{key}: {value!r} -> {got[key]!r}")
    return out


def _plain(value):
    """Metric values as JSON stores them (nan as None)."""
    return json.loads(json.dumps(value, default=float).replace("NaN", "null"))


def test_d33_table_is_unchanged():
    table = compute(seed=0, progress=False)
    rows = {(r["case"], r["scheme"]): r for r in _plain(table.to_dict(orient="records"))}
    problems = []
    for expected in BASELINE["d33_table"]:
        got = rows[expected["case"], expected["scheme"]]
        problems += [f"{expected['case']} {expected['scheme']} {d}"
                     for d in _differences(expected, got)]
    assert problems == []


def test_strategic_run_is_unchanged(tmp_path):
    recorded = BASELINE["strategic"]
    metrics = run_experiment(load_config(recorded["overrides"]), tmp_path)
    assert _differences(recorded["metrics"], _plain(metrics)) == []
    assert metrics["status"] == "cycle"  # the run exercises the cycle metrics
    assert metrics["equilibrium_concept"] == "best-response cycle (time average)"
