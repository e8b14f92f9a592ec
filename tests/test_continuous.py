"""The continuous network-aware flexibility market (seed 003 §3.2), its auction benchmark and
its Mesa model: matching rules, network safety checked independently with the feeder's
LinDistFlow equations, and auction welfare >= continuous welfare on seeded arrival orders."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from flexgame.agents.continuous import ContinuousMarketModel, Resource
from flexgame.markets.continuous import ContinuousMarket, kpi_table, market_kpis
from flexgame.markets.distribution import Feeder
from flexgame.markets.double_auction import WelfareAuction
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.feeder_limits import FeederLimits
from flexgame.markets.grid_state import GridState
from flexgame.markets.orders import BUY, SELL, Order

TOL = 1e-7


def make_feeder(parent, load_mw, rating_mw, r=0.001, x=0.001, v_limits=(0.9, 1.1)):
    """A radial feeder by hand: buses 1..n (bus 1 the root), ``parent`` per bus index (-1 for
    the root), loads per bus [MW], active-power rating per branch (branch k feeds bus k+1)."""
    n = len(parent)
    case = SimpleNamespace(name="hand", base_mva=10.0, bus=pd.DataFrame({"BASE_KV": [12.66]}))
    return Feeder(name="hand", case=case, coupling_bus=1, buses=np.arange(1, n + 1),
                  parent=np.array(parent), child=np.arange(1, n), r_pu=np.full(n - 1, r),
                  x_pu=np.full(n - 1, x), load_mw=np.array(load_mw, float),
                  load_mvar=np.zeros(n), v_min=np.full(n, v_limits[0]),
                  v_max=np.full(n, v_limits[1]), rating_mva=np.array(rating_mw, float))


def base_state(feeder):
    return GridState(np.zeros(1), {feeder.name: feeder.load_mw.copy()},
                     {feeder.name: feeder.load_mvar.copy()})


def limits_of(feeder, mode="strict"):
    return FeederLimits(feeder, base_state(feeder), "active", mode=mode)


# a branching feeder: 1 - 2 - 3 - 4 and 2 - 5 - 6; base flows 1.6 (1-2), 0.8, 0.3, 0.6, 0.4
BRANCHING = {"parent": [-1, 0, 1, 2, 1, 4], "load_mw": [0.0, 0.2, 0.5, 0.3, 0.2, 0.4],
             "rating_mw": [1.8, 0.9, 0.45, 0.75, 0.5]}


def random_orders(rng, feeder, n, restrictions=("none", "IOC", "FOK", "AON"), first_id=0):
    buses = feeder.buses[1:]
    return [Order(first_id + i, int(rng.choice(buses)), float(rng.uniform(10, 60)),
                  float(rng.uniform(0.02, 0.4)), str(rng.choice(["up", "down"])),
                  float(rng.uniform()), str(rng.choice(restrictions)),
                  tan_phi=float(rng.choice([0.0, 0.3])))
            for i in range(n)]


def independent_violation(feeder, orders, activation):
    """Worst limit excess of the feeder once ``activation`` [MW per order id] is delivered,
    straight from the LinDistFlow equations (Feeder.solve), > 0 when a limit is violated."""
    p, q = feeder.load_mw.copy(), feeder.load_mvar.copy()
    for o in orders:
        a = activation.get(o.order_id, 0.0)
        sign = -1.0 if o.direction == "up" else 1.0  # up lowers net demand
        j = feeder.bus_index(o.bus)
        p[j] += sign * a
        q[j] += sign * a * o.tan_phi
    flow = feeder.solve(p, q)
    return max(np.max(np.abs(flow.p_mw) - feeder.rating_mva),
               np.max(flow.v_sq - feeder.v_max**2), np.max(feeder.v_min**2 - flow.v_sq))


def test_hand_example_network_rejects_best_price_and_matches_next():
    # chain 1 - 2 - 3; branch 2-3 carries 1 MW at its 1 MW rating: a sell at bus 2 (load
    # moved from bus 2 to bus 3) would overload it, a sell at bus 3 would not
    feeder = make_feeder([-1, 0, 1], [0.0, 1.0, 1.0], [10.0, 1.0])
    market = ContinuousMarket(limits_of(feeder))
    market.submit(Order(0, 2, 20.0, 0.5, "up", 0.0))   # best-priced sell, at bus 2
    market.submit(Order(1, 3, 30.0, 0.5, "up", 0.1))   # next sell, at bus 3
    out = market.submit(Order(2, 3, 50.0, 0.5, "down", 0.2))  # buy at bus 3
    assert out.status == "filled" and out.rejected_by_network == 1
    assert [(t.sell_id, t.quantity_mw) for t in market.trades] == [(1, pytest.approx(0.5))]
    assert market.books[SELL].best().order.order_id == 0
    # with 0.2 MW of headroom on 2-3 the best-priced sell gets the feasible 0.2 MW
    feeder = make_feeder([-1, 0, 1], [0.0, 1.0, 1.0], [10.0, 1.2])
    market = ContinuousMarket(limits_of(feeder))
    market.run([Order(0, 2, 20.0, 0.5, "up", 0.0), Order(1, 3, 30.0, 0.5, "up", 0.1),
                Order(2, 3, 50.0, 0.5, "down", 0.2)])
    assert [(t.sell_id, round(t.quantity_mw, 9)) for t in market.trades] == [(0, 0.2), (1, 0.3)]
    # pay-as-bid surplus: (buy 50 - sell 20) x 0.2 + (50 - 30) x 0.3 = 6 + 6 EUR
    assert market.declared_welfare_eur() == pytest.approx((50 - 20) * 0.2 + (50 - 30) * 0.3)


@pytest.mark.parametrize("seed", range(8))
def test_matches_cross_respect_priority_and_strict_limits(seed):
    rng = np.random.default_rng(seed)
    feeder = make_feeder(**BRANCHING)
    orders = random_orders(rng, feeder, 60)
    market = ContinuousMarket(limits_of(feeder, "strict"))
    by_id = {o.order_id: o for o in orders}
    for o in sorted(orders, key=lambda o: o.arrival):
        before = len(market.trades)
        market.submit(o)
        fills = market.trades[before:]
        # price-time priority: one order's fills walk the book from best to worse
        assert [t.resting_priority for t in fills] == sorted(t.resting_priority for t in fills)
        assert independent_violation(feeder, orders, market.activation_mw) <= TOL
    assert market.trades
    for t in market.trades:
        assert t.buy_price >= t.sell_price and t.surplus_eur >= 0
        assert by_id[t.buy_id].side == BUY and by_id[t.sell_id].side == SELL
    for side in (BUY, SELL):  # IOC and FOK never rest
        assert all(e.order.restriction in ("none", "AON") for e in market.books[side].in_priority())
    for o in orders:  # FOK and AON are never filled partly
        if o.restriction in ("FOK", "AON"):
            assert market.activation_mw.get(o.order_id, 0.0) in (
                0.0, pytest.approx(o.quantity_mw, abs=1e-9))
        assert market.activation_mw.get(o.order_id, 0.0) <= o.quantity_mw + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_books_never_cross_without_network_limits(seed):
    """With no binding limit and no AON orders, price-time priority leaves the best buy price
    below the best sell price after every arrival."""
    rng = np.random.default_rng(100 + seed)
    feeder = make_feeder(**{**BRANCHING, "rating_mw": [1e3] * 5})
    market = ContinuousMarket(limits_of(feeder))
    for o in random_orders(rng, feeder, 80, restrictions=("none", "IOC", "FOK")):
        market.submit(o)
        buy, sell = market.books[BUY].best(), market.books[SELL].best()
        if buy and sell:
            assert buy.order.price < sell.order.price
    assert market.limits.max_quantity(market.headroom, np.zeros(market.limits.n_rows), 1.0) == 1.0


@pytest.mark.parametrize("mode", ["strict", "no_worsening"])
def test_auction_welfare_bounds_continuous_over_arrival_orders(mode):
    rng = np.random.default_rng(7)
    # no_worsening on a base state with 2-3 over its rating
    rating = BRANCHING["rating_mw"] if mode == "strict" else [1.8, 0.75, 0.45, 0.75, 0.5]
    feeder = make_feeder(**{**BRANCHING, "rating_mw": rating})
    limits = limits_of(feeder, mode)
    orders = random_orders(rng, feeder, 40)
    auction = WelfareAuction(limits, orders)
    best = auction.clear()
    assert best.welfare_eur > 0
    ratios = []
    for sample in range(40):
        times = np.random.default_rng(sample).permutation(len(orders))
        shuffled = [Order(o.order_id, o.bus, o.price, o.quantity_mw, o.direction, float(t),
                          o.restriction, tan_phi=o.tan_phi) for o, t in zip(orders, times)]
        market = ContinuousMarket(limits).run(shuffled)
        ratios.append(market.declared_welfare_eur() / best.welfare_eur)
        assert market.declared_welfare_eur() <= best.welfare_eur + 1e-7
        if mode == "no_worsening":  # the violated row never got worse
            assert np.all(market.headroom >= np.minimum(limits.base_headroom, 0) - 1e-7)
    assert len(set(np.round(ratios, 9))) > 1  # the arrival order matters


def test_auction_lp_is_optimal_against_brute_force_on_a_tiny_instance():
    # one buy and two sells at the same bus, no network limit: the auction takes the cheaper
    feeder = make_feeder([-1, 0, 1], [0.0, 1.0, 1.0], [10.0, 10.0])
    orders = [Order(0, 3, 50.0, 1.0, "down", 0.0), Order(1, 3, 20.0, 0.6, "up", 0.0),
              Order(2, 3, 30.0, 0.6, "up", 0.0)]
    result = WelfareAuction(limits_of(feeder), orders).clear()
    assert result.accepted_mw == pytest.approx([1.0, 0.6, 0.4], abs=1e-9)
    assert result.welfare_eur == pytest.approx(0.6 * 30 + 0.4 * 20)


def test_fok_and_aon_all_or_nothing_and_ioc_cancel():
    feeder = make_feeder([-1, 0, 1], [0.0, 1.0, 1.0], [10.0, 10.0])
    market = ContinuousMarket(limits_of(feeder))
    market.submit(Order(0, 3, 20.0, 0.3, "up", 0.0))
    assert market.submit(Order(1, 3, 50.0, 0.5, "down", 0.1, "FOK")).status == "cancelled"
    assert market.submit(Order(2, 3, 50.0, 0.5, "down", 0.2, "AON")).status == "rested"
    assert not market.trades
    out = market.submit(Order(3, 3, 50.0, 0.5, "down", 0.3, "IOC"))
    assert out.status == "partial_cancelled" and out.matched_mw == pytest.approx(0.3)
    # the resting AON buy (0.5 MW) is matched only by a sell covering all of it
    assert market.submit(Order(4, 3, 10.0, 0.4, "up", 0.4)).status == "rested"
    assert market.submit(Order(5, 3, 10.0, 0.5, "up", 0.5)).matched_mw == pytest.approx(0.5)
    assert market.trades[-1].buy_id == 2


def test_bad_input_is_named():
    feeder = make_feeder([-1, 0, 1], [0.0, 1.0, 1.0], [10.0, 0.5])
    with pytest.raises(FlexgameInputError, match="strict"):
        limits_of(feeder, "strict")
    with pytest.raises(FlexgameInputError, match="restriction"):
        Order(0, 2, 10.0, 1.0, "up", 0.0, "GTC")
    with pytest.raises(FlexgameInputError, match="quantity_mw"):
        Order(0, 2, 10.0, 0.0, "up", 0.0)
    market = ContinuousMarket(limits_of(feeder, "no_worsening"))
    with pytest.raises(FlexgameInputError, match="no bus 9"):
        market.submit(Order(0, 9, 10.0, 1.0, "up", 0.0))


def test_kpis_add_up():
    rng = np.random.default_rng(3)
    feeder = make_feeder(**BRANCHING)
    orders = random_orders(rng, feeder, 50)
    truthful = [Order(o.order_id, o.bus, o.price, o.quantity_mw, o.direction, o.arrival,
                      o.restriction, tan_phi=o.tan_phi,
                      true_value=o.price * (1.1 if o.side == BUY else 0.9)) for o in orders]
    market = ContinuousMarket(limits_of(feeder)).run(truthful)
    k = market_kpis([market])
    assert k["transactions"] == len(market.trades) > 0
    assert k["social_welfare"] == pytest.approx(
        k["buyer_surplus"] + k["seller_surplus"] + k["market_surplus"])
    assert min(k["buyer_surplus"], k["seller_surplus"], k["market_surplus"]) >= 0
    assert 0 < k["utilisation_buy"] <= 100 and 0 < k["utilisation_sell"] <= 100
    table = kpi_table(k)
    assert list(table.columns) == ["kpi", "value", "unit"] and table.unit.notna().all()


def _model(seed):
    feeder = make_feeder(**BRANCHING)
    rng = np.random.default_rng(11)
    resources = [Resource(f"fsp{i}", "hand", int(rng.choice(feeder.buses[1:])),
                          str(rng.choice(["up", "down"])), float(rng.uniform(0.05, 0.3)),
                          float(rng.uniform(10, 60)), restriction=str(rng.choice(["none", "IOC"])))
                 for i in range(30)]
    return ContinuousMarketModel([limits_of(feeder)], resources, steps=6,
                                 orders_per_resource=2, rng=seed).run()


def test_mesa_model_reproducible_and_safe():
    a, b, c = _model(5), _model(5), _model(6)
    assert a.trade_table().equals(b.trade_table())
    assert [o.arrival for o in a.orders()] == [o.arrival for o in b.orders()]
    assert [o.arrival for o in a.orders()] != [o.arrival for o in c.orders()]
    assert sum(len(f.submitted) for f in a.fsps) == 60 and a.done
    market = a.markets[0]
    assert independent_violation(market.limits.feeder, a.orders(), market.activation_mw) <= TOL
    welfare = WelfareAuction(market.limits, a.orders()).clear().welfare_eur
    assert market.declared_welfare_eur() <= welfare + 1e-7


def test_study_writes_its_outputs_and_the_auction_bounds_every_sample(tmp_path):
    from flexgame.experiments.continuous_study import run, write

    study = run(samples=3, seed=1, ac_session=False)
    s = study.samples
    assert len(s) == 3 and (s.declared_welfare <= s.welfare_auction + 1e-6).all()
    assert s.welfare_auction.nunique() == 1  # the same orders: only the arrival order varies
    assert (s.welfare_auction <= s.welfare_auction_no_network + 1e-6).all()
    assert ((s.welfare_ratio > 0) & (s.welfare_ratio <= 1 + 1e-9)).all()
    net = study.network.set_index("state")
    assert list(net.index) == ["base state", "after continuous", "after auction"]
    base = net.loc["base state"]
    for after in ("after continuous", "after auction"):  # no_worsening, in the linear model
        assert net.loc[after, "congestions_linear"] <= base.congestions_linear
        assert net.loc[after, "max_congestion_linear_pct"] <= base.max_congestion_linear_pct + 1e-6
    report = write(study, tmp_path)
    text = report.read_text()
    assert "| transactions | - |" in text and "welfare_ratio.png" in text
    assert {"samples.csv", "kpis.csv", "network_check.csv", "welfare_ratio.png", "report.md"} <= {
        p.name for p in tmp_path.iterdir()}
    with pytest.raises(FlexgameInputError, match="samples"):
        run(samples=0)


def test_cli_bad_samples_exits_2(capsys):
    from flexgame.experiments.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["continuous", "--samples", "0"])
    assert exit_info.value.code == 2
    assert "samples=0" in capsys.readouterr().err


def test_ac_check_shrinks_a_match_the_lossless_model_accepts():
    """Branch 2-3 ends at exactly its 1 MW rating in LinDistFlow after the match; the AC
    power flow adds the line's losses at its sending end, so the AC check confirms less."""
    from flexgame.markets.ac_assessment import run_power_flow, feeder_net

    feeder = make_feeder([-1, 0, 1], [0.0, 0.3, 0.7], [10.0, 1.0], r=0.05, x=0.05)
    orders = [Order(0, 2, 20.0, 0.3, "up", 0.0), Order(1, 3, 50.0, 0.3, "down", 0.1)]
    linear = ContinuousMarket(limits_of(feeder)).run(orders)
    assert linear.volume_mw == pytest.approx(0.3)
    ac = ContinuousMarket(limits_of(feeder), network_check="ac").run(orders)
    assert 0 < ac.volume_mw < 0.3 and ac.ac.power_flows >= 2
    net = feeder_net(feeder)  # the confirmed state, by a fresh power flow
    net.load["p_mw"] = feeder.load_mw + ac.delta_p
    net.load["q_mvar"] = feeder.load_mvar + ac.delta_q
    assert run_power_flow(net, True)
    res = net.res_line
    loading = np.maximum(res.p_from_mw.abs(), res.p_to_mw.abs()).to_numpy()
    assert np.all(loading <= feeder.rating_mva + 1e-9)
    with pytest.raises(FlexgameInputError, match="network_check"):
        ContinuousMarket(limits_of(feeder), network_check="socp")


