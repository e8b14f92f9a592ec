"""The interconnected TSO-DSO system and its base state (ALEXANDER D3.3 §4.1.2)."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.case_loading import load_case
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import assess_base_state
from flexgame.markets.schemes import SCHEMES, build_scheme
from flexgame.markets.system import FeederSpec, SystemConfig, build_system

CASE14_LOAD_MW = 259.0


def _total_dg(system) -> float:
    return float(sum(dg.sum() for dg in system.dg_mw.values()))


def test_default_system_layout(system):
    assert system.transmission.case.name == "case14"
    assert [(f.case.name, f.coupling_bus) for f in system.feeders] == [
        ("case69", 14), ("case141", 9)]
    assert [f.name for f in system.feeders] == ["case69", "case141"]


@pytest.mark.parametrize("direction, sign", [("up", 1.0), ("down", -1.0)])
def test_tso_need_sign_and_size(system, system_down, direction, sign):
    sys_ = system if direction == "up" else system_down
    share = SystemConfig().imbalance_share
    # the need is a share of the demand the transmission generation serves: loads minus DG
    served = sys_.total_demand_mw - _total_dg(sys_)
    assert np.sign(sys_.tso_need_mw) == sign
    assert abs(sys_.tso_need_mw) == pytest.approx(share * served, rel=1e-12)
    # generation plus DG falls short of (up) or exceeds (down) the demand by the need
    assert sys_.tx_gen_mw.sum() + _total_dg(sys_) == pytest.approx(
        sys_.total_demand_mw - sys_.tso_need_mw, rel=1e-12)


def test_explicit_imbalance_mw():
    up = build_system(SystemConfig(imbalance_mw=7.5), direction="up")
    down = build_system(SystemConfig(imbalance_mw=7.5), direction="down")
    assert up.tso_need_mw == pytest.approx(7.5)
    assert down.tso_need_mw == pytest.approx(-7.5)


@pytest.mark.parametrize("which", ["system", "system_down"])
def test_base_injection_sums_to_minus_need(request, which):
    sys_ = request.getfixturevalue(which)
    inj = sys_.base_tx_injection()
    assert inj.sum() == pytest.approx(-sys_.tso_need_mw, abs=1e-9)
    # the call does not mutate the system's own arrays
    np.testing.assert_array_equal(sys_.base_tx_injection(), inj)


def test_interface_flows_equal_feeder_net_demand(system):
    interface = system.base_interface_mw()
    inj = system.base_tx_injection()
    tx = system.transmission
    for f in system.feeders:
        net = f.load_mw - system.dg_mw[f.name]
        assert interface[f.name] == pytest.approx(net.sum(), abs=1e-12)
        # the interface is also the LinDistFlow flow out of the feeder root
        p, _ = system.feeder_net_demand(f)
        state = f.solve(p, system.feeder_net_demand(f)[1])
        from_root = f.parent[f.child] == 0
        assert state.p_mw[from_root].sum() + p[0] == pytest.approx(interface[f.name], abs=1e-9)
        # and it is withdrawn at the coupling bus
        i = tx.bus_index(f.coupling_bus)
        assert inj[i] == pytest.approx(
            system.tx_gen_mw[i] - system.tx_load_mw[i] - interface[f.name], abs=1e-9)


def test_base_state_is_congested_exactly_at_tightened_branches(system):
    report = assess_base_state(system)
    assert report.congestions >= 1
    over = report.elements[(report.elements.kind == "line") & (report.elements.excess_pct > 1e-4)]
    found = {(row.network, row.element) for row in over.itertuples()}
    tightened = {(f.name, f.branch_names()[k]) for f in system.feeders
                 for k in system.congested[f.name]}
    assert len(tightened) == sum(len(v) for v in system.congested.values())
    assert found == tightened
    factor = SystemConfig().congestion_factor
    assert report.max_congestion_pct == pytest.approx(100.0 * (1.0 / factor - 1.0), rel=1e-9)
    # the base TSO need shows up as residual need
    assert report.residual_need_mw == pytest.approx(system.tso_need_mw, abs=1e-9)


def test_feeder_ratings(system):
    cfg = SystemConfig()
    for f in system.feeders:
        p, q = system.feeder_net_demand(f)
        s = f.solve(p, q).loading(system.feeder_line_limit)
        tight = system.congested[f.name]
        assert len(tight) == cfg.congested_branches_per_feeder
        expected = np.maximum(cfg.feeder_rating_factor * s, cfg.feeder_min_rating_share * s.max())
        expected[tight] = cfg.congestion_factor * s[tight]
        np.testing.assert_allclose(f.rating_mva, expected, rtol=1e-12)
        assert np.all(np.isfinite(f.rating_mva)) and np.all(f.rating_mva > 0)


def test_dg_placed_at_far_end(system):
    cfg = SystemConfig()
    for f in system.feeders:
        dg = system.dg_mw[f.name]
        hosts = np.flatnonzero(dg > 0)
        assert len(hosts) == cfg.dg_buses_per_feeder
        assert dg.sum() == pytest.approx(cfg.dg_share * f.load_mw.sum(), rel=1e-12)
        depth = f.subtree.T @ f.r_pu
        assert depth[hosts].min() >= np.delete(depth, hosts).max()


def test_coupling_load_replace_keeps_case14_demand(system):
    assert system.total_demand_mw == pytest.approx(CASE14_LOAD_MW, abs=1e-9)
    case14 = load_case("case14")
    tx = system.transmission
    for f in system.feeders:
        i = tx.bus_index(f.coupling_bus)
        assert system.tx_load_mw[i] == pytest.approx(case14.bus.PD[i] - f.load_mw.sum())


def test_coupling_load_add_adds_feeder_loads():
    sys_ = build_system(SystemConfig(coupling_load="add"))
    feeders = sum(f.load_mw.sum() for f in sys_.feeders)
    assert feeders == pytest.approx(3.80 + 11.94, abs=0.02)
    assert sys_.total_demand_mw == pytest.approx(CASE14_LOAD_MW + feeders, abs=1e-9)
    np.testing.assert_allclose(sys_.tx_load_mw, load_case("case14").bus.PD)


def test_replace_rejects_feeder_larger_than_bus_load():
    # case14 bus 7 carries no load
    with pytest.raises(FlexgameInputError) as err:
        build_system(SystemConfig(feeders=[FeederSpec("case69", 7)]))
    assert "bus 7" in str(err.value) and "coupling_load=add" in str(err.value)


def test_several_feeders_of_one_case_get_unique_names():
    cfg = SystemConfig(feeders=[FeederSpec("case69", 14), FeederSpec("case69", 13),
                                FeederSpec("case69", 4)])
    sys_ = build_system(cfg)
    names = [f.name for f in sys_.feeders]
    assert len(set(names)) == 3
    assert [f.coupling_bus for f in sys_.feeders] == [14, 13, 4]
    assert sys_.base_tx_injection().sum() == pytest.approx(-sys_.tso_need_mw, abs=1e-9)


def test_reprs_stay_short_with_many_feeders():
    """Five feeders: the system, its states and the common market's layer name a few of them
    and count the rest, in one line of at most 250 characters."""
    sys_ = build_system(SystemConfig(feeders=[FeederSpec("case69", b) for b in (14, 13, 4, 5, 9)],
                                     coupling_load="add"))
    bids = generate_bids(sys_, BidConfig(liquidity=0.2), np.random.default_rng(0))
    scheme = build_scheme(sys_, bids, "ml02")
    for obj in (sys_, scheme, build_scheme(sys_, bids, "common").common, scheme.effects,
                assess_base_state(sys_)):
        text = repr(obj)
        assert "\n" not in text and len(text) <= 250, text
    assert "(5 in all)" in repr(sys_)


def test_explicit_congested_branches():
    cfg = SystemConfig(congested_branches={"case69": ["3-4", "9-10"]})
    sys_ = build_system(cfg)
    f = sys_.feeder("case69")
    assert [f.branch_names()[k] for k in sys_.congested["case69"]] == ["3-4", "9-10"]
    report = assess_base_state(sys_)
    over = report.elements[(report.elements.network == "case69")
                           & (report.elements.kind == "line") & (report.elements.excess_pct > 0)]
    assert set(over.element) == {"3-4", "9-10"}


# --- bad input: each message names the offending value -------------------------------------

def test_feeder_at_missing_transmission_bus():
    with pytest.raises(FlexgameInputError) as err:
        build_system(SystemConfig(feeders=[FeederSpec("case69", 99)]))
    assert "99" in str(err.value) and "case14" in str(err.value)


def test_unknown_feeder_case():
    with pytest.raises(FlexgameInputError) as err:
        build_system(SystemConfig(feeders=[FeederSpec("case_nope", 14)]))
    assert "case_nope" in str(err.value) and "case69" in str(err.value)


@pytest.mark.parametrize("key", ["feeder_rating_factor", "congestion_factor", "tx_rating_factor"])
@pytest.mark.parametrize("value", [-1.3, 0.0])
def test_non_positive_factors(key, value):
    with pytest.raises(FlexgameInputError) as err:
        build_system(SystemConfig(**{key: value}))
    assert f"{key}={value}" in str(err.value)


def test_negative_min_rating_share():
    with pytest.raises(FlexgameInputError, match=r"feeder_min_rating_share=-0\.2"):
        build_system(SystemConfig(feeder_min_rating_share=-0.2))


def test_negative_dg_share():
    with pytest.raises(FlexgameInputError, match=r"dg_share=-0\.1"):
        build_system(SystemConfig(dg_share=-0.1))


def test_negative_imbalance():
    with pytest.raises(FlexgameInputError, match=r"-3"):
        build_system(SystemConfig(imbalance_mw=-3.0))


def test_congested_branch_not_in_feeder():
    with pytest.raises(FlexgameInputError) as err:
        build_system(SystemConfig(congested_branches={"case69": ["1-999"]}))
    assert "'1-999'" in str(err.value) and "case69" in str(err.value)


def test_congested_branches_of_unknown_feeder():
    with pytest.raises(FlexgameInputError) as err:
        build_system(SystemConfig(congested_branches={"no_such_feeder": ["1-2"]}))
    assert "no_such_feeder" in str(err.value)


@pytest.mark.parametrize("direction", ["sideways", "UP", ""])
def test_bad_direction(direction):
    with pytest.raises(FlexgameInputError) as err:
        build_system(direction=direction)
    message = str(err.value)
    assert f"direction={direction!r}" in message and "up" in message and "down" in message


def test_bad_coupling_load():
    with pytest.raises(FlexgameInputError) as err:
        build_system(SystemConfig(coupling_load="merge"))
    assert "'merge'" in str(err.value) and "replace" in str(err.value)


def test_unknown_feeder_lookup(system):
    with pytest.raises(FlexgameInputError) as err:
        system.feeder("nope")
    assert "'nope'" in str(err.value) and "case69" in str(err.value)


def _tables(case) -> dict:
    """A loaded case as a dict of MATPOWER tables (rows of numbers, MATPOWER units)."""
    return {"name": case.name, "baseMVA": case.base_mva, "bus": case.bus.to_numpy(),
            "gen": case.gen.to_numpy(), "branch": case.branch.to_numpy()}


def test_system_from_in_memory_cases(system):
    """The default system built from dicts of MATPOWER tables (the loaded cases' own numbers)
    is the default system: same need, ratings, feeders and summary."""
    config = SystemConfig(transmission_case=_tables(load_case("case14")),
                          feeders=[FeederSpec(_tables(load_case("case69")), 14),
                                   FeederSpec(_tables(load_case("case141")), 9)])
    memory = build_system(config)
    assert memory.tso_need_mw == system.tso_need_mw
    np.testing.assert_array_equal(memory.transmission.rating_mw, system.transmission.rating_mw)
    for a, b in zip(memory.feeders, system.feeders):
        assert a.name == b.name
        np.testing.assert_array_equal(a.rating_mva, b.rating_mva)
    assert memory.summary() == system.summary()


def test_in_memory_case_errors_name_the_problem():
    bad = {"name": "grid", "baseMVA": 100, "bus": [[1, 3, 0]], "gen": [[1, 10, 0]]}
    with pytest.raises(FlexgameInputError, match=r"in-memory case 'grid' lacks \['branch'\]"):
        build_system(SystemConfig(transmission_case=bad, feeders=[]))
    with pytest.raises(FlexgameInputError, match="transmission_case=3 must be a case name"):
        build_system(SystemConfig(transmission_case=3, feeders=[]))


def test_transmission_only_system_clears_in_every_scheme():
    """Without feeders there are no DSO markets: every scheme reduces to the TSO market of the
    transmission bids (the common market has the same constraints), at the same cost."""
    tx_only = build_system(SystemConfig(feeders=[]))
    assert tx_only.feeders == [] and "Feeder" not in tx_only.summary()
    bids = generate_bids(tx_only, BidConfig(), np.random.default_rng(0))
    assert set(bids.level) == {"transmission"}
    common = build_scheme(tx_only, bids, "common").clear()
    assert common.unmet_need_mw == pytest.approx(0.0, abs=1e-6)
    for name in SCHEMES:
        result = build_scheme(tx_only, bids, name).clear()
        assert [l.name for l in result.layers] == (["common"] if name == "common" else ["tso"])
        assert result.cost_eur == pytest.approx(common.cost_eur, rel=1e-9), name
