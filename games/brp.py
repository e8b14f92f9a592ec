"""The BRP's implicit-DR bilevel in the single imbalance market, per quarter-hour.

Seed 000 (ALEXANDER D4.1) KER 3, Figure 3, and Vatandoust et al. (EEM 2023), restated with
corrections in flexgame's IDR reference §2. A balance responsible party (BRP) that bought
P^DA [MW] day-ahead at lambda^DA [EUR/MWh] sets a retail price lambda^DR in
[0, lambda^DR_max] for its implicit DR; the DR answers along its flexibility curve
(:class:`~flexgame.markets.flexibility_curve.FlexibilityCurve`), and the deviation of its
demand D from P^DA is the BRP's imbalance position, settled at the single imbalance price of
the SIM (:mod:`flexgame.markets.imbalance`), which that deviation moves:

    max  dt [ lambda^SI (Dp+ - Dp-) + lambda^DR D - lambda^DA P^DA ],  D = P^DA + Dp- - Dp+
    s.t. 0 <= Dp- <= (Pmax - P^DA) U-  (U- = 1 only if S > 0: the system is long)
         0 <= Dp+ <= (P^DA - Pmin) U+  (U+ = 1 only if S < 0: the system is short)
         D optimal for the flexibility curve at lambda^DR,
         lambda^SI a dual of the SIM's balance at the residual R = S - Dp- + Dp+.

Profit report (the paper's Table II): SIM = dt lambda^SI (Dp+ - Dp-), DR Net =
dt (lambda^DR D - lambda^DA P^DA), Net = SIM + DR Net [EUR].

The bilevel is optimistic (the leader's best follower answer where the followers are
indifferent): a block priced exactly at lambda^DR takes the fill best for the BRP, and where
the SIM's dual is not unique (R at 0 or at the end of a bid) the price is the end of the dual
interval that favours the BRP; at R = 0 this is the IDR reference's rule (the cheapest bid in
the direction of S). Two exact solvers, which the tests hold equal:

* :func:`solve_by_enumeration`: quarter-hours are independent and every piece of the problem
  is piecewise linear, so the optimum is at a breakpoint: lambda^DR at a block's w (the profit
  rises with lambda^DR between them, D being constant) or at lambda^DR_max or 0, and D at an end
  of the curve's demand interval at that price or where the residual crosses a merit-order
  breakpoint (between them the price is constant and the profit linear in D).
* :func:`solve_mpec`: one MILP on HiGHS, the KKT conditions of both lower levels with big-M
  complementarity, the bilinear terms replaced by duality: lambda^DR D = lambda^DR Pmin +
  sum_b w_b p_b - e sum_b mu_b (stationarity and complementarity of the curve's LP) and
  lambda^SI (Dp- - Dp+) = SIM cost + lambda^SI S + sum_r Smax_r beta_r (strong duality of the
  SIM), both exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.flexibility_curve import FlexibilityCurve
from flexgame.markets.imbalance import BOUNDARY_TOLERANCE_MW, MeritOrder, ReserveBids

QUARTER_HOUR_H = 0.25


@dataclass(frozen=True)
class BRPSlot:
    """What the BRP faces in one quarter-hour.

    Attributes:
        curve: the flexibility curve it believes its DR follows.
        reserve: the TSO's reserve bids.
        system_imbalance_mw: S, the system imbalance before the BRP's response [MW]
            (> 0: surplus, downward reserves; < 0: deficit).
        day_ahead_mw: P^DA [MW]; outside the curve's [Pmin, Pmax] (a scenario of a DR that
            cannot consume it) the BRP has no deviation its indicators admit.
        day_ahead_price: lambda^DA [EUR/MWh].
        max_retail_price: lambda^DR_max [EUR/MWh] (>= 0).
        dt_h: the quarter-hour [h].
    """

    curve: FlexibilityCurve
    reserve: ReserveBids
    system_imbalance_mw: float
    day_ahead_mw: float
    day_ahead_price: float
    max_retail_price: float
    dt_h: float = QUARTER_HOUR_H

    def __post_init__(self):
        c = self.curve
        if not self.max_retail_price >= 0:
            raise FlexgameInputError(f"max_retail_price={self.max_retail_price:g} must be >= 0")
        reach = abs(self.system_imbalance_mw) + (c.p_max - c.p_min)
        side = self.reserve.down_mw if self.system_imbalance_mw > 0 else self.reserve.up_mw
        if reach > side.sum():
            raise FlexgameInputError(
                f"system_imbalance_mw={self.system_imbalance_mw:g}: the reserve bids "
                f"({side.sum():g} MW in that direction) must cover the imbalance plus the "
                f"portfolio's range ({reach:g} MW)")

    def deviation_bounds(self) -> tuple[float, float]:
        """(lowest, highest) deviation D - P^DA [MW] the direction indicators allow."""
        if self.system_imbalance_mw > 0:
            return 0.0, self.curve.p_max - self.day_ahead_mw
        if self.system_imbalance_mw < 0:
            return self.curve.p_min - self.day_ahead_mw, 0.0
        return 0.0, 0.0


@dataclass(frozen=True)
class BRPDecision:
    """The BRP's decision in one quarter-hour and its settlement.

    Attributes:
        retail_price: lambda^DR [EUR/MWh].
        demand_mw: the DR's demand D [MW].
        up_mw: Dp+ = max(P^DA - D, 0), less consumption [MW].
        down_mw: Dp- = max(D - P^DA, 0), more consumption [MW].
        imbalance_price: lambda^SI [EUR/MWh].
        sim_eur, dr_net_eur, net_eur: the profit's parts and total [EUR].
    """

    retail_price: float
    demand_mw: float
    up_mw: float
    down_mw: float
    imbalance_price: float
    sim_eur: float
    dr_net_eur: float
    net_eur: float

    def __repr__(self) -> str:
        return (f"BRPDecision(lambda_DR {self.retail_price:.2f} EUR/MWh, D {self.demand_mw:.2f}"
                f" MW, Dp+ {self.up_mw:.2f} / Dp- {self.down_mw:.2f} MW, lambda_SI "
                f"{self.imbalance_price:.2f} EUR/MWh, net {self.net_eur:.2f} EUR)")


def settle(slot: BRPSlot, retail_price: float, demand_mw: float,
           imbalance_price: float) -> BRPDecision:
    """The BRP's profit parts [EUR] for a decision (IDR reference §2)."""
    deviation = demand_mw - slot.day_ahead_mw
    up, down = max(-deviation, 0.0), max(deviation, 0.0)
    sim = slot.dt_h * imbalance_price * (up - down)
    dr_net = slot.dt_h * (retail_price * demand_mw - slot.day_ahead_price * slot.day_ahead_mw)
    return BRPDecision(float(retail_price), float(demand_mw), up, down, float(imbalance_price),
                       sim, dr_net, sim + dr_net)


