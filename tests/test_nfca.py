"""NFCA market link (flexgame.markets.nfca, nfca.enabled of a TSO-DSO run): distribution bids
capped to their LV users' operating envelopes, and what the markets lose."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from flexgame.experiments import tso_dso
from flexgame.experiments.cli import main
from flexgame.experiments.config import load_config, settings
from flexgame.experiments.evaluation import clear
from flexgame.experiments.run import OUTPUTS, run_experiment
from flexgame.experiments.scenario import Scenario
from flexgame.markets.envelopes import limit_rows, worst_vertex
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.lv_feeder import radial_lv_feeder
from flexgame.markets.metrics import metric
from flexgame.markets.nfca import (
    CAP_COLUMNS,
    KW_PER_MW,
    NFCAConfig,
    capped_bids,
    nfca_caps,
    site,
)

TOL = 1e-9


@pytest.fixture(scope="module")
def default_caps(system, bids_a):
    """Default NFCA caps of the case-A bids on the default system (conftest), seed 0."""
    return nfca_caps(system, bids_a, NFCAConfig(enabled=True), seed=0)


def _violation(lv, d_kw) -> float:
    """Largest LinDistFlow limit violation (p.u.^2 for voltages, MW for lines) at the users'
    net demands ``d_kw``, by a direct power flow (Feeder.solve)."""
    f = lv.feeder
    d = lv.user_matrix() @ np.asarray(d_kw, float) / KW_PER_MW
    st = f.solve(d, np.zeros_like(d))
    v = max(np.max(f.v_min[1:] ** 2 - st.v_sq[1:]), np.max(st.v_sq[1:] - f.v_max[1:] ** 2))
    line = np.max(np.abs(st.p_mw) - f.rating_mva)
    return max(v, line, 0.0)


def test_caps_between_zero_and_offer_pro_rata(bids_a, default_caps):
    caps = default_caps.caps
    dist = bids_a[bids_a.level == "distribution"]
    assert list(caps.columns) == CAP_COLUMNS and set(caps.index) == set(dist.index)
    assert (caps.cap_mw >= -TOL).all() and (caps.cap_mw <= caps.offered_mw + TOL).all()
    assert np.allclose(caps.offered_mw, dist.quantity_mw.loc[caps.index])
    assert np.allclose(caps.lost_mw, caps.offered_mw - caps.cap_mw)
    for _, group in caps.groupby(["feeder", "bus", "direction"]):
        allowance, offered = group.bus_allowance_mw.iat[0], group.offered_mw.sum()
        # the bus's caps add up to its allowance when it binds, else to its offers
        assert group.cap_mw.sum() == pytest.approx(min(allowance, offered), abs=1e-12)
        ratio = group.cap_mw / group.offered_mw
        assert np.allclose(ratio, ratio.iat[0])                    # pro rata
    assert (caps.lost_mw > 1e-6).any() and (caps.lost_mw < TOL).any()  # some bind, not all
    # the capped table offers the caps, transmission bids untouched
    capped = capped_bids(bids_a, default_caps)
    assert np.allclose(capped.quantity_mw.loc[caps.index], caps.cap_mw)
    tx = bids_a.level == "transmission"
    assert capped.quantity_mw[tx].equals(bids_a.quantity_mw[tx])


def test_seeded(system, bids_a, default_caps):
    again = nfca_caps(system, bids_a, NFCAConfig(enabled=True), seed=0)
    assert again.caps.equals(default_caps.caps)
    other = nfca_caps(system, bids_a, NFCAConfig(enabled=True, seed_offset=1), seed=0)
    assert not np.allclose(other.caps.bus_allowance_mw, default_caps.caps.bus_allowance_mw)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_all_users_optimal_caps_equal_envelope_totals(system, bids_a, mode):
    """Every user on an NFCA, one LV feeder per bus and offers far beyond it: the caps at a
    bus, both directions together, are the envelopes' total import + export, in MW."""
    bids = bids_a.copy()
    bids["quantity_mw"] = 10.0                      # far beyond any LV feeder
    config = NFCAConfig(enabled=True, policy="optimal", mode=mode, participation_share=1.0,
                        max_feeders_per_bus=1)
    result = nfca_caps(system, bids, config, seed=3)
    by_bus = result.caps.groupby(["feeder", "bus"]).cap_mw.sum()
    assert len(result.sites) == len(by_bus)
    directions = result.caps.groupby(["feeder", "bus"]).direction.nunique()
    both = [s for s in result.sites if directions[(s.mv_feeder, s.mv_bus)] == 2]
    assert len(both) > len(result.sites) / 2
    for s in both:
        assert len(s.participants) == s.lv.n_users
        total_kw = s.envelopes.total_import_kw + s.envelopes.total_export_kw
        assert total_kw > 0
        assert by_bus[(s.mv_feeder, s.mv_bus)] == pytest.approx(total_kw / KW_PER_MW, rel=1e-9)
        assert s.allowance_mw["up"] + s.allowance_mw["down"] == pytest.approx(
            total_kw / KW_PER_MW, rel=1e-9)


