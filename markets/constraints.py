"""Building blocks of the clearing models: the constraints a market operator clears against.

Each ``add_*`` function declares one group of variables and constraints on a Pyomo model (or
block) and returns the penalty cost of its slacks [EUR], for the caller to add to its
objective. Right-hand sides are left at 0: they hold the grid state (with the headroom of
interface limits), the TSO need and held interface targets, which change between solves in
HiGHS without rebuilding the model (see
:mod:`flexgame.markets.lp`). The market layers (:mod:`flexgame.markets.market_layer`) and the
bid-aggregation MILP (:mod:`flexgame.markets.bid_aggregation`) are written with them.

This is the formulation; building a Pyomo model and compiling it costs 0.1-0.3 s per layer, so
the layers assemble the same LP directly as arrays with the twins of these functions in
:mod:`flexgame.markets.lp_builder` (``add_tso_balance`` -> ``tso_balance``, ...), and the tests
hold the two equal bit for bit. A change here must be made to its twin too. Pyomo is imported
only when a model is built here.

Signs: an accepted MW of an upward bid (+1) raises injection / lowers net demand, a downward
bid (-1) the opposite; every slack is >= 0 and priced by :class:`Penalties`, so an
infeasible layer still returns a solution whose slacks measure what it could not meet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from flexgame.markets.distribution import Feeder
from flexgame.markets.options import option
from flexgame.markets.transmission import TransmissionNetwork

if TYPE_CHECKING:  # Pyomo is imported by the functions that build models (it loads slowly)
    import pyomo.environ as pyo


@dataclass(frozen=True)
class Penalties:
    """Penalty prices of slacks, meant to exceed any bid price so that a layer buys a bid
    before it leaves a need unmet or a limit violated; for unmet need this is checked
    (:meth:`unmet_need_problem`) where bids' prices meet the penalties: the run settings
    (case price ranges, price cap) and the build of a scheme (the bid table's prices).

    Their order is a choice, and grid-safety rankings depend on it. flexgame's order is
    interface > line > unmet_need (validated; by default 1e6 > 1e5 > 1e4):

    * the grid before the TSO's need: a line overload costs more per MW than a MW of unmet
      need, so that where the flexibility on offer cannot both meet the need and keep every
      line within its rating, a market leaves need unmet rather than overload a line (as an
      operator's security rules require; with equal penalties a layer could trade one for the
      other MW for MW, and a common market could keep a congestion that a fragmented one
      relieves);
    * a held interface before the DSO's lines: a held (or fixed) interface flow is a schedule
      the TSO has cleared on, so a DSO layer keeps it and relieves its feeder only with
      activations that leave it unchanged; what it cannot relieve so stays a violation, as
      D3.3 describes for its corrective and TSO-first designs (ml02, ml05), instead of an
      imbalance pushed back onto the TSO after its market has closed.

    ``voltage`` (per p.u.^2) is in other units and not ordered against them.

    Attributes:
        unmet_need: EUR per MW of TSO need left unmet; must exceed every bid price.
        line: EUR per MW (transmission) or MVA (feeder) over a rating; must exceed
            ``unmet_need``.
        voltage: EUR per p.u.^2 of squared voltage outside its limits.
        interface: EUR per MW of deviation from a held interface flow; must exceed ``line``.
    """

    unmet_need: float = option(1e4, low=0, low_open=True)
    line: float = option(1e5, low=0, low_open=True)
    voltage: float = option(1e6, low=0, low_open=True)
    interface: float = option(1e6, low=0, low_open=True)

    def cross_check(self):
        if not self.line > self.unmet_need:
            yield "line", (f"must exceed unmet_need={self.unmet_need:g} EUR/MW: the grid comes "
                           "first, a market must not overload a line to meet need")
        if not self.interface > self.line:
            yield "interface", (f"must exceed line={self.line:g} EUR/MW: a held interface is a "
                                "schedule the TSO cleared on, kept before the DSO's lines")

    def unmet_need_problem(self, price: float, asks: str) -> str | None:
        """What is wrong with :attr:`unmet_need` when a bid may ask ``price`` [EUR/MW], or
        None; ``asks`` names that bid before its price ("bid 12 asks", "case.prices.
        transmission_up of case B reaches"). At or below a bid's price the TSO would rather
        leave its need unmet than buy that bid: the clearing would report need unmet that
        flexibility on offer covers."""
        if self.unmet_need > price:
            return None
        return f"must exceed every bid price: {asks} {price:g} EUR/MW"


@dataclass(frozen=True)
class Activations:
    """The accepted-quantity variables of a model and the bids they stand for.

    Attributes:
        a: Pyomo variable of accepted MW, indexed by position 0..n-1 among the model's bids.
        sign: +1 for an upward bid, -1 for a downward one, per position.
        tan_phi: reactive change per active change of each bid [MVAr/MW].
    """

    a: pyo.Var
    sign: np.ndarray
    tan_phi: np.ndarray

    def net_up(self, positions) -> pyo.Expression:
        """Net upward activation of the bids at ``positions`` [MW]."""
        return sum(self.sign[i] * self.a[i] for i in positions)

    def net_up_reactive(self, positions) -> pyo.Expression:
        """Reactive counterpart of :meth:`net_up` [MVAr] (the bids' power factors)."""
        return sum(self.sign[i] * self.tan_phi[i] * self.a[i] for i in positions)


def positions_at(bus_index: Sequence[int], n_buses: int,
                 positions: Sequence[int] | None = None) -> list[list[int]]:
    """Per bus, the positions of the bids located there (``bus_index[k]`` is the bus of
    ``positions[k]``; default positions 0..n-1)."""
    at: list[list[int]] = [[] for _ in range(n_buses)]
    for i, bus in zip(range(len(bus_index)) if positions is None else positions, bus_index):
        at[bus].append(i)
    return at


def add_tso_balance(m: pyo.ConcreteModel, net_up, penalties: Penalties):
    """TSO balance: net upward activation + unmet_up - unmet_down =
    need [MW] (the row's right-hand side, > 0 for an upward need). Declares ``m.unmet_up``,
    ``m.unmet_down`` [MW] and the row ``m.balance``; returns the unmet-need penalty."""
    import pyomo.environ as pyo

    m.unmet_up = pyo.Var(bounds=(0, None))
    m.unmet_down = pyo.Var(bounds=(0, None))
    m.balance = pyo.Constraint(expr=net_up + m.unmet_up - m.unmet_down == 0)
    return penalties.unmet_need * (m.unmet_up + m.unmet_down)


def add_ptdf_limits(m: pyo.ConcreteModel, transmission: TransmissionNetwork,
                    injection: Callable[[int], object], penalties: Penalties):
    """DC transmission line limits with the PTDF: -F - f0 <= PTDF dinj - slack and
    PTDF dinj - slack <= F - f0 per line, f0 the flows of the grid state and F the ratings
    [MW] (both in the rows' right-hand sides). ``injection(n)`` is the change of injection at
    bus position n [MW] the model's variables make. Declares ``m.dinj`` [MW per bus],
    ``m.line_slack`` [MW per line] and the rows ``m.inj_def``, ``m.line_max``,
    ``m.line_min``; returns the line-slack penalty."""
    import pyomo.environ as pyo

    ptdf = transmission.ptdf
    m.N = pyo.RangeSet(0, len(transmission.buses) - 1)
    m.L = pyo.RangeSet(0, transmission.n_lines - 1)
    m.dinj = pyo.Var(m.N)
    m.inj_def = pyo.Constraint(m.N, rule=lambda m, n: m.dinj[n] - injection(n) == 0)
    m.line_slack = pyo.Var(m.L, bounds=(0, None))

    def flow(m, l):
        return sum(ptdf[l, n] * m.dinj[n] for n in m.N if abs(ptdf[l, n]) > 1e-10)

    m.line_max = pyo.Constraint(m.L, rule=lambda m, l: flow(m, l) - m.line_slack[l] <= 0)
    m.line_min = pyo.Constraint(m.L, rule=lambda m, l: -flow(m, l) - m.line_slack[l] <= 0)
    return penalties.line * sum(m.line_slack[l] for l in m.L)


def add_lindistflow(blk: pyo.Block, feeder: Feeder, acts: Activations,
                    at_bus: list[list[int]], angles: np.ndarray, shrink: float,
                    penalties: Penalties) -> list:
    """One feeder's LinDistFlow (Baran & Wu 1989, see :mod:`flexgame.markets.distribution`)
    with its voltage and line limits, on ``blk``; ``at_bus[j]`` are the positions of the bids
    at feeder bus j.

    * nodal balance per non-root bus j: P into j - P out of j + net up at j = net demand
      [MW] (and the same for Q [MVAr]); the net demand of the grid state is the right-hand
      side (rows ``p_balance``, ``q_balance``);
    * voltage drop: v_child = v_parent - 2 (r P + x Q) / S_base [p.u.^2], v_root = v0;
    * v_min^2 <= v + v_low, v - v_high <= v_max^2 (slacks [p.u.^2]);
    * line limits cos(a) P + sin(a) Q - s_over <= shrink x rating for every direction a of
      :func:`flexgame.markets.distribution.limit_directions` (|P| or an inscribed polygon
      of |S|; slack [MW or MVA]).

    Returns the penalties of line and voltage slacks."""
    import pyomo.environ as pyo

    f = feeder
    children = [[] for _ in range(f.n_buses)]
    for k, j in enumerate(f.child):
        children[f.parent[j]].append(k)
    K, J = range(f.n_branches), range(f.n_buses)
    blk.P, blk.Q = pyo.Var(K), pyo.Var(K)
    blk.v = pyo.Var(J)
    blk.v_low, blk.v_high = pyo.Var(J, bounds=(0, None)), pyo.Var(J, bounds=(0, None))
    blk.s_over = pyo.Var(K, bounds=(0, None))
    blk.p_balance = pyo.Constraint(
        f.child, rule=lambda b, j: b.P[f.branch_of[j]]
        - sum(b.P[k] for k in children[j]) + acts.net_up(at_bus[j]) == 0
    )
    blk.q_balance = pyo.Constraint(
        f.child, rule=lambda b, j: b.Q[f.branch_of[j]]
        - sum(b.Q[k] for k in children[j]) + acts.net_up_reactive(at_bus[j]) == 0
    )
    s_base = f.base_mva
    blk.drop = pyo.Constraint(
        K, rule=lambda b, k: b.v[f.child[k]] - b.v[f.parent[f.child[k]]]
        + 2 * (f.r_pu[k] * b.P[k] + f.x_pu[k] * b.Q[k]) / s_base == 0
    )
    blk.v_root = pyo.Constraint(expr=blk.v[0] == f.v0_sq)
    blk.v_min = pyo.Constraint(J, rule=lambda b, j: b.v[j] + b.v_low[j] >= float(f.v_min[j]) ** 2)
    blk.v_max = pyo.Constraint(J, rule=lambda b, j: b.v[j] - b.v_high[j] <= float(f.v_max[j]) ** 2)
    blk.S = pyo.Set(initialize=[(k, s) for k in K for s in range(len(angles))])
    blk.s_limit = pyo.Constraint(
        blk.S, rule=lambda b, k, s: np.cos(angles[s]) * b.P[k]
        + np.sin(angles[s]) * b.Q[k] - b.s_over[k] <= shrink * float(f.rating_mva[k])
    )
    return [penalties.line * sum(blk.s_over[k] for k in K),
            penalties.voltage * sum(blk.v_low[j] + blk.v_high[j] for j in J)]


def add_interface_limit(blk: pyo.Block, net_up, penalties: Penalties):
    """A feeder's interface limit |D - net up| <= L, on the feeder's block ``blk``: D is the
    interface flow of the grid state (the power the feeder draws from its transmission
    coupling bus, > 0 drawn), ``net_up`` the net upward activation of the model's bids in
    the feeder [MW] (each MW up lowers the draw by 1 MW, LinDistFlow being lossless) and L
    the limit [MW]. Rows ``interface_max``: -net up - interface_over <= L - D and
    ``interface_min``: net up - interface_over <= L + D (both right-hand sides set per solve
    from the state); the slack ``interface_over`` [MW] is priced as a line's (the interface is
    the feeder's connection to transmission). Returns its penalty."""
    import pyomo.environ as pyo

    blk.interface_over = pyo.Var(bounds=(0, None))
    blk.interface_max = pyo.Constraint(expr=-net_up - blk.interface_over <= 0)
    blk.interface_min = pyo.Constraint(expr=net_up - blk.interface_over <= 0)
    return penalties.line * blk.interface_over


def add_held_interfaces(m: pyo.ConcreteModel, acts: Activations,
                        members: list[np.ndarray], penalties: Penalties):
    """Held interfaces (a DSO market that must not change what its feeder draws from the
    transmission grid): per held feeder h, net up of its bids ``members[h]`` +
    iface_up - iface_down = target [MW] (right-hand side, 0 unless set per solve). Declares
    ``m.iface_up``, ``m.iface_down`` [MW] and the rows ``m.held``; returns their penalty."""
    import pyomo.environ as pyo

    m.H = pyo.RangeSet(0, len(members) - 1)
    m.iface_up = pyo.Var(m.H, bounds=(0, None))
    m.iface_down = pyo.Var(m.H, bounds=(0, None))
    m.held = pyo.Constraint(
        m.H, rule=lambda m, h: acts.net_up(members[h]) + m.iface_up[h] - m.iface_down[h] == 0
    )
    return penalties.interface * sum(m.iface_up[h] + m.iface_down[h] for h in m.H)