def test_ac_refused_resting_aon_leaves_the_confirmed_state():
    """Same feeder as above: the AC check confirms less than the 0.3 MW LinDistFlow allows,
    so a resting AON sell of 0.3 MW is refused whole; the market's AC excesses must stay
    those of the confirmed (unchanged) state, not of the refused trial."""
    feeder = make_feeder([-1, 0, 1], [0.0, 0.3, 0.7], [10.0, 1.0], r=0.05, x=0.05)
    market = ContinuousMarket(limits_of(feeder), network_check="ac")
    market.submit(Order(0, 2, 20.0, 0.3, "up", 0.0, "AON"))
    flows = market.ac.power_flows
    out = market.submit(Order(1, 3, 50.0, 0.3, "down", 0.1))
    assert out.status == "rested" and out.rejected_by_network == 1 and not market.trades
    assert market.ac.power_flows == flows + 1  # the whole quantity only, no halving
    assert np.allclose(market.ac_excess, market.ac.excess(market.delta_p, market.delta_q))


@pytest.mark.parametrize("seed", range(4))
def test_every_skipped_better_candidate_was_infeasible(seed):
    """Brute force on the walk of the book: every crossing resting order that an incoming
    order passed over, or filled only partly while both still had quantity, could not take
    even 1 kW more without breaking a limit in the independent LinDistFlow check."""
    rng = np.random.default_rng(200 + seed)
    feeder = make_feeder(**BRANCHING)
    orders = random_orders(rng, feeder, 70, restrictions=("none", "IOC"))
    market = ContinuousMarket(limits_of(feeder, "strict"))
    skipped_checked = 0
    for o in sorted(orders, key=lambda o: o.arrival):
        book = market.books[SELL if o.side == BUY else BUY]
        snapshot = [(e.order, e.remaining_mw) for e in book.in_priority()]
        activation = dict(market.activation_mw)
        before = len(market.trades)
        market.submit(o)
        fills = {(t.sell_id if o.side == BUY else t.buy_id): t.quantity_mw
                 for t in market.trades[before:]}
        left = o.quantity_mw
        for resting, resting_mw in snapshot:
            if left <= 1e-9 or not o.crosses(resting):
                break
            if resting.order_id in fills:
                q = fills[resting.order_id]
                for oid in (o.order_id, resting.order_id):
                    activation[oid] = activation.get(oid, 0.0) + q
                left -= q
                if q >= min(left + q, resting_mw) - 1e-9:
                    continue  # filled as far as either side allowed
            trial = dict(activation)  # skipped, or filled partly: at the network's limit
            for oid in (o.order_id, resting.order_id):
                trial[oid] = trial.get(oid, 0.0) + 1e-3
            assert independent_violation(feeder, orders, trial) > 1e-9
            skipped_checked += 1
    assert skipped_checked > 0