def _robust_violation(s, mode: str) -> float:
    """Largest excess of a limit row over the capped box: participants anywhere in
    [baseline - up, baseline + down], firm users at their forecast (dynamic) or anywhere in
    their connection box (static), each row at its worst vertex."""
    a, b = limit_rows(s.lv)
    lo, hi = s.forecast_kw.copy(), s.forecast_kw.copy()
    if mode == "static":
        lo, hi = -s.lv.capacity_kw.copy(), s.lv.capacity_kw.copy()
    p = s.participants
    lo[p], hi[p] = s.baseline_kw - s.up_kw, s.baseline_kw + s.down_kw
    worst = max(float(a[r] @ worst_vertex(a[r], lo, hi) - b[r]) for r in range(len(b)))
    return worst / max(1.0, float(np.abs(b).max()))


def test_capped_box_is_safe_on_the_generated_feeders(default_caps):
    assert max(_robust_violation(s, "dynamic") for s in default_caps.sites) <= 1e-9
    # the envelopes bind somewhere: the caps are not just the connection capacities
    assert any(s.up_kw.sum() + s.down_kw.sum() < 2 * s.lv.capacity_kw[s.participants].sum()
               - 1.0 for s in default_caps.sites)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
@pytest.mark.parametrize("policy", ["optimal", "fair", "proportional_fair"])
def test_every_vertex_of_the_capped_box_is_safe_small_feeder(mode, policy):
    """Brute force on a small, tight feeder: LinDistFlow power flows at every vertex of the
    capped box (participants at baseline - up or baseline + down, firm users at their
    forecast or their connection box's corners) stay within every limit."""
    lv = radial_lv_feeder([-1, 0, 1, 2, 1, 4], r_pu=[2.0, 3.0, 4.0, 2.5, 3.5],
                          x_pu=[0.5, 0.3, 0.4, 0.2, 0.3],
                          rating_mva=[0.03, 0.02, 0.012, 0.02, 0.01],
                          user_bus=[2, 3, 4, 5], capacity_kw=9.2)
    config = NFCAConfig(enabled=True, policy=policy, mode=mode, baseline_share=0.3)
    s = site(lv, "mv", 7, np.array([0, 2, 3]), config)
    assert s.up_kw.sum() + s.down_kw.sum() < 2 * 3 * 9.2 - 1.0   # the feeder binds
    firm = np.setdiff1d(np.arange(lv.n_users), s.participants)
    firm_sides = ([(-lv.capacity_kw[i], lv.capacity_kw[i]) for i in firm] if mode == "static"
                  else [(s.forecast_kw[i],) for i in firm])
    part_sides = [(b - u, b + d) for b, u, d in zip(s.baseline_kw, s.up_kw, s.down_kw)]
    worst = 0.0
    for corner in itertools.product(*part_sides, *firm_sides):
        d = np.empty(lv.n_users)
        d[s.participants] = corner[:len(s.participants)]
        d[firm] = corner[len(s.participants):]
        worst = max(worst, _violation(lv, d))
    assert worst <= 1e-9


def test_firm_users_alone_unsafe_gives_zero_caps():
    lv = radial_lv_feeder([-1, 0, 1], r_pu=[0.5, 0.5], x_pu=[0.1, 0.1],
                          rating_mva=[0.01, 0.01], user_bus=[1, 2], capacity_kw=[9.2, 20.0])
    s = site(lv, "mv", 1, np.array([0]), NFCAConfig(enabled=True, mode="static"))
    assert s.up_kw.sum() == 0 and s.down_kw.sum() == 0


def test_common_cost_with_caps_not_below_without():
    """Fewer MW offered cannot lower the common market's optimum (penalties included); with
    no unmet need either way, its procurement cost cannot fall."""
    for case, share in (("A", 0.5), ("B", 0.2)):
        scenario = Scenario.from_case(case, seed=1)
        caps = nfca_caps(scenario.system, scenario.bids,
                         NFCAConfig(enabled=True, participation_share=share), seed=1)
        assert caps.lost_mw() > 0
        capped = dataclasses.replace(scenario, bids=capped_bids(scenario.bids, caps))
        with_caps, without = clear(capped, "common"), clear(scenario, "common")
        assert with_caps.result.objective_eur >= without.result.objective_eur - 1e-6
        if with_caps.result.unmet_need_mw < 1e-9 and without.result.unmet_need_mw < 1e-9:
            assert with_caps.result.cost_eur >= without.result.cost_eur - 1e-6


