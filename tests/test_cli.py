"""The experiments layer: `flexgame run`, `flexgame table`, config groups and input errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from flexgame.experiments.cli import main
from flexgame.experiments.config import group_options, load_config, settings
from flexgame.experiments.run import run_experiment
from flexgame.experiments.scenario import Scenario
from flexgame.experiments.store import write_json
from flexgame.games.reasoning import REASONINGS
from flexgame.markets.bids import CASES, BidConfig
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.metrics import HEADLINE, METRICS, metric
from flexgame.markets.schemes import SCHEMES, ClearingConfig
from flexgame.markets.settlement import SETTLEMENTS
from flexgame.markets.system import SystemConfig

HEADLINE_KEYS = set(HEADLINE)
"""The keys every metrics.json starts with."""


def _strict_json(path):
    def refuse(token):
        raise ValueError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _flexgame(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["flexgame", *args])
    main()


@pytest.fixture(scope="module")
def ml03_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        _flexgame(mp, "run", "scheme=ml03", "case=B", "seed=1", f"hydra.run.dir={out}")
    return out


def _unregistered(metrics: dict) -> list[str]:
    out = []
    for key in metrics:
        try:
            metric(key)
        except KeyError:
            out.append(key)
    return out


def test_every_metric_is_registered_once(ml03_run):
    """Each key of metrics.json has one entry in the registry (unit, label, definition)."""
    assert _unregistered(_strict_json(ml03_run / "metrics.json")) == []
    assert all(m.definition and m.source for m in METRICS.values())


def test_run_writes_metrics_with_spec_keys(ml03_run):
    metrics = _strict_json(ml03_run / "metrics.json")
    assert HEADLINE_KEYS <= set(metrics)
    assert list(metrics)[:len(HEADLINE_KEYS)] == [k for k in metrics if k in HEADLINE_KEYS]
    assert (metrics["scheme"], metrics["case"], metrics["settlement"]) == ("ml03", "B",
                                                                          "pay_as_bid")
    assert metrics["seed"] == 1 and metrics["liquidity"] == 1.0
    # ml03 prequalifies forwarded bids: its unqualified shares are numbers in [0, 100]
    assert 0 <= metrics["unqualified_up_pct"] <= 100
    assert 0 <= metrics["unqualified_down_pct"] <= 100


def test_run_writes_consistent_tidy_tables(ml03_run):
    metrics = _strict_json(ml03_run / "metrics.json")
    bids = pd.read_csv(ml03_run / "bids.csv")
    clearing = pd.read_csv(ml03_run / "clearing.csv")
    fsp = pd.read_csv(ml03_run / "fsp.csv")
    grid = pd.read_csv(ml03_run / "grid.csv")
    liquidity = pd.read_csv(ml03_run / "liquidity.csv")
    assert len(bids) == metrics["n_bids"] and list(bids.bid) == list(range(len(bids)))
    # the accepted MW at their declared prices make up the procurement cost (pay-as-bid)
    cost = (clearing.accepted_mw * clearing.price_eur_per_mw).sum()
    assert cost == pytest.approx(metrics["total_cost"], rel=1e-9)
    assert clearing.payment_eur.sum() == pytest.approx(metrics["total_payment"], rel=1e-9)
    assert fsp.profit_eur.sum() == pytest.approx(metrics["fsp_profit_total"], abs=1e-6)
    assert set(clearing.bid) <= set(bids.bid)
    # every violation counted in the metrics is a row of the grid table
    violated = grid[grid.violated]
    assert (violated.kind == "line").sum() == metrics["congestions"]
    assert (violated.kind == "voltage").sum() == metrics["voltage_violations"]
    # ml03 clears two DSO layers and the TSO layer
    assert list(liquidity.layer) == ["dso:case69", "dso:case141", "tso"]
    config = yaml.safe_load((ml03_run / "config.yaml").read_text())
    assert config["scheme"]["name"] == "ml03" and config["seed"] == 1
    provenance = _strict_json(ml03_run / "provenance.json")
    assert provenance["seed"] == 1 and provenance["packages"]["numpy"] == np.__version__


@pytest.mark.parametrize("override, expected", [
    ("scheme=ml09", ["scheme", "ml03", "bid_aggregation"]),
    ("liquidity=1.5", ["liquidity", "(0, 1]"]),
    ("seed=-1", ["seed", ">= 0"]),
    ("scheme.interface=sideways", ["scheme.interface", "free", "fixed"]),
    ("settlement=auction", ["settlement", "pay_as_bid", "vcg"]),
])
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, tmp_path, override, expected):
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "run", override, f"hydra.run.dir={tmp_path}")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in expected:
        assert word in err
    assert not (tmp_path / "metrics.json").exists()


def test_cfg_job_prints_config_without_running(monkeypatch, capsys, tmp_path):
    _flexgame(monkeypatch, "run", "scheme=ml04", f"hydra.run.dir={tmp_path}", "--cfg", "job")
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["scheme"]["name"] == "ml04"
    assert not (tmp_path / "metrics.json").exists()


def test_usage_lists_subcommands(monkeypatch, capsys):
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch)
    assert stop.value.code == 2
    _flexgame(monkeypatch, "--help")
    out = capsys.readouterr().out
    for command in ("run", "sweep", "report", "study", "table", "summary"):
        assert f"\n  {command} " in out


def test_summary_follows_the_case(monkeypatch, capsys):
    _flexgame(monkeypatch, "summary", "case=D")
    out = capsys.readouterr().out
    assert "downward" in out and "Feeder case69" in out and "Feeder case141" in out


def test_table_writes_csv_and_figure(monkeypatch, capsys, tmp_path):
    out = tmp_path / "d33"
    _flexgame(monkeypatch, "table", "--cases", "A", "--schemes", "common", "ml01",
              "--out", str(out))
    printed = capsys.readouterr().out
    assert "eta [%]" in printed and "runtime [s]" in printed
    long = pd.read_csv(out / "d33_table_long.csv")
    wide = pd.read_csv(out / "d33_table_wide.csv")
    assert set(long.columns) == {"case", "scheme", "seed", "metric", "value", "unit"}
    assert list(wide.scheme) == ["common", "ml01"]
    assert wide.set_index("scheme").loc["common", "inefficiency_pct_A"] == 0.0
    assert (out / "d33_inefficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "d33_inefficiency.svg").read_text().lstrip().startswith("<?xml")
    assert "| scheme |" in (out / "report.md").read_text()


def test_config_groups_are_presets_over_the_library_defaults():
    """Group option names are the names users type; the composed default config is exactly
    the library's defaults (the dataclasses are the schema)."""
    assert set(group_options("scheme")) == set(SCHEMES)
    assert set(group_options("case")) == set(CASES)
    assert set(group_options("settlement")) == set(SETTLEMENTS)
    assert set(group_options("reasoning")) == set(REASONINGS)
    run = settings(load_config(["case=C"]))
    assert run.system == SystemConfig()
    assert run.clearing_config() == ClearingConfig(scheme="common")
    assert run.bid_config() == BidConfig(case="C")