def favourable_price(merit: MeritOrder, residual: float, deviation: float) -> float:
    """The imbalance price at ``residual`` [MW] best for a BRP deviating by ``deviation``
    [MW] (D - P^DA): the low end of the dual interval when it buys imbalance energy
    (deviation > 0), else the high end."""
    low, high = merit.price_interval(residual)
    return low if deviation > 0 else high


def candidate_prices(slot: BRPSlot) -> np.ndarray:
    """Retail prices [EUR/MWh] among which an optimum lies: 0, lambda^DR_max and every
    block's w in between."""
    w = slot.curve.w
    inside = w[(w >= 0) & (w <= slot.max_retail_price)]
    return np.unique(np.r_[0.0, slot.max_retail_price, inside])


def _best_at_price(slot: BRPSlot, merit: MeritOrder, price: float) -> BRPDecision | None:
    """The BRP's best decision at retail ``price``: over the demands the curve allows there
    and the direction indicators admit, the ends and the merit-order crossings (between
    them the imbalance price is constant and the profit linear in the demand); None when no
    such demand exists. Ties: the smallest deviation."""
    s, p_da = slot.system_imbalance_mw, slot.day_ahead_mw
    dev_low, dev_high = slot.deviation_bounds()
    d_low, d_high = slot.curve.response(price)
    lo, hi = max(d_low - p_da, dev_low), min(d_high - p_da, dev_high)
    if lo > hi + BOUNDARY_TOLERANCE_MW:
        return None
    hi = max(hi, lo)
    crossings = s - merit.breakpoints()  # residual S - deviation on a breakpoint
    best, best_key = None, None
    for dev in np.unique(np.r_[lo, hi, crossings[(crossings > lo) & (crossings < hi)]]):
        decision = settle(slot, price, p_da + dev, favourable_price(merit, s - dev, dev))
        key = (round(decision.net_eur, 9), -abs(dev))
        if best_key is None or key > best_key:
            best, best_key = decision, key
    return best


def solve_by_enumeration(slot: BRPSlot, merit: MeritOrder | None = None) -> BRPDecision:
    """The BRP's optimal decision by enumerating the breakpoints (module docstring). Among
    equally profitable decisions: the highest retail price, then the smallest deviation."""
    merit = MeritOrder(slot.reserve) if merit is None else merit
    best, best_key = None, None
    for price in candidate_prices(slot):
        decision = _best_at_price(slot, merit, price)
        if decision is None:
            continue  # no demand at this price respects the direction indicators
        key = (round(decision.net_eur, 9), price)
        if best_key is None or key > best_key:
            best, best_key = decision, key
    if best is None:
        raise FlexgameInputError("the BRP has no feasible decision: no retail price in "
                                 f"[0, {slot.max_retail_price:g}] gives a demand its direction "
                                 "indicators allow")
    return best


