"""SOCP relaxation of the AC OPF of a radial feeder (FLEXGRID D5.1 §3.1, seed 003 eqs (1)-(20)).

The printed equations of 003 are partly garbled; they are rebuilt here from the branch-flow
model (Farivar & Low, IEEE TPS 2013) and the augmented relaxation of Nick, Cherkaoui, Le Boudec
& Paolone, "An exact convex formulation of the optimal power flow in radial distribution
networks including transverse components", IEEE TAC 63(3), 2018, which 003 cites as [14].

Notation (003's, for a line l = k of the feeder, from its parent bus i = up(l) to its child
bus j = l; everything in p.u. on the feeder's ``base_mva`` inside the model):

* s_j = p_j + j q_j: net withdrawal at bus j (base net demand minus the bids' net upward
  activation at j: an upward bid lowers net demand, a downward bid raises it; reactive change
  = active change x the bid's ``tan_phi``, as in :mod:`flexgame.markets.grid_state`);
* S^t_k = P_k + j Q_k: sending-end flow entering line k at i; S^b_k = S^t_k - z_k f_k the
  receiving-end flow leaving it at j; f_k the squared current magnitude; v_j the squared
  voltage magnitude; z_k = r_k + j x_k.

flexgame's feeders carry no shunt (transverse) admittance (LinDistFlow data): b_l = 0 in every
equation below, which removes the j(v_up + v_l) b_l terms of (3), (4), (5), (10), (11),
(13), (14), (20), and makes S^b = S^t for the lossless auxiliary flows.

Constraints of the relaxed OPF (:class:`FeederSOCP`, both variants):

* (2)+(3)  DistFlow balance per non-root bus j (rows ``p_balance``, ``q_balance``):
  P_k - r_k f_k - sum_{m child line of j} P_m = p_j, same for Q with x_k;
* (4)      voltage drop: v_j = v_i - 2 (r_k P_k + x_k Q_k) + (r_k^2 + x_k^2) f_k, v_root = v0;
* (20)     the relaxed (5): f_k v_i >= P_k^2 + Q_k^2, a rotated second-order cone
  ||(2P, 2Q, f - v_i)|| <= f + v_i;
* (6)      v_min^2 <= v_j + v_low_j, v_j - v_high_j <= v_max^2 (slacks, p.u.^2);
* (8)      line limits as flexgame sets them (``line_limit``): |P| <= rating ("active") or
  |S| <= rating ("apparent", the exact circle, no polygon) at both ends of each line, with a
  slack ``s_over`` [MW or MVA]; flexgame's feeders have no ampacities, so (7) is not used;
* (9)      s_j in its feasible set: 0 <= a_b <= quantity_b for every bid (a_min <= a when a
  dispatch is fixed).

The augmented variant (``augmented=True``, the default; Nick et al.'s conservative model)
adds, per line k:

* (10)+(15) lossless flows P^_k, Q^_k = the subtree sums of the net withdrawals (the
  LinDistFlow flows, affine in the activations);
* (11)     lossless voltage v-_j = v-_i - 2 (r_k P^_k + x_k Q^_k), v-_root = v0: an upper bound
  of the voltage;
* (12)+(15) upper-bound flows: P-^t_k - r_k f-_k - sum_{m child of j} P-^t_m = p_j (same for
  Q), receiving end P-^b_k = P-^t_k - r_k f-_k;
* (13)     f-_k v_j >= max{P^_k^2, (P-^b_k)^2} + max{Q^_k^2, (Q-^b_k)^2};
* (14)     f-_k v_i >= max{P^_k^2, (P-^t_k)^2} + max{Q^_k^2, (Q-^t_k)^2};
  both written with auxiliaries alpha >= |P^|, |P-|, beta >= |Q^|, |Q-| and one rotated cone
  f- v >= alpha^2 + beta^2 each;
* (16)     v-_j <= v_max^2 (+ the same v_high slack as (6));
* (17)/(18) the line limits applied to the bounding flows: alpha^t_k <= rating ("active") or
  ||(alpha^t_k, beta^t_k)|| <= rating ("apparent") (+ ``s_over``); since
  P^ <= P^b <= P^t <= P-^t and P-^b lies between P^ and P-^t, this bounds |P| and |S| at
  both ends of the line for every f between 0 and f-;
* (19)     P^t_k <= P-^t_k, Q^t_k <= Q-^t_k (the P^max, Q^max bounds of 003 do not restrict
  the feasible set and are left out).

Objectives (``objective``): the terms of 003 eq. (1) that flexgame prices are the bids'
(sum price x activation [EUR]) and the substation import C_0(P^t_head) (``import_price``
[EUR/MW], 0 by default: flexgame's DSO layers do not price imports) plus a loss price
(``loss_price`` [EUR/MW of losses], 1 by default, which keeps the relaxation tight where
nothing else prices the currents; every objective also carries 1e-3 EUR per p.u.^2 of
squared current, ``CURRENT_WEIGHT``, for lines without resistance); penalties of slacks as
:class:`Penalties`
(line [EUR/MW or MVA], voltage [EUR/(p.u.^2)]).

* "cost" (default): bid cost + loss cost + import cost + penalties;
* "voltage_deviation": ``weight`` x sum_j |v_j - 1| [p.u.^2] + penalties + 1e-6 x cost;
* "congestion": ``weight`` x the largest line loading (share of its rating) + penalties +
  1e-6 x cost;
* "feasibility": penalties + loss cost only (the empty objective of 003, with the dispatch
  fixed by :meth:`FeederSOCP.solve`'s ``fixed_mw``: the slacks measure its infeasibility).

DLMPs: minus the duals of the balance rows (cvxpy's equality dual is -dJ/d(rhs)), divided by
base_mva; in the augmented variant the net demand is also the right-hand side of the balances
of (10) and (12), and the DLMP sums the duals of the three rows: DLMP_j = dJ*/d(net demand at j) [EUR/MWh per MW, or EUR/MW for a one-hour
product], active (rows (2)) and reactive (EUR/MVArh) for every non-root bus; > 0 when serving
one more MW at j costs more. The root bus has no balance row (it is the slack); its DLMP is
reported as ``import_price``.

KPIs of 003 Table 5 that apply: tightness (largest relaxed-constraint residual of (20)),
exactness (difference with, and feasibility under, a pandapower AC power flow of the
solution's net demands: :func:`ac_power_flow`, :func:`kpis`), optimality gap (only a bound:
an AC-feasible dispatch's AC cost bounds the AC OPF from above, the relaxation from below;
no AC OPF is solved here), runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from flexgame.markets.constraints import Penalties
from flexgame.markets.distribution import LINE_LIMITS, Feeder
from flexgame.markets.errors import FlexgameInputError, require_choice

OBJECTIVES = ("cost", "voltage_deviation", "congestion", "feasibility")
TIE_WEIGHT = 1e-6  # weight of the cost in the non-cost objectives (no gratuitous activations)
CURRENT_WEIGHT = 1e-3  # EUR per p.u.^2 of squared current, in every objective: keeps (20)
# tight on lines without resistance, which the loss price does not reach


@dataclass
class SOCPResult:
    """One solve of a :class:`FeederSOCP` (MW, MVAr, EUR; voltages squared p.u.).

    Attributes:
        status: cvxpy status ("optimal", "optimal_inaccurate", ...).
        objective: value of the objective solved [EUR or EUR-equivalent].
        bid_cost: sum price x activation [EUR]; penalty: cost of slacks [EUR];
            loss_cost: loss_price x losses [EUR]; import_cost: import_price x head flow.
        activation_mw: accepted MW per bid.
        net_mw, net_mvar: net demand per bus after the activations.
        p_mw, q_mvar: sending-end flow per branch; f_pu: squared current [p.u.].
        v_sq: squared voltage per bus [p.u.^2].
        losses_mw: sum r f; head_mw: active power the feeder draws at its root
            (root bus demand + flows of the root's lines).
        dlmp_p, dlmp_q: DLMP per bus [EUR/MW, EUR/MVAr] (see the module docstring).
        v_low, v_high [p.u.^2], s_over [MW or MVA]: slacks.
        tightness: max_k (v_i f_k - P_k^2 - Q_k^2) [p.u.^2] (0: the relaxation is exact);
            tightness_rel: the same divided by max_k v_i f_k (the largest squared flow).
        runtime_s: wall time of the solve call (parameters set + cvxpy + Clarabel).
        v_bar_sq, p_hat_mw, p_bar_mw, f_bar_pu: auxiliaries of the augmented variant.
    """

    status: str
    objective: float
    bid_cost: float
    penalty: float
    loss_cost: float
    import_cost: float
    activation_mw: np.ndarray
    net_mw: np.ndarray
    net_mvar: np.ndarray
    p_mw: np.ndarray
    q_mvar: np.ndarray
    f_pu: np.ndarray
    v_sq: np.ndarray
    losses_mw: float
    head_mw: float
    dlmp_p: np.ndarray
    dlmp_q: np.ndarray
    v_low: np.ndarray
    v_high: np.ndarray
    s_over: np.ndarray
    tightness: float
    tightness_rel: float
    runtime_s: float
    extra: dict = field(default_factory=dict)

    @property
    def v_pu(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.v_sq, 0.0))

    @property
    def cost(self) -> float:
        """Bid cost + loss cost + import cost (no penalties) [EUR]."""
        return self.bid_cost + self.loss_cost + self.import_cost


class FeederSOCP:
    """The SOCP relaxation of one radial feeder's AC OPF, built once with cvxpy Parameters
    (net demands, bid prices, bid quantities, lower bounds of activations): re-solving with
    new data does not rebuild (cvxpy caches the canonicalisation; Clarabel solves).

    Args:
        feeder: the radial feeder (r, x in p.u. on ``feeder.base_mva``, ratings in MW or MVA,
            voltage limits in p.u.).
        bid_bus: feeder bus index (0..n_buses-1) of each bid.
        bid_sign: +1 for an upward bid (lowers net demand), -1 for a downward one.
        bid_tan_phi: reactive change per active change of each bid [MVAr/MW].
        line_limit: "active" (|P| <= rating) or "apparent" (|S| <= rating).
        augmented: add Nick et al.'s constraints (10)-(19) (conservative); False: the plain
            relaxation (2)-(4), (20), (6)-(9).
        objective: one of :data:`OBJECTIVES`.
        penalties: slack prices (line, voltage).
        loss_price, import_price: EUR per MW of losses / of head flow.
        weight: weight of the voltage-deviation or congestion measure [EUR per unit].
    """

    def __init__(self, feeder: Feeder, bid_bus, bid_sign, bid_tan_phi, *,
                 line_limit: str = "active", augmented: bool = True, objective: str = "cost",
                 penalties: Penalties | None = None, loss_price: float = 1.0,
                 import_price: float = 0.0, weight: float = 1e4, solver: str = "CLARABEL"):
        import cvxpy as cp

        require_choice("line_limit", line_limit, LINE_LIMITS)
        require_choice("objective", objective, OBJECTIVES)
        self.feeder, self.line_limit, self.augmented = feeder, line_limit, augmented
        self.objective_name, self.solver = objective, solver
        self.penalties = penalties or Penalties()
        self.loss_price, self.import_price = float(loss_price), float(import_price)
        f = feeder
        sb = f.base_mva
        self.bid_bus = np.asarray(bid_bus, dtype=int)
        self.bid_sign = np.asarray(bid_sign, dtype=float)
        self.bid_tan_phi = np.asarray(bid_tan_phi, dtype=float)
        nbid = len(self.bid_bus)
        if not (len(self.bid_sign) == len(self.bid_tan_phi) == nbid):
            raise FlexgameInputError("bid_bus, bid_sign and bid_tan_phi differ in length")
        if nbid and (self.bid_bus.min() < 0 or self.bid_bus.max() >= f.n_buses):
            raise FlexgameInputError(f"a bid bus index is outside feeder {f.name!r}")
        n, m = f.n_buses, f.n_branches
        child = np.asarray(f.child, dtype=int)
        par = np.asarray(f.parent, dtype=int)[child]
        r, x = np.asarray(f.r_pu, float), np.asarray(f.x_pu, float)
        ks = np.arange(m)
        c_child = sp.csr_matrix((np.ones(m), (child, ks)), shape=(n, m))
        c_par = sp.csr_matrix((np.ones(m), (par, ks)), shape=(n, m))
        nonroot = np.arange(1, n)
        # bids -> change of net withdrawal per bus [p.u. per MW activated]
        bcols = np.arange(nbid)
        a_p = sp.csr_matrix((-self.bid_sign / sb, (self.bid_bus, bcols)), shape=(n, max(nbid, 1)))
        a_q = sp.csr_matrix((-self.bid_sign * self.bid_tan_phi / sb, (self.bid_bus, bcols)),
                            shape=(n, max(nbid, 1)))
        self._c_child, self._c_par, self._par, self._child = c_child, c_par, par, child

        # parameters (MW, EUR) -----------------------------------------------------------
        self.demand_p = cp.Parameter(n, name="demand_p")    # net demand [p.u.]
        self.demand_q = cp.Parameter(n, name="demand_q")
        nb1 = max(nbid, 1)
        self.price = cp.Parameter(nb1, name="price")        # EUR/MW
        self.quantity = cp.Parameter(nb1, nonneg=True, name="quantity")  # MW
        self.a_min = cp.Parameter(nb1, nonneg=True, name="a_min")        # MW
        # variables --------------------------------------------------------------------
        self.a = cp.Variable(nb1, name="a")                 # MW
        self.P, self.Q = cp.Variable(m, name="P"), cp.Variable(m, name="Q")
        self.f = cp.Variable(m, nonneg=True, name="f")
        self.v = cp.Variable(n, name="v")
        self.v_low = cp.Variable(n, nonneg=True)
        self.v_high = cp.Variable(n, nonneg=True)
        self.s_over = cp.Variable(m, nonneg=True)           # MW or MVA
        # net withdrawal per bus with the activations [p.u.]
        p_net = self.demand_p + a_p @ self.a
        q_net = self.demand_q + a_q @ self.a
        self._p_net, self._q_net = p_net, q_net
        cons = []
        # (2)+(3): balance at non-root buses (receiving-end flow in, sending-end flows out)
        p_in = c_child @ (self.P - cp.multiply(r, self.f)) - c_par @ self.P
        q_in = c_child @ (self.Q - cp.multiply(x, self.f)) - c_par @ self.Q
        self.p_balance = p_in[nonroot] == p_net[nonroot]
        self.q_balance = q_in[nonroot] == q_net[nonroot]
        cons += [self.p_balance, self.q_balance]
        # (4): voltage drop, v_root = v0
        v_par, v_child = self.v[par], self.v[child]
        cons += [v_child == v_par - 2 * (cp.multiply(r, self.P) + cp.multiply(x, self.Q))
                 + cp.multiply(r**2 + x**2, self.f),
                 self.v[0] == f.v0_sq]
        # (20): f v_i >= P^2 + Q^2 (rotated cone)
        self.cone = cp.SOC(self.f + v_par,
                           cp.vstack([2 * self.P, 2 * self.Q, self.f - v_par]), axis=0)
        cons.append(self.cone)
        # (6): voltage limits with slacks
        vmin2, vmax2 = np.asarray(f.v_min, float) ** 2, np.asarray(f.v_max, float) ** 2
        cons += [self.v + self.v_low >= vmin2, self.v - self.v_high <= vmax2]
        # (8): line limits at both ends (finite ratings only)
        rating = np.asarray(f.rating_mva, float) / sb
        lim = np.flatnonzero(np.isfinite(rating))
        self._lim = lim
        s_over_pu = self.s_over / sb
        p_b, q_b = self.P - cp.multiply(r, self.f), self.Q - cp.multiply(x, self.f)
        if len(lim):
            cap = rating[lim] + s_over_pu[lim]
            if line_limit == "active":
                cons += [cp.abs(self.P[lim]) <= cap, cp.abs(p_b[lim]) <= cap]
            else:
                cons += [cp.SOC(cap, cp.vstack([self.P[lim], self.Q[lim]]), axis=0),
                         cp.SOC(cap, cp.vstack([p_b[lim], q_b[lim]]), axis=0)]
        # (9): bids
        cons += [self.a >= self.a_min, self.a <= self.quantity]

        self.extra_vars = {}
        loading = None
        if augmented:
            # (10)+(15): lossless flows; (11): lossless voltage (upper bound); written as
            # local (sparse) recursions, not as subtree sums (dense rows slow Clarabel down)
            p_hat, q_hat = cp.Variable(m, name="P_hat"), cp.Variable(m, name="Q_hat")
            v_bar = cp.Variable(n, name="v_bar")
            self._hat_p = (c_child @ p_hat - c_par @ p_hat)[nonroot] == p_net[nonroot]
            self._hat_q = (c_child @ q_hat - c_par @ q_hat)[nonroot] == q_net[nonroot]
            cons += [self._hat_p, self._hat_q,
                     v_bar[child] == v_bar[par] - 2 * (cp.multiply(r, p_hat)
                                                       + cp.multiply(x, q_hat)),
                     v_bar[0] == f.v0_sq]
            # (12)+(15): upper-bound flows with upper-bound currents f_bar
            P_bar, Q_bar = cp.Variable(m, name="P_bar"), cp.Variable(m, name="Q_bar")
            f_bar = cp.Variable(m, nonneg=True, name="f_bar")
            pb_in = c_child @ (P_bar - cp.multiply(r, f_bar)) - c_par @ P_bar
            qb_in = c_child @ (Q_bar - cp.multiply(x, f_bar)) - c_par @ Q_bar
            self._bar_p = pb_in[nonroot] == p_net[nonroot]
            self._bar_q = qb_in[nonroot] == q_net[nonroot]
            cons += [self._bar_p, self._bar_q]
            P_bar_b, Q_bar_b = P_bar - cp.multiply(r, f_bar), Q_bar - cp.multiply(x, f_bar)
            al_b, be_b = cp.Variable(m), cp.Variable(m)
            al_t, be_t = cp.Variable(m), cp.Variable(m)
            cons += [al_b >= cp.abs(p_hat), al_b >= cp.abs(P_bar_b),
                     be_b >= cp.abs(q_hat), be_b >= cp.abs(Q_bar_b),
                     al_t >= cp.abs(p_hat), al_t >= cp.abs(P_bar),
                     be_t >= cp.abs(q_hat), be_t >= cp.abs(Q_bar)]
            # (13): f_bar v_j >= alpha_b^2 + beta_b^2 ; (14): f_bar v_i >= alpha_t^2 + beta_t^2
            cons += [cp.SOC(f_bar + v_child, cp.vstack([2 * al_b, 2 * be_b, f_bar - v_child]),
                            axis=0),
                     cp.SOC(f_bar + v_par, cp.vstack([2 * al_t, 2 * be_t, f_bar - v_par]),
                            axis=0)]
            # (16): v_bar <= v_max^2 (same slack as (6))
            cons.append(v_bar - self.v_high <= vmax2)
            # (17)/(18): limits on the bounding flows
            if len(lim):
                cap = rating[lim] + s_over_pu[lim]
                if line_limit == "active":
                    cons.append(al_t[lim] <= cap)
                else:
                    cons.append(cp.SOC(cap, cp.vstack([al_t[lim], be_t[lim]]), axis=0))
            # (19): P^t <= P_bar^t, Q^t <= Q_bar^t
            cons += [self.P <= P_bar, self.Q <= Q_bar]
            self.extra_vars = {"v_bar": v_bar, "p_hat": p_hat, "P_bar": P_bar, "f_bar": f_bar}
            loading = (al_t if line_limit == "active" else cp.norm(cp.vstack([al_t, be_t]), 2,
                                                                    axis=0))
        if loading is None:
            loading = (cp.maximum(cp.abs(self.P), cp.abs(p_b)) if line_limit == "active" else
                       cp.maximum(cp.norm(cp.vstack([self.P, self.Q]), 2, axis=0),
                                  cp.norm(cp.vstack([p_b, q_b]), 2, axis=0)))

        # objective ----------------------------------------------------------------------
        pen = self.penalties
        self._bid_cost = self.price @ self.a if nbid else 0 * cp.sum(self.a)
        self._loss_mw = sb * (r @ self.f)
        root_lines = np.flatnonzero(par == 0)
        self._head_mw = sb * (cp.sum(self.P[root_lines]) + p_net[0])
        self._penalty = (pen.line * cp.sum(self.s_over)
                         + pen.voltage * cp.sum(self.v_low + self.v_high))
        cost = (self._bid_cost + self.loss_price * self._loss_mw
                + self.import_price * self._head_mw)
        self._penalty_f = CURRENT_WEIGHT * cp.sum(self.f)
        if objective == "cost":
            obj = cost + self._penalty + self._penalty_f
        elif objective == "voltage_deviation":
            obj = weight * cp.sum(cp.abs(self.v - 1.0)) + self._penalty + TIE_WEIGHT * cost + self._penalty_f
        elif objective == "congestion":
            if len(lim):
                mu = cp.max(cp.multiply(1.0 / rating[lim], loading[lim]))
            else:
                mu = 0
            obj = weight * mu + self._penalty + TIE_WEIGHT * cost + self._penalty_f
        else:  # feasibility
            obj = self._penalty + self.loss_price * self._loss_mw + self._penalty_f
        self.problem = cp.Problem(cp.Minimize(obj), cons)
        self.n_bids = nbid
        if not self.problem.is_dcp(dpp=True):  # pragma: no cover - a formulation error
            raise AssertionError("FeederSOCP is not DPP")

    @classmethod
    def from_bids(cls, feeder: Feeder, bids, **kwargs) -> tuple["FeederSOCP", np.ndarray]:
        """The model of ``feeder`` for the rows of a flexgame bid table located in it
        (:data:`flexgame.markets.bids.BID_COLUMNS`); returns it with the bid rows' positions
        in the table (price and quantity arrays passed to :meth:`solve` follow them)."""
        from flexgame.markets.bids import direction_sign

        rows = np.flatnonzero((bids.feeder == feeder.name).to_numpy())
        sub = bids.iloc[rows]
        bus = [feeder.bus_index(b) for b in sub.bus]
        return cls(feeder, bus, direction_sign(sub), sub.tan_phi.to_numpy(float), **kwargs), rows

    def solve(self, net_mw, net_mvar, price=None, quantity=None, fixed_mw=None,
              **solver_options) -> SOCPResult:
        """Solve for base net demand per bus [MW, MVAr] (before activations), bid prices
        [EUR/MW] and quantities [MW]; ``fixed_mw``: activations fixed at these values (a
        dispatch to evaluate, e.g. with ``objective="feasibility"``)."""
        import cvxpy as cp

        t0 = time.perf_counter()
        f, sb, nb = self.feeder, self.feeder.base_mva, self.n_bids
        self.demand_p.value = np.asarray(net_mw, float) / sb
        self.demand_q.value = np.asarray(net_mvar, float) / sb
        nb1 = max(nb, 1)
        pad = lambda arr, default: (np.full(nb1, default) if arr is None or nb == 0
                                    else np.asarray(arr, float).reshape(nb))
        self.price.value = pad(price, 0.0)
        qty = pad(quantity, 0.0)
        if nb == 0:
            qty = np.zeros(1)
        if fixed_mw is not None:
            fixed = np.asarray(fixed_mw, float).reshape(nb) if nb else np.zeros(1)
            self.quantity.value = fixed.copy()
            self.a_min.value = fixed.copy()
        else:
            self.quantity.value = qty
            self.a_min.value = np.zeros(nb1)
        self.problem.solve(solver=getattr(cp, self.solver), **solver_options)
        runtime = time.perf_counter() - t0
        status = self.problem.status
        if status not in ("optimal", "optimal_inaccurate"):
            raise FlexgameInputError(f"SOCP of feeder {f.name!r} ended {status}")
        P, Q, fl, v = self.P.value, self.Q.value, self.f.value, self.v.value
        resid = v[self._par] * fl - P**2 - Q**2
        scale = float((v[self._par] * fl).max()) if len(fl) else 0.0
        val = lambda e: float(e.value) if hasattr(e, "value") else float(e)
        dp = np.full(f.n_buses, self.import_price)
        dq = np.zeros(f.n_buses)
        rows_p, rows_q = [self.p_balance], [self.q_balance]
        if self.augmented:  # the net demand is also the right-hand side of (10) and (12)
            rows_p += [self._hat_p, self._bar_p]
            rows_q += [self._hat_q, self._bar_q]
        dp[1:] = -sum(np.asarray(c.dual_value) for c in rows_p) / sb
        dq[1:] = -sum(np.asarray(c.dual_value) for c in rows_q) / sb
        extra = {}
        if self.augmented:
            ev = self.extra_vars
            extra = {"v_bar_sq": np.asarray(ev["v_bar"].value), "p_hat_mw": sb * ev["p_hat"].value,
                     "p_bar_mw": sb * ev["P_bar"].value, "f_bar_pu": ev["f_bar"].value}
        act = np.asarray(self.a.value)[:nb].copy()
        return SOCPResult(
            status=status, objective=float(self.problem.value),
            bid_cost=val(self._bid_cost), penalty=val(self._penalty),
            loss_cost=self.loss_price * val(self._loss_mw),
            import_cost=self.import_price * val(self._head_mw),
            activation_mw=act,
            net_mw=sb * np.asarray(self._p_net.value), net_mvar=sb * np.asarray(self._q_net.value),
            p_mw=sb * P, q_mvar=sb * Q, f_pu=fl, v_sq=v,
            losses_mw=val(self._loss_mw), head_mw=val(self._head_mw),
            dlmp_p=dp, dlmp_q=dq,
            v_low=self.v_low.value, v_high=self.v_high.value, s_over=self.s_over.value,
            tightness=float(resid.max()) if len(resid) else 0.0,
            tightness_rel=float(resid.max() / scale) if len(resid) and scale > 0 else 0.0,
            runtime_s=runtime, extra=extra,
        )


# --- AC power flow (pandapower) and KPIs ---------------------------------------------------

def pandapower_net(feeder: Feeder, net_mw, net_mvar, vn_kv: float = 12.66,
                   min_z_pu: float = 1e-6):
    """A pandapower model of the feeder (lines without shunts, r and x from the feeder's p.u.
    values on ``vn_kv`` and base_mva; impedances below ``min_z_pu`` are raised to it, for
    pandapower's admittance matrix), loads = the net demands [MW, MVAr] (negative: net
    injection), an external grid at the root at sqrt(v0_sq)."""
    import pandapower as pp

    f = feeder
    z_base = vn_kv**2 / f.base_mva
    net = pp.create_empty_network(sn_mva=f.base_mva)
    buses = [pp.create_bus(net, vn_kv=vn_kv, name=str(b)) for b in f.buses]
    pp.create_ext_grid(net, buses[0], vm_pu=float(np.sqrt(f.v0_sq)))
    for k, j in enumerate(f.child):
        r, x = float(f.r_pu[k]), float(f.x_pu[k])
        if np.hypot(r, x) < min_z_pu:
            x = min_z_pu
        pp.create_line_from_parameters(net, buses[f.parent[j]], buses[j], length_km=1.0,
                                       r_ohm_per_km=r * z_base, x_ohm_per_km=x * z_base,
                                       c_nf_per_km=0.0, max_i_ka=1e6)
    for j in range(f.n_buses):
        if net_mw[j] != 0 or net_mvar[j] != 0:
            pp.create_load(net, buses[j], p_mw=float(net_mw[j]), q_mvar=float(net_mvar[j]))
    return net


@dataclass
class ACFlow:
    """AC power-flow state of a feeder (pandapower), in feeder order.

    Attributes:
        converged: Newton-Raphson converged.
        v_pu: voltage magnitude per bus; p_mw, q_mvar: sending-end flow per branch;
        p_recv_mw, q_recv_mvar: receiving-end flow (leaving the line at its child);
        losses_mw: total active losses; head_mw: active power drawn at the root.
    """

    converged: bool
    v_pu: np.ndarray
    p_mw: np.ndarray
    q_mvar: np.ndarray
    p_recv_mw: np.ndarray
    q_recv_mvar: np.ndarray
    losses_mw: float
    head_mw: float

    def loading(self, kind: str) -> np.ndarray:
        """Largest loading of each line over its two ends: |P| or |S| [MW or MVA]."""
        if kind == "active":
            return np.maximum(np.abs(self.p_mw), np.abs(self.p_recv_mw))
        return np.maximum(np.hypot(self.p_mw, self.q_mvar),
                          np.hypot(self.p_recv_mw, self.q_recv_mvar))


def ac_power_flow(feeder: Feeder, net_mw, net_mvar) -> ACFlow:
    """Newton-Raphson AC power flow (pandapower ``runpp``) of the feeder at these net
    demands [MW, MVAr]."""
    import pandapower as pp

    net = pandapower_net(feeder, np.asarray(net_mw, float), np.asarray(net_mvar, float))
    try:
        pp.runpp(net, algorithm="nr", init="flat", max_iteration=50, tolerance_mva=1e-9,
                 numba=False)
    except pp.LoadflowNotConverged:
        nan_b, nan_k = np.full(feeder.n_buses, np.nan), np.full(feeder.n_branches, np.nan)
        return ACFlow(False, nan_b, nan_k, nan_k, nan_k, nan_k, np.nan, np.nan)
    rl = net.res_line
    return ACFlow(True, net.res_bus.vm_pu.to_numpy(), rl.p_from_mw.to_numpy(),
                  rl.q_from_mvar.to_numpy(), -rl.p_to_mw.to_numpy(), -rl.q_to_mvar.to_numpy(),
                  float(rl.pl_mw.sum()), float(net.res_ext_grid.p_mw.sum()))


def kpis(model: FeederSOCP, result: SOCPResult, ac: ACFlow | None = None,
         tol_v: float = 1e-4, tol_line: float = 1e-4) -> dict:
    """KPIs of 003 Table 5 that apply to one solve.

    * tightness / tightness_rel: largest residual of the relaxed (20) (see SOCPResult);
    * exactness: max |V_SOCP - V_AC| [p.u.], max |P_SOCP - P_AC| [MW] over sending-end
      flows, loss difference [MW], and ``ac_feasible``: the AC flow of the solution's net
      demands keeps every voltage within [v_min - tol_v, v_max + tol_v] and every line
      within rating x (1 + tol_line), both widened by the solution's own slacks (a penalised
      violation the solution admits is not counted against exactness);
    * ac_cost: the dispatch's cost under AC (bid cost + loss_price x AC losses + import) and
      gap_bound = (ac_cost - SOCP cost) / |ac_cost|: when the dispatch is AC-feasible without
      slack, the AC OPF optimum lies between the SOCP cost and ac_cost, so the optimality gap
      is at most gap_bound;
    * runtime_s.
    """
    f = model.feeder
    ac = ac or ac_power_flow(f, result.net_mw, result.net_mvar)
    out = {"tightness": result.tightness, "tightness_rel": result.tightness_rel,
           "runtime_s": result.runtime_s, "ac_converged": ac.converged}
    if not ac.converged:
        out.update(ac_feasible=False)
        return out
    v_lo = np.sqrt(np.maximum(np.asarray(f.v_min, float) ** 2 - result.v_low, 0.0)) - tol_v
    v_hi = np.sqrt(np.asarray(f.v_max, float) ** 2 + result.v_high) + tol_v
    load = ac.loading(model.line_limit)
    cap = np.asarray(f.rating_mva, float) * (1 + tol_line) + result.s_over
    v_viol = float(np.maximum(np.maximum(v_lo - ac.v_pu, ac.v_pu - v_hi), 0.0).max())
    line_viol = float(np.maximum(load - cap, 0.0).max()) if f.n_branches else 0.0
    ac_cost = (result.bid_cost + model.loss_price * ac.losses_mw
               + model.import_price * ac.head_mw)
    out.update(
        max_dv_pu=float(np.abs(result.v_pu - ac.v_pu).max()),
        max_dp_mw=float(np.abs(result.p_mw - ac.p_mw).max()) if f.n_branches else 0.0,
        losses_socp_mw=result.losses_mw, losses_ac_mw=ac.losses_mw,
        ac_voltage_violation_pu=v_viol, ac_line_violation=line_viol,
        ac_feasible=bool(v_viol == 0 and line_viol == 0),
        ac_cost=ac_cost, socp_cost=result.cost,
        gap_bound=(ac_cost - result.cost) / max(abs(ac_cost), 1e-9),
    )
    return out