def _metrics_without_timings(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("runtime_s", "build_s")}


def test_disabled_leaves_the_run_unchanged(tmp_path):
    """nfca.enabled=false: the same metrics as the run path without the NFCA step."""
    cfg = load_config(["nfca.enabled=false", "scheme=ml03"])
    metrics = run_experiment(cfg, tmp_path / "off")
    run_settings = settings(cfg)
    scenario = Scenario.from_settings(run_settings.system, run_settings.bid_config(),
                                      run_settings.seed)
    before = tso_dso.run_truthful(run_settings, scenario, tmp_path / "before")
    assert _metrics_without_timings(metrics) == _metrics_without_timings(before)
    assert not any(k.startswith("nfca") or "with_nfca" in k for k in metrics)
    assert not (tmp_path / "off" / "nfca.csv").exists()


@pytest.mark.parametrize("override, expected", [
    ("nfca.participation_share=1.5", ["nfca.participation_share", "(0, 1]"]),
    ("nfca.policy=greedy", ["nfca.policy", "optimal", "fair", "proportional_fair"]),
    ("nfca.baseline_share=1.0", ["nfca.baseline_share", "(-1, 1)"]),
    ("nfca.max_feeders_per_bus=0", ["nfca.max_feeders_per_bus", ">= 1"]),
])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, override, expected):
    with pytest.raises(SystemExit) as stop:
        main(["run", "nfca.enabled=true", override, f"hydra.run.dir={tmp_path}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in expected:
        assert word in err, err
    assert not (tmp_path / "metrics.json").exists()


def test_config_validate_names_the_key():
    with pytest.raises(FlexgameInputError, match=r"nfca\.participation_share=1\.5"):
        NFCAConfig(enabled=True, participation_share=1.5).validate()


def test_cli_run_writes_nfca_csv_and_metrics(tmp_path):
    main(["run", "nfca.enabled=true", "scheme=ml03", "case=B", "nfca.participation_share=0.2",
          f"hydra.run.dir={tmp_path}"])
    assert "nfca.csv" in OUTPUTS
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in metrics:
        metric(key)                                           # every key is registered
    table = pd.read_csv(tmp_path / "nfca.csv")
    assert list(table.columns) == CAP_COLUMNS
    assert metrics["nfca_lost_up_mw"] == pytest.approx(
        table.lost_mw[table.direction == "up"].sum())
    assert metrics["nfca_lost_down_mw"] == pytest.approx(
        table.lost_mw[table.direction == "down"].sum())
    assert (metrics["nfca_lost_tso_usable_mw"] + metrics["nfca_lost_dso_only_mw"]
            == pytest.approx(metrics["nfca_lost_up_mw"] + metrics["nfca_lost_down_mw"]))
    assert metrics["nfca_lost_tso_usable_mw"] == metrics["nfca_lost_up_mw"]  # case B: up need
    # the run cleared the capped bids: its cost is the truthful cost with the caps
    assert metrics["total_cost"] == pytest.approx(metrics["truthful_cost_with_nfca"])
    assert metrics["nfca_cost_change"] == pytest.approx(
        metrics["truthful_cost_with_nfca"] - metrics["truthful_cost_without_nfca"])
    # ml03 has a TSO layer and DSO layers: the cost change splits between them
    assert metrics["nfca_tso_cost_change"] + metrics["nfca_dso_cost_change"] == pytest.approx(
        metrics["nfca_cost_change"], abs=1e-6)
    bids = pd.read_csv(tmp_path / "bids.csv").set_index("bid")
    assert np.allclose(bids.quantity_mw.loc[table.bid], table.cap_mw)


def test_strategic_run_declares_within_the_caps(tmp_path):
    cfg = load_config(["nfca.enabled=true", "reasoning=ibr", "aggregation=random_pools",
                       "aggregation.pool_size=60", "reasoning.strategy.markup_points=4",
                       "reasoning.max_rounds=4", "case=B"])
    metrics = run_experiment(cfg, tmp_path)
    assert metrics["reasoning"] == "ibr" and metrics["nfca_lost_up_mw"] > 0
    table = pd.read_csv(tmp_path / "nfca.csv")
    declared = pd.read_csv(tmp_path / "bids.csv").set_index("bid")
    assert (declared.quantity_mw.loc[table.bid].to_numpy() <= table.cap_mw.to_numpy()
            + 1e-12).all()