def _fallback_decision(slot: BRPSlot, merit: MeritOrder, price: float) -> BRPDecision:
    """A scenario's decision at a retail ``price`` at which no demand of its curve respects
    the direction indicators: the curve's demand nearest to the day-ahead position, settled
    like any imbalance (the standard price rule): the DR cannot follow the BRP's intention."""
    d_low, d_high = slot.curve.response(price)
    demand = float(np.clip(slot.day_ahead_mw, d_low, d_high))
    residual = slot.system_imbalance_mw - (demand - slot.day_ahead_mw)
    return settle(slot, price, demand, merit.price(residual, slot.system_imbalance_mw))


def solve_scenarios(slots: list[BRPSlot], weights=None) -> tuple[float, list[BRPDecision]]:
    """The scenario-based bilevel of SBVOIO (seed 000 KER 3 §4.2; IDR reference §4): one
    non-anticipative retail price for several flexibility curves (scenarios of the DR's
    response, e.g. quantile fits), maximising the probability-weighted profit; each scenario
    answers the common price along its own curve (its best demand where indifferent) and is
    settled at its own imbalance price. ``slots`` differ only in their curves. Exact by
    enumeration: the expected profit is a sum of the scenarios' piecewise-linear profits, so
    an optimum lies at a candidate price of some scenario. Prices at which every scenario
    can respect the direction indicators come first; only if there is none, a scenario that
    cannot is settled as it ends up (:func:`_fallback_decision`). Returns (retail price
    [EUR/MWh], the scenarios' decisions); ties go to the highest price."""
    weights = np.full(len(slots), 1.0 / len(slots)) if weights is None else \
        np.asarray(weights, dtype=float) / np.sum(weights)
    merit = MeritOrder(slots[0].reserve)
    prices = np.unique(np.concatenate([candidate_prices(s) for s in slots]))
    best_key, best = None, None
    for price in prices:
        decisions = [_best_at_price(s, merit, price) for s in slots]
        feasible = all(d is not None for d in decisions)
        decisions = [d if d is not None else _fallback_decision(s, merit, price)
                     for s, d in zip(slots, decisions)]
        key = (feasible, round(float(weights @ [d.net_eur for d in decisions]), 9), price)
        if best_key is None or key > best_key:
            best_key, best = key, (float(price), decisions)
    return best


