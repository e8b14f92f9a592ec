"""Prequalification of distribution bids forwarded to the TSO market.

Both methods cap each forwarded bid to a quantity that the feeder can take **whatever part
of the capped quantities the TSO activates**: for every feeder limit row r (a line-limit
direction, upper and lower squared-voltage limits, the upper and lower interface limit of a
feeder that has one) with sensitivity G[r, b] of the row
to bid b's activation, they require the worst case over the box [0, cap] to stay in the
headroom: sum_b max(G[r, b], 0) cap_b <= max(h_r, 0), with h_r the row's headroom at the
current state (a row already violated may not be made worse; ML06 rule of D3.3 §4.3.4).
The direction of the TSO need is qualified first; the other direction gets the headroom its
worst case leaves, so any mix of up and down activations within the caps is grid-safe.

* Operating envelopes (ALEXANDER D3.3 §4.1.1, Kaushal et al. 2024): per feeder and
  direction one LP maximising sum_b w_b cap_b; price-based weights w_b = p_max / p_b favour
  cheap bids, uniform weights w_b = 1 treat all bids alike.
* Iterative (INTERRFACE, D3.3 §4.3.5): drop the most expensive remaining bid until full
  activation of all remaining bids is grid-safe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from flexgame.markets.bids import direction_sign
from flexgame.markets.distribution import Feeder, limit_directions
from flexgame.markets.errors import require_choice
from flexgame.markets.grid_state import GridState
from flexgame.markets.lp import CompiledLP
from flexgame.markets.system import InterconnectedSystem

METHODS = ("envelope", "iterative")
WEIGHTINGS = ("price", "uniform")


def limit_sensitivities(feeder: Feeder, bids: pd.DataFrame, members: np.ndarray,
                        angles: np.ndarray) -> sp.csr_matrix:
    """Rows: line-limit directions of every branch (branch-major, see
    :func:`markets.distribution.limit_directions`), then v_sq upper limits, then v_sq lower
    limits (as -v_sq), then, for a feeder with an interface limit, the interface flow and its
    negative; columns: ``members`` bids. Entry = change of the row per MW of the bid's
    activation (MW, MVA or p.u.^2 per MW): an upward MW lowers the interface flow by 1 MW."""
    sub = bids.iloc[members]
    sign = direction_sign(sub)
    tan_phi = sub.tan_phi.to_numpy()
    buses = np.array([feeder.bus_index(b) for b in sub.bus])
    t = feeder.subtree.toarray()[:, buses]  # branches x bids: 1 when the bid is below
    d_p = -t * sign  # MW change of branch flow per MW of activation
    d_q = d_p * tan_phi
    poly = (np.cos(angles)[None, :, None] * d_p[:, None, :]
            + np.sin(angles)[None, :, None] * d_q[:, None, :]).reshape(-1, len(members))
    s_base = feeder.base_mva
    dv = -2.0 / s_base * (feeder.subtree.T @ (feeder.r_pu[:, None] * d_p
                                              + feeder.x_pu[:, None] * d_q))
    interface = [-sign, sign] if feeder.has_interface_limit else []
    return sp.csr_matrix(np.vstack([poly, dv, -dv, *interface]))


def limit_headroom(feeder: Feeder, state: GridState, angles: np.ndarray,
                   shrink: float) -> np.ndarray:
    """Headroom of every row of :func:`limit_sensitivities` at ``state``."""
    flow = feeder.solve(state.feeder_p[feeder.name], state.feeder_q[feeder.name])
    poly = (shrink * feeder.rating_mva[:, None]
            - np.cos(angles)[None, :] * flow.p_mw[:, None]
            - np.sin(angles)[None, :] * flow.q_mvar[:, None]).ravel()
    interface = []
    if feeder.has_interface_limit:
        drawn, limit = feeder.interface_mw(state.feeder_p[feeder.name]), feeder.interface_limit_mw
        interface = [limit - drawn, limit + drawn]
    return np.r_[poly, feeder.v_max**2 - flow.v_sq, flow.v_sq - feeder.v_min**2, interface]


class Prequalification:
    """Caps on forwarded distribution bids, built once per scheme and re-run per clearing.

    Args:
        system, bids: the scenario.
        method: "envelope" (operating envelopes, two LPs per feeder) or "iterative".
        weighting: "price" or "uniform" (envelope method only).
        polygon_sides: as in the market layers (apparent line limits only).
    """

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame, method: str,
                 weighting: str, polygon_sides: int):
        require_choice("prequalification", method, METHODS)
        require_choice("envelope_weighting", weighting, WEIGHTINGS)
        self.system, self.method, self.weighting = system, method, weighting
        self.angles, self.shrink = limit_directions(system.feeder_line_limit, polygon_sides)
        distribution = (bids.level == "distribution").to_numpy()
        self.forwarded = {d: np.flatnonzero(distribution & (bids.direction == d).to_numpy())
                          for d in ("up", "down")}
        self.parts = []  # (feeder, direction, members, positive sensitivities, lp)
        for f in system.feeders:
            for direction in ("up", "down"):
                members = np.flatnonzero(((bids.feeder == f.name)
                                          & (bids.direction == direction)).to_numpy())
                if not len(members):
                    continue
                g = limit_sensitivities(f, bids, members, self.angles).maximum(0).tocsr()
                g.eliminate_zeros()
                lp = None
                if method == "envelope":
                    lp = CompiledLP.from_arrays(np.zeros(len(members)), g, np.full(g.shape[0], -np.inf),
                                                np.zeros(g.shape[0]), np.zeros(len(members)),
                                                np.zeros(len(members)))
                self.parts.append((f, direction, members, g, lp))

    def __repr__(self) -> str:
        weighting = f", {self.weighting} weights" if self.method == "envelope" else ""
        return (f"Prequalification({self.method!r}{weighting}, {len(self.parts)} feeder x "
                f"direction groups of {sum(len(p[2]) for p in self.parts)} bids)")

    def caps(self, state: GridState, price: np.ndarray, available_mw: np.ndarray,
             need_direction: str) -> np.ndarray:
        """Capped quantity per bid (full table; bids outside feeders keep ``available_mw``)."""
        cap = available_mw.copy()
        order = sorted(self.parts, key=lambda p: (p[0].name, p[1] != need_direction))
        headroom: dict[str, np.ndarray] = {}
        for f, direction, members, g, lp in order:
            room = headroom.get(f.name)
            if room is None:
                room = np.maximum(limit_headroom(f, state, self.angles, self.shrink), 0.0)
            avail = np.maximum(available_mw[members], 0.0)
            if self.method == "envelope":
                chosen = self._envelope(lp, room, avail, price[members])
            else:
                chosen = self._iterative(g, room, avail, price[members])
            cap[members] = chosen
            headroom[f.name] = np.maximum(room - g @ chosen, 0.0)
        return cap

    def unqualified_pct(self, offered_mw: np.ndarray, cap: np.ndarray) -> tuple[float, float]:
        """Share of the ``offered_mw`` distribution volume that ``cap`` cuts off, upward and
        downward [%] (0 when nothing is offered in a direction)."""
        capped = np.minimum(cap, offered_mw)
        shares = []
        for direction in ("up", "down"):
            rows = self.forwarded[direction]
            total = offered_mw[rows].sum()
            shares.append(100.0 * (total - capped[rows].sum()) / total if total > 1e-12 else 0.0)
        return shares[0], shares[1]

    def _envelope(self, lp: CompiledLP, room, avail, price) -> np.ndarray:
        cols = np.arange(len(avail))
        if self.weighting == "price":
            weight = price.max() / np.maximum(price, 1e-6)
        else:
            weight = np.ones(len(avail))
        lp.set_costs(cols, -weight)
        lp.set_col_bounds(cols, 0.0, avail)
        lp.set_row_bounds(np.arange(lp.n_rows), -np.inf, room)
        sol = lp.solve().require_optimal(f"prequalification envelope ({self.weighting} weights)")
        return np.clip(sol.x, 0.0, avail)

    @staticmethod
    def _iterative(g: sp.csr_matrix, room, avail, price) -> np.ndarray:
        kept = avail.copy()
        order = np.argsort(-price, kind="stable")  # most expensive first
        for i in order:
            if np.all(g @ kept <= room + 1e-9):
                break
            kept[i] = 0.0
        return kept
