"""The config layer: the settings dataclasses are the schema, every mistake in a config value
ends as one line naming the key (exit status 2), options without effect are refused, and the
mapping-valued options can be set from the command line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from flexgame.experiments import sweep
from flexgame.experiments.cli import main
from flexgame.experiments.config import effective, load_config, settings
from flexgame.experiments.scenario import Scenario
from flexgame.markets.bids import BidConfig
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.schemes import ClearingConfig


def _flexgame(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["flexgame", *args])
    main()


@pytest.mark.parametrize("overrides, expected", [
    # a typo of a key is an error, not a new key; the closest option is named
    (["schme=common"], ["schme is not an option", "did you mean scheme?"]),
    (["+liquidty=0.5"], ["liquidty is not an option", "did you mean liquidity?"]),
    (["scheme.intrface=fixed"], ["scheme.intrface", "did you mean scheme.interface?"]),
    (["+system.dg_shar=0.2"], ["system.dg_shar", "did you mean system.dg_share?"]),
    # a value of the wrong type anywhere
    (["reasoning.max_rounds=abc"], ["reasoning.max_rounds='abc'", "must be an integer"]),
    (["reasoning=ibr", "reasoning.max_rounds=abc"], ["reasoning.max_rounds='abc'", "integer"]),
    (["seed=1.5"], ["seed=1.5", "must be an integer"]),
    (["system.dg_share=abc"], ["system.dg_share='abc'", "must be a number"]),
    (["reasoning=ibr", "reasoning.strategy.per_resource=maybe"],
     ["reasoning.strategy.per_resource='maybe'", "true or false"]),
    # NaN anywhere
    (["liquidity=nan"], ["liquidity=nan", "finite"]),
    (["scheme=bid_aggregation", "scheme.delta_mw=nan"], ["scheme.delta_mw=nan", "finite"]),
    (["scheme.penalties.line=nan"], ["scheme.penalties.line=nan", "finite"]),
    (["reasoning=ibr", "reasoning.strategy.withholding=[0,nan]"],
     ["reasoning.strategy.withholding[1]=nan", "finite"]),
    # ranges and choices: the allowed values, never "allowed: >= None"
    (["liquidity=1.5"], ["liquidity=1.5", "allowed: a value in (0, 1]"]),
    (["seed=-1"], ["seed=-1", "allowed: >= 0"]),
    (["system.tx_rating_factor=0"], ["system.tx_rating_factor=0.0", "allowed: > 0"]),
    (["scheme=ml03", "scheme.prequalification=greedy"],
     ["scheme.prequalification='greedy'", "envelope, iterative"]),
    (["reasoning=ibr", "reasoning.strategy.kind=multiplicative",
      "reasoning.strategy.markup_max=0.5"],
     ["reasoning.strategy.markup_max=0.5", "truthful multiplicative markup 1.0"]),
    (["reasoning=ibr", "reasoning.strategy.markup_max=3"],
     ["reasoning.strategy.markup_max has no effect with reasoning.strategy.kind=to_cap"]),
    (["system.v_limits=[1.1,0.9]"], ["system.v_limits=[1.1, 0.9]", "low <= high"]),
    (["system.tx_ratings_mw={1-2:-5}"], ["system.tx_ratings_mw", "> 0 MW", "'1-2'"]),
    (["scheme=ml09"], ["scheme='ml09'", "ml03", "bid_aggregation"]),
    (["system.feeders=[{case:case69}]"], ["system.feeders[0].bus is missing"]),
    # an option that has no effect in the chosen group option is refused
    (["scheme.interface=fixed"],
     ["scheme.interface has no effect with scheme=common", "ml01"]),
    (["aggregation.pool_size=5"],
     ["aggregation.pool_size has no effect with aggregation=none", "random_pools"]),
    (["reasoning.max_rounds=5"], ["reasoning.max_rounds has no effect with reasoning=truthful"]),
    (["case=A", "case.critical_bids_per_feeder=2"],
     ["case.critical_bids_per_feeder has no effect with case=A", "case=C"]),
])
def test_bad_config_value_exits_2_with_one_line(monkeypatch, capsys, tmp_path, overrides,
                                                 expected):
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "run", *overrides, f"hydra.run.dir={tmp_path}")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("flexgame: error: ") and "Traceback" not in err
    assert "None" not in err
    for word in expected:
        assert word in err, err
    assert not (tmp_path / "metrics.json").exists()


def test_mapping_options_from_the_command_line():
    """The options documented as mappings are set as the README shows, and take effect."""
    run = settings(load_config(["system.tx_ratings_mw={1-2:50,2-3:40}",
                                "system.congested_branches={case69:[4-47]}",
                                "case=B", "case.prices.transmission_up=[90,120]",
                                "reasoning=level_k", "reasoning.levels={fsp3:1}"]))
    scenario = Scenario.from_settings(run.system, run.bid_config(), run.seed)
    tx = scenario.system.transmission
    ratings = dict(zip(tx.line_names(), tx.rating_mw))
    assert ratings["1-2"] == 50.0 and ratings["2-3"] == 40.0
    case69 = scenario.system.feeder("case69")
    assert [case69.branch_names()[k] for k in scenario.system.congested["case69"]] == ["4-47"]
    bids = scenario.bids
    up = bids[(bids.level == "transmission") & (bids.direction == "up")]
    assert up.cost_eur_per_mw.between(90.0, 120.0).all()
    assert run.reasoning.levels == {"fsp3": 1}


def test_transmission_only_system_from_the_config():
    run = settings(load_config(["system.feeders=[]"]))
    scenario = Scenario.from_settings(run.system, run.bid_config(), run.seed)
    assert scenario.system.feeders == [] and (scenario.bids.level == "transmission").all()


def test_case_fixes_the_direction_of_the_need():
    """Case D is a downward need: the config layer builds the system that way; a case-D bid
    set cannot be drawn for an upward-need system."""
    run = settings(load_config(["case=D"]))
    assert run.bid_config().direction == "down"
    assert Scenario.from_settings(run.system, run.bid_config(), 0).system.tso_need_mw < 0
    up = Scenario.from_case("A").system
    with pytest.raises(FlexgameInputError, match="case D .*direction='down'"):
        from flexgame.markets.bids import generate_bids
        generate_bids(up, BidConfig(case="D"), np.random.default_rng(0))


def test_a_sweep_keeps_an_option_that_has_an_effect_in_some_jobs(tmp_path):
    """reasoning.max_rounds means nothing to truthful runs but sets the cap of the IBR runs:
    a sweep over both keeps it; an option without effect in every job is refused."""
    plan = sweep.plan(["reasoning=truthful,ibr", "reasoning.max_rounds=5"], tmp_path)
    assert len(plan.jobs) == 2
    with pytest.raises(FlexgameInputError, match="scheme.delta_mw has no effect"):
        sweep.plan(["scheme=common,ml01", "scheme.delta_mw=0.1"], tmp_path)


def test_effective_config_drops_options_without_effect():
    """What distinguishes runs: a truthful run has no strategy space, a run without random
    pools no pool size."""
    plain = effective(load_config(["reasoning=truthful"]))
    assert "strategy" not in plain["reasoning"] and "pool_size" not in plain["aggregation"]
    plain = effective(load_config(["reasoning=ibr", "aggregation=random_pools"]))
    assert plain["reasoning"]["strategy"]["kind"] == "to_cap"
    assert "markup_max" not in plain["reasoning"]["strategy"]  # a to_cap grid ends at the cap
    assert plain["aggregation"]["pool_size"] == 10


def test_python_api_warns_about_options_without_effect():
    from flexgame.experiments.evaluation import clearing_config

    with pytest.warns(UserWarning, match="interface='fixed' has no effect with scheme common"):
        config = clearing_config("common", interface="fixed")
    assert config == ClearingConfig(scheme="common", interface="fixed")


@pytest.mark.parametrize("overrides, expected", [
    (["reasoning=cognitive_hierarchy", "reasoning.tau=nan"], ["reasoning.tau=nan", "finite"]),
    (["reasoning=logit", "reasoning.samples=2.5"], ["reasoning.samples=2.5", "integer"]),
    (["reasoning=logit", "reasoning.rationality=inf"], ["reasoning.rationality=inf", "finite"]),
    (["reasoning=ibr", "reasoning.strategy.withholding=[0,inf]"],
     ["reasoning.strategy.withholding[1]=inf", "finite"]),
    (["system.congestion_factor=-1"], ["system.congestion_factor=-1.0", "allowed: > 0"]),
    # penalties must exceed every price a bid may ask
    (["case=B", "scheme.penalties.unmet_need=100"],
     ["scheme.penalties.unmet_need=100.0", "must exceed every bid price", "165",
      "case.prices.transmission_up"]),
    (["case.prices.distribution_up=[40,20000]"],
     ["scheme.penalties.unmet_need=10000.0", "20000", "case.prices.distribution_up"]),
    (["reasoning=ibr", "reasoning.strategy.price_cap=10000"],
     ["reasoning.strategy.price_cap=10000.0", "scheme.penalties.unmet_need=10000"]),
])
def test_bad_value_is_refused_before_running(monkeypatch, capsys, tmp_path, overrides, expected):
    """NaN, infinities and non-integers in every option, and penalties at or below the prices
    bids may ask, stop ``flexgame run`` with one line before anything is computed."""
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "run", *overrides, f"hydra.run.dir={tmp_path}")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in expected:
        assert word in err, err


def _case14_without(tmp_path, branch: str):
    """case14 as a file with ``branch`` (``"7\\t8"``: from, to) out of service."""
    from importlib import resources

    text = (resources.files("flexgame.markets") / "cases" / "case14.m").read_text()
    line = next(row for row in text.splitlines() if row.strip().startswith(branch + "\t"))
    fields = line.split("\t")
    fields[11] = "0"  # BR_STATUS
    path = tmp_path / "case14_open.m"
    path.write_text(text.replace(line, "\t".join(fields)))
    return path


@pytest.mark.parametrize("overrides, expected", [
    (["system.transmission_case=case14,no_such_case"], ["no_such_case", "embedded cases"]),
    (["system.feeders=[{case:case69,bus:14}],[{case:/no/such/feeder.m,bus:14}]"],
     ["/no/such/feeder.m", "does not exist"]),
    (["system.feeders=[{case:case69,bus:14}],[{case:case69,bus:99}]"],
     ["transmission bus 99", "case14"]),
])
def test_sweep_checks_the_case_data_of_every_job_before_any_runs(tmp_path, overrides, expected):
    """What only the case files can tell (a file that is missing or unreadable, a bus it
    lacks) stops a sweep at planning, like any other bad value."""
    with pytest.raises(FlexgameInputError) as err:
        sweep.plan(overrides, tmp_path)
    for word in expected:
        assert word in str(err.value), err.value
    assert list(tmp_path.iterdir()) == []


def test_sweep_refuses_an_unreadable_or_islanded_case_file(tmp_path):
    garbage = tmp_path / "garbage.m"
    garbage.write_text("function mpc = garbage\nthis is not a case\n")
    with pytest.raises(FlexgameInputError, match="garbage.m.* not a readable MATPOWER case"):
        sweep.plan([f"system.transmission_case=case14,{garbage}"], tmp_path / "a")
    islanded = _case14_without(tmp_path, "7\t8")
    with pytest.raises(FlexgameInputError, match=r"case14_open.m.*islanded.*\[8\]"):
        sweep.plan([f"system.transmission_case=case14,{islanded}"], tmp_path / "b")


def test_empty_sweep_is_an_error(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "sweep", "seed=range(0)", f"hydra.sweep.dir={tmp_path}")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed=range(0)" in err and "no job" in err, err