def _bids(overrides):
    run = settings(load_config(overrides))
    return Scenario.from_settings(run.system, run.bid_config(), run.seed).bids


def test_scenario_is_seeded():
    first = _bids(["case=B", "seed=4"])
    again = _bids(["case=B", "seed=4"])
    other = _bids(["case=B", "seed=5"])
    pd.testing.assert_frame_equal(first, again)
    assert not first.cost_eur_per_mw.equals(other.cost_eur_per_mw)


def test_strategic_run_writes_rounds_and_strategic_metrics(tmp_path):
    """A strategic run (iterated best response, few pooled FSPs, short grid) writes the
    round-by-round table and the strategic keys; its epsilon is the certificate
    of the final profile, zero exactly when it converged."""
    cfg = load_config(["reasoning=ibr", "aggregation=random_pools", "aggregation.pool_size=60",
                       "reasoning.strategy.markup_points=4", "reasoning.max_rounds=6",
                       "case=B"])
    metrics = run_experiment(cfg, tmp_path)
    for key in ("truthful_cost", "strategic_cost", "price_of_anarchy", "mean_markup",
                "fsp_profit_total", "status", "iterations", "epsilon"):
        assert key in metrics
    assert metrics["status"] in ("converged", "cycle", "capped")
    assert (metrics["epsilon"] == 0) == (metrics["status"] == "converged")
    # common market, pay-as-bid, markups >= 1: min over declared prices >= min over true costs
    assert metrics["strategic_cost"] >= metrics["truthful_cost"] - 1e-6
    rounds = pd.read_csv(tmp_path / "rounds.csv")
    assert rounds.step.nunique() == metrics["iterations"] + 1
    assert set(rounds.fsp) == set(pd.read_csv(tmp_path / "strategies.csv").fsp)
    operators = pd.read_csv(tmp_path / "operators.csv")
    assert operators.step.nunique() == metrics["iterations"] + 1
    assert set(operators[operators.kind == "system"].operator) == {"TSO", "DSO:case69",
                                                                   "DSO:case141"}
    # the market operators' costs add up to each round's procurement cost
    layer_cost = operators[operators.kind == "market"].groupby("step").cost_eur.sum()
    round_cost = rounds.drop_duplicates("step").set_index("step").procurement_cost_eur
    assert layer_cost.to_numpy() == pytest.approx(round_cost.to_numpy())
    assert _strict_json(tmp_path / "metrics.json")["reasoning"] == "ibr"
    assert _unregistered(metrics) == []


def test_unknown_reasoning_is_refused(tmp_path):
    cfg = load_config([])
    cfg.reasoning.name = "level_q"
    with pytest.raises(FlexgameInputError, match="reasoning.name='level_q' is not allowed"):
        run_experiment(cfg, tmp_path)


def test_write_json_is_strict_and_leaves_no_temporary_file(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": float("nan"), "b": np.float64(2.5),
                                            "c": np.arange(2)})
    assert _strict_json(path) == {"a": None, "b": 2.5, "c": [0, 1]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.parametrize("command", [["table"], ["idr", "table"]])
def test_a_negative_seed_is_refused_by_the_commands_that_take_one(monkeypatch, capsys, command):
    monkeypatch.setattr(sys, "argv", ["flexgame", *command, "--seed", "-3"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    assert "--seed: '-3' is not an integer >= 0" in capsys.readouterr().err
