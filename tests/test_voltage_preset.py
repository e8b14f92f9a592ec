"""The high-DG preset (issue 14, item 5): voltage limits bind in the DSO markets. The base
state has buses over V_max; the schemes whose LPs hold every feeder's voltage limits leave
none (their guarantee), and a scheme whose TSO layer is blind to the feeders leaves some."""

from __future__ import annotations

import pytest

from flexgame.experiments.config import load_config, settings
from flexgame.experiments.evaluation import clear
from flexgame.experiments.scenario import Scenario
from flexgame.markets.grid_assessment import assess_base_state


@pytest.fixture(scope="module")
def scenario():
    system = settings(load_config(["system=high_dg", "case=B"])).system
    return Scenario.from_case("B", 0, system=system)


def test_the_base_state_violates_voltage_limits(scenario):
    base = assess_base_state(scenario.system)
    assert base.voltage_violations > 0 and base.max_voltage_violation_pct > 1.0


@pytest.mark.parametrize("scheme", ["common", "ml03", "ml04", "bid_aggregation"])
def test_voltage_aware_schemes_clear_the_violations(scenario, scheme):
    cleared = clear(scenario, scheme)
    slack = sum(l.outcome.voltage_slack for l in cleared.result.layers)
    assert slack == pytest.approx(0.0, abs=1e-9)
    assert cleared.kpis["voltage_violations"] == 0


def test_a_scheme_blind_to_the_feeders_leaves_overvoltages(scenario):
    assert clear(scenario, "ml01").kpis["voltage_violations"] > 0


def test_table_command_takes_the_preset(monkeypatch, capsys, tmp_path):
    import sys

    from flexgame.experiments.cli import main

    monkeypatch.setattr(sys, "argv", ["flexgame", "table", "--system", "high_dg", "--cases",
                                      "B", "--schemes", "common", "ml01", "--no-progress",
                                      "--out", str(tmp_path)])
    main()
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.strip().startswith(("common", "ml01"))}
    assert rows["common"][4] == "0" and int(rows["ml01"][4]) > 0  # V viol. [-]