def solve_mpec(slot: BRPSlot) -> BRPDecision:
    """The BRP's optimal decision from the single-level MILP (module docstring), on HiGHS.

    Raises:
        SolverError: HiGHS returns no optimal solution.
    """
    import pyomo.environ as pyo

    from flexgame.markets.lp import CompiledLP

    c, r = slot.curve, slot.reserve
    s, p_da = slot.system_imbalance_mw, slot.day_ahead_mw
    e, n = c.block_mw, c.n_blocks
    dev_low, dev_high = slot.deviation_bounds()
    all_prices = np.r_[r.up_price, r.down_price]
    price_low, price_high = float(all_prices.min()), float(all_prices.max())
    m_curve = float(np.abs(c.w).max() + slot.max_retail_price + 1.0)  # bounds mu, nu
    m_sim = float(2 * np.abs(all_prices).max() + 1.0)                 # bounds alpha, beta

    m = pyo.ConcreteModel()
    m.B = pyo.RangeSet(0, n - 1)
    m.U = pyo.RangeSet(0, len(r.up_price) - 1)
    m.D = pyo.RangeSet(0, len(r.down_price) - 1)
    m.retail = pyo.Var(bounds=(0.0, slot.max_retail_price))
    m.p = pyo.Var(m.B, bounds=(0.0, e))
    m.mu = pyo.Var(m.B, bounds=(0.0, m_curve))   # dual of p_b <= e
    m.nu = pyo.Var(m.B, bounds=(0.0, m_curve))   # dual of p_b >= 0
    m.full = pyo.Var(m.B, domain=pyo.Binary)     # mu_b > 0 only if p_b = e
    m.empty = pyo.Var(m.B, domain=pyo.Binary)    # nu_b > 0 only if p_b = 0
    m.down_dev = pyo.Var(bounds=(0.0, max(dev_high, 0.0)))  # Dp-
    m.up_dev = pyo.Var(bounds=(0.0, max(-dev_low, 0.0)))    # Dp+
    # the curve's LP: max sum p_b (w_b - retail), 0 <= p_b <= e
    m.stationary = pyo.Constraint(
        m.B, rule=lambda m, b: c.w[b] - m.retail - m.mu[b] + m.nu[b] == 0)
    m.mu_on = pyo.Constraint(m.B, rule=lambda m, b: m.mu[b] <= m_curve * m.full[b])
    m.at_top = pyo.Constraint(m.B, rule=lambda m, b: e - m.p[b] <= e * (1 - m.full[b]))
    m.nu_on = pyo.Constraint(m.B, rule=lambda m, b: m.nu[b] <= m_curve * m.empty[b])
    m.at_zero = pyo.Constraint(m.B, rule=lambda m, b: m.p[b] <= e * (1 - m.empty[b]))
    m.demand = pyo.Constraint(
        expr=c.p_min + sum(m.p[b] for b in m.B) == p_da + m.down_dev - m.up_dev)
    # the SIM: min sum A+ s+ - sum A- s-, sum s+ - sum s- = Dp- - Dp+ - S (dual: price)
    m.s_up = pyo.Var(m.U, bounds=(0.0, None))
    m.s_down = pyo.Var(m.D, bounds=(0.0, None))
    m.price = pyo.Var(bounds=(price_low, price_high))
    names = (("up", m.U, r.up_mw), ("down", m.D, r.down_mw))
    for side, index, cap in names:
        for dual in ("alpha", "beta"):
            setattr(m, f"{dual}_{side}", pyo.Var(index, bounds=(0.0, m_sim)))
            setattr(m, f"{dual}_{side}_on", pyo.Var(index, domain=pyo.Binary))
    m.balance = pyo.Constraint(expr=sum(m.s_up[i] for i in m.U) - sum(m.s_down[i] for i in m.D)
                               == m.down_dev - m.up_dev - s)
    m.cap_up = pyo.Constraint(m.U, rule=lambda m, i: m.s_up[i] <= r.up_mw[i])
    m.cap_down = pyo.Constraint(m.D, rule=lambda m, i: m.s_down[i] <= r.down_mw[i])
    m.stat_up = pyo.Constraint(m.U, rule=lambda m, i: r.up_price[i] - m.price - m.alpha_up[i]
                               + m.beta_up[i] == 0)
    m.stat_down = pyo.Constraint(m.D, rule=lambda m, i: -r.down_price[i] + m.price
                                 - m.alpha_down[i] + m.beta_down[i] == 0)
    m.complementarity = comp = pyo.ConstraintList()
    for side, index, cap in names:
        svar = m.s_up if side == "up" else m.s_down
        alpha, beta = getattr(m, f"alpha_{side}"), getattr(m, f"beta_{side}")
        a_on, b_on = getattr(m, f"alpha_{side}_on"), getattr(m, f"beta_{side}_on")
        for i in index:
            comp.add(alpha[i] <= m_sim * a_on[i])          # alpha > 0 only if s = 0
            comp.add(svar[i] <= cap[i] * (1 - a_on[i]))
            comp.add(beta[i] <= m_sim * b_on[i])           # beta > 0 only if s = Smax
            comp.add(cap[i] - svar[i] <= cap[i] * (1 - b_on[i]))
    sim_cost = (sum(r.up_price[i] * m.s_up[i] for i in m.U)
                - sum(r.down_price[i] * m.s_down[i] for i in m.D))
    beta_cap = (sum(r.up_mw[i] * m.beta_up[i] for i in m.U)
                + sum(r.down_mw[i] * m.beta_down[i] for i in m.D))
    # price x (Dp+ - Dp-) = -(SIM cost + price S + sum Smax beta)  (strong duality)
    sim_revenue = -(sim_cost + s * m.price + beta_cap)
    # retail x D = retail Pmin + sum w_b p_b - e sum mu_b  (the curve's KKT)
    retail_revenue = (c.p_min * m.retail + sum(c.w[b] * m.p[b] for b in m.B)
                      - e * sum(m.mu[b] for b in m.B))
    m.loss = pyo.Objective(expr=-(sim_revenue + retail_revenue), sense=pyo.minimize)
    lp = CompiledLP.from_pyomo(m)
    lp.highs.setOptionValue("mip_rel_gap", 1e-9)
    sol = lp.solve().require_optimal("the BRP's MPEC")
    x = sol.x
    retail = float(x[lp.col(m.retail)])
    demand = p_da + float(x[lp.col(m.down_dev)]) - float(x[lp.col(m.up_dev)])
    return settle(slot, retail, demand, float(x[lp.col(m.price)]))
