"""The SOCP relaxation of a feeder's AC OPF (flexgame.markets.socp; issue 14, item 2).

What theory guarantees and is checked here:
* the plain relaxation's optimum is a lower bound of the AC OPF, so of the AC cost of any
  AC-feasible dispatch (here: the augmented model's, checked AC-feasible with pandapower);
  the augmented model adds constraints, so its optimum is >= the plain one;
* the augmented (conservative) model's dispatch is AC-feasible on the default feeders;
* as impedances go to zero, DistFlow (and so the exact relaxation) tends to LinDistFlow;
* a marginal bid's price is the DLMP of its bus (KKT stationarity), and DLMPs are the
  derivatives of the optimal cost in the bus's demand.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.distribution import Feeder
from flexgame.markets.socp import CURRENT_WEIGHT, FeederSOCP, ac_power_flow, kpis

# --- a hand-made radial feeder: 0 - 1 - 2 - 3 and 1 - 4, 10 MVA base ------------------------


def hand_feeder(rating_12: float = 2.0, scale: float = 1.0) -> Feeder:
    """Loads 0.5 / 1.0 / 1.5 / 0.8 MW at buses 1..4 (tan phi 0.5); r = 0.01, x = 0.02 p.u.
    (x ``scale``); branch 1-2 (feeding bus 2) rated ``rating_12`` MW, the others 10 MW;
    base flow on 1-2 is 2.5 MW (+ losses)."""
    load = np.array([0.0, 0.5, 1.0, 1.5, 0.8])
    return Feeder(
        name="hand", case=SimpleNamespace(name="hand", base_mva=10.0), coupling_bus=1,
        buses=np.arange(1, 6), parent=np.array([-1, 0, 1, 2, 1]), child=np.arange(1, 5),
        r_pu=np.full(4, 0.01 * scale), x_pu=np.full(4, 0.02 * scale),
        load_mw=load, load_mvar=0.5 * load, v_min=np.r_[1.0, np.full(4, 0.9)],
        v_max=np.r_[1.0, np.full(4, 1.1)], rating_mva=np.array([10.0, rating_12, 10.0, 10.0]),
    )


# up bids at bus 3 (below the congested 1-2): 40 EUR/MW x 0.3 MW, 60 EUR/MW x 1.0 MW;
# a down bid at bus 4, 20 EUR/MW x 0.5 MW (never useful for the congestion)
HAND_BUS, HAND_SIGN = np.array([3, 3, 4]), np.array([1.0, 1.0, -1.0])
HAND_TAN, HAND_PRICE, HAND_QTY = np.zeros(3), np.array([40.0, 60.0, 20.0]), np.array([0.3, 1.0, 0.5])


def hand_model(feeder=None, **kw) -> FeederSOCP:
    return FeederSOCP(feeder or hand_feeder(), HAND_BUS, HAND_SIGN, HAND_TAN, **kw)


def ac_objective(model: FeederSOCP, result, ac) -> float:
    """The cost objective evaluated on an AC state (bids, AC losses, the current weight)."""
    f = model.feeder
    v_par = ac.v_pu[f.parent[f.child]] ** 2
    current = ((ac.p_mw**2 + ac.q_mvar**2) / f.base_mva**2 / v_par).sum()
    return result.bid_cost + model.loss_price * ac.losses_mw + CURRENT_WEIGHT * current


@pytest.fixture(scope="module")
def system():
    from flexgame.markets.system import build_system

    return build_system()


@pytest.fixture(scope="module")
def bids(system):
    return generate_bids(system, BidConfig(), np.random.default_rng(3))


def default_case(system, bids, name, **kw):
    f = system.feeder(name)
    model, rows = FeederSOCP.from_bids(f, bids, line_limit=system.feeder_line_limit, **kw)
    p, q = system.feeder_net_demand(f)
    price = bids.price_eur_per_mw.to_numpy()[rows]
    qty = bids.quantity_mw.to_numpy()[rows]
    return model, (p, q, price, qty)


# --- (1) lower bound of AC-feasible dispatches --------------------------------------------


def test_relaxation_below_ac_feasible_cost_hand():
    f = hand_feeder()
    plain, aug = hand_model(f, augmented=False), hand_model(f, augmented=True)
    args = (f.load_mw, f.load_mvar, HAND_PRICE, HAND_QTY)
    rp, ra = plain.solve(*args), aug.solve(*args)
    assert rp.status == ra.status == "optimal"
    assert rp.activation_mw[0] == pytest.approx(0.3, abs=1e-5)  # cheap bid used up
    assert 0.2 < rp.activation_mw[1] < 1.0                      # dear bid marginal
    assert ra.objective >= rp.objective - 1e-5                  # a restriction
    k = kpis(aug, ra)
    assert k["ac_feasible"] and ra.s_over.max() < 1e-6
    ac = ac_power_flow(f, ra.net_mw, ra.net_mvar)
    upper = ac_objective(aug, ra, ac)  # >= AC OPF optimum
    assert rp.cost + rp.penalty <= upper + 1e-6
    assert rp.tightness_rel < 1e-4 and k["max_dv_pu"] < 1e-5  # exact here


@pytest.mark.parametrize("name", ["case69", "case141"])
def test_relaxation_below_ac_feasible_cost_default(system, bids, name):
    plain, args = default_case(system, bids, name, augmented=False)
    aug, _ = default_case(system, bids, name, augmented=True)
    rp, ra = plain.solve(*args), aug.solve(*args)
    assert ra.objective >= rp.objective - 1e-6 * abs(rp.objective)
    k = kpis(aug, ra)
    assert k["ac_feasible"], k
    ac = ac_power_flow(aug.feeder, ra.net_mw, ra.net_mvar)
    assert rp.cost + rp.penalty <= ac_objective(aug, ra, ac) + 1e-6
    assert 0 <= k["gap_bound"] + 1e-6  # the AC cost of its own dispatch is not below it


# --- (2) the augmented model's dispatch is AC-feasible ------------------------------------


@pytest.mark.parametrize("name", ["case69", "case141"])
@pytest.mark.parametrize("tighten", [False, True])
def test_augmented_is_ac_feasible(system, bids, name, tighten):
    model, (p, q, price, qty) = default_case(system, bids, name)
    if tighten:  # a tighter voltage band the bids can still meet: it binds in the base state
        v_min = {"case69": 0.93, "case141": 0.94}[name]
        f = model.feeder
        tight = dataclasses.replace(f, v_min=np.r_[f.v_min[0], np.full(f.n_buses - 1, v_min)])
        assert f.solve(p, q).v_pu.min() < v_min
        model = FeederSOCP(tight, model.bid_bus, model.bid_sign, model.bid_tan_phi,
                           line_limit=system.feeder_line_limit)
    r = model.solve(p, q, price, qty)
    assert r.activation_mw.sum() > 1e-3  # the base state is congested: the market buys
    assert r.s_over.max() < 1e-6 and r.v_low.max() < 1e-8 and r.v_high.max() < 1e-8
    k = kpis(model, r, tol_v=1e-6, tol_line=1e-6)
    assert k["ac_converged"] and k["ac_feasible"], k
    assert k["max_dv_pu"] < 1e-4 and k["tightness_rel"] < 1e-3


# --- (3) LinDistFlow as impedances go to zero ---------------------------------------------


def test_tends_to_lindistflow_for_small_impedances():
    """Fixed activations (the up bids at 0.2 MW each): with r and x scaled by eps, the
    SOCP's flows differ from LinDistFlow's by the losses (O(eps)) and its voltage drops by a
    relative O(eps). (Scaling r alone leaves the reactive losses x f and the |z|^2 f term:
    the limit is LinDistFlow only when both r and x vanish.)"""
    errors = []
    for eps in (1e-1, 1e-2, 1e-4):
        f = hand_feeder(rating_12=10.0, scale=eps)
        m = hand_model(f, augmented=False, objective="feasibility")
        fixed = np.array([0.2, 0.2, 0.0])
        r = m.solve(f.load_mw, f.load_mvar, HAND_PRICE, HAND_QTY, fixed_mw=fixed)
        np.testing.assert_allclose(r.activation_mw, fixed, atol=1e-7)
        lin = f.solve(r.net_mw, r.net_mvar)
        drop = f.v0_sq - lin.v_sq[1:]
        err_v = np.abs((f.v0_sq - r.v_sq[1:]) - drop).max() / drop.max()
        err_p = max(np.abs(r.p_mw - lin.p_mw).max(), np.abs(r.q_mvar - lin.q_mvar).max())
        errors.append((err_v, err_p))
        assert r.tightness_rel < 1e-4
    (v1, p1), (v2, p2), (v4, p4) = errors
    assert v2 < v1 / 5 and v4 < 1e-3 and p2 < p1 / 5 and p4 < 1e-4


# --- (4) DLMPs ------------------------------------------------------------------------------


@pytest.mark.parametrize("augmented", [False, True])
def test_dlmp_is_marginal_bid_price_and_cost_derivative(augmented):
    f = hand_feeder()
    m = hand_model(f, augmented=augmented)
    r = m.solve(f.load_mw, f.load_mvar, HAND_PRICE, HAND_QTY)
    assert 1e-3 < r.activation_mw[1] < HAND_QTY[1] - 1e-3  # bid 1 (60 EUR/MW) is marginal
    assert r.dlmp_p[3] == pytest.approx(60.0, rel=1e-4)
    # not congested, bus 4 prices only (marginal) losses: far below the bids
    assert abs(r.dlmp_p[4]) < 5.0
    # derivative of the optimal objective in the demand at a bus [EUR/MW, EUR/MVAr]
    h = 1e-4
    for bus in (2, 3, 4):
        for kind in ("p", "q"):
            dp, dq = np.zeros(f.n_buses), np.zeros(f.n_buses)
            (dp if kind == "p" else dq)[bus] = h
            up = m.solve(f.load_mw + dp, f.load_mvar + dq, HAND_PRICE, HAND_QTY).objective
            dn = m.solve(f.load_mw - dp, f.load_mvar - dq, HAND_PRICE, HAND_QTY).objective
            dual = (r.dlmp_p if kind == "p" else r.dlmp_q)[bus]
            assert (up - dn) / (2 * h) == pytest.approx(dual, rel=1e-2, abs=1e-2), (bus, kind)


def test_resolve_with_new_prices_reuses_the_model():
    f = hand_feeder()
    m = hand_model(f)
    problem = m.problem
    r1 = m.solve(f.load_mw, f.load_mvar, HAND_PRICE, HAND_QTY)
    r2 = m.solve(f.load_mw, f.load_mvar, np.array([70.0, 65.0, 20.0]), HAND_QTY)
    assert m.problem is problem
    assert r1.activation_mw[0] > r2.activation_mw[0] + 0.1  # the cheap bid became dear
    assert r1.dlmp_p[3] == pytest.approx(60.0, rel=1e-4)
    assert r2.dlmp_p[3] == pytest.approx(65.0, rel=1e-4)    # bid 1 covers it alone


@pytest.mark.parametrize("objective", ["voltage_deviation", "congestion", "feasibility"])
def test_other_objectives_solve(objective):
    f = hand_feeder()
    m = hand_model(f, objective=objective)
    fixed = np.zeros(3) if objective == "feasibility" else None  # evaluate "no bid bought"
    r = m.solve(f.load_mw, f.load_mvar, HAND_PRICE, HAND_QTY, fixed_mw=fixed)
    assert r.status == "optimal"
    if objective == "congestion":  # relieves 1-2 as far as the bids allow
        assert r.activation_mw[:2].sum() > 0.5
    if objective == "feasibility":  # the congestion of the base state stays, as a slack
        assert r.activation_mw.max() < 1e-6 and r.s_over[1] > 0.4


def ac_opf_hand(f: Feeder, model: FeederSOCP) -> tuple[float, np.ndarray]:
    """The AC OPF of the hand-made feeder, exactly, by an independent route: only the two
    upward bids at bus 3 can relieve line 1-2 (the down bid at bus 4 only loads it), they are
    used in merit order (40 before 60 EUR/MW, both far above the 1 EUR/MW loss price, so
    more activation than needed never pays), and the line's AC loading falls monotonically
    with their total activation A: the least feasible A, by bisection on AC power flows, is
    the optimum. Returns (the objective the SOCP minimises, evaluated on that AC state;
    the activations)."""
    def state(total):
        a = np.array([min(total, 0.3), max(total - 0.3, 0.0), 0.0])
        net = f.load_mw.copy()
        net[3] -= a[0] + a[1]
        return a, ac_power_flow(f, net, f.load_mvar)

    low, high = 0.0, 1.3
    assert state(high)[1].loading("active")[1] <= f.rating_mva[1]  # feasible at all bids
    for _ in range(32):  # 1.3 MW / 2^32: 3e-10 MW
        mid = 0.5 * (low + high)
        low, high = (low, mid) if state(mid)[1].loading("active")[1] <= f.rating_mva[1] \
            else (mid, high)
    a, ac = state(high)
    result = SimpleNamespace(bid_cost=float(HAND_PRICE @ a))
    return ac_objective(model, result, ac), a


def test_ac_opf_lies_between_the_plain_and_the_augmented_relaxation():
    """Relaxation: the plain SOCP's optimum is at most the AC OPF's; conservative
    restriction: the augmented SOCP's optimum is at least it (its feasible set lies inside
    the AC one). The AC OPF is solved independently (:func:`ac_opf_hand`); the optimality
    gap of 003 Table 5 is then (AC OPF - SOCP) / AC OPF."""
    f = hand_feeder()
    plain, aug = hand_model(f, augmented=False), hand_model(f, augmented=True)
    args = (f.load_mw, f.load_mvar, HAND_PRICE, HAND_QTY)
    rp, ra = plain.solve(*args), aug.solve(*args)
    opf, a = ac_opf_hand(f, plain)
    assert 0.3 < a.sum() < 1.3  # the dear bid is marginal in the AC OPF too
    tol = 1e-6 * opf  # Clarabel's accuracy (its objective carries slacks of order 1e-7)
    assert rp.objective <= opf + tol
    assert ra.objective >= opf - tol
    gap = (opf - rp.objective) / opf
    assert -1e-6 <= gap < 1e-3  # the relaxation is exact on this radial feeder (tight cone)
