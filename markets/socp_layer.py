"""A DSO market layer cleared on the SOCP relaxation of the AC branch-flow model (issue 14,
item 3; FLEXGRID D5.1 §3.1).

flexgame's DSO layers clear on LinDistFlow (:class:`~flexgame.markets.market_layer.
MarketLayer`): lossless, linear, and checked only against themselves. With
``scheme.dso_model=socp`` the DSO layers of the schemes whose DSO markets clear their own
feeder with a free interface (fragmented, ml01, ml03, ml04) clear instead on the augmented
(conservative) SOCP of :class:`flexgame.markets.socp.FeederSOCP`: the same bids, the same
line and voltage limits and penalties, plus losses, on the AC physics the relaxation
bounds. A user compares the two to see what the linearisation costs or risks.

The layer speaks the market layers' interface (``candidates``, ``sign``, ``solve`` returning a
:class:`~flexgame.markets.market_layer.LayerOutcome`); what it passes on to the next layer
(activations, remaining quantities, the grid state) is the same as a LinDistFlow layer's. A
bid's marginal value is its bus's DLMP (active, plus ``tan_phi`` times reactive) seen from its
direction. It has no LP price ranges, so strategic payoffs under it are always cleared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexgame.markets.bids import direction_sign
from flexgame.markets.constraints import Penalties
from flexgame.markets.errors import SolverError
from flexgame.markets.grid_state import GridState
from flexgame.markets.market_layer import LayerOutcome
from flexgame.markets.system import InterconnectedSystem


class SOCPMarketLayer:
    """The DSO market of one feeder on the augmented SOCP, built once (cvxpy parameters for
    the state, prices and quantities: re-solving does not rebuild).

    Args:
        system, bids: the scenario.
        feeder: the feeder's name.
        penalties: slack prices (as for the LinDistFlow layers).
    """

    pro_rata = None

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame, feeder: str,
                 penalties: Penalties):
        from flexgame.markets.socp import FeederSOCP

        self.feeder = system.feeder(feeder)
        self.n_bids = len(bids)
        self.model, self.candidates = FeederSOCP.from_bids(
            self.feeder, bids, line_limit=system.feeder_line_limit, augmented=True,
            penalties=penalties)
        self.sign = direction_sign(bids)[self.candidates]
        self._bus = np.array([self.feeder.bus_index(b)
                              for b in bids.bus.to_numpy()[self.candidates]], dtype=np.int64)
        self._tan_phi = bids.tan_phi.to_numpy(float)[self.candidates]

    def __repr__(self) -> str:
        return f"SOCPMarketLayer({len(self.candidates)} bids, augmented SOCP of {self.feeder.name})"

    def solve(self, price: np.ndarray, available_mw: np.ndarray, state: GridState,
              need_mw: float = 0.0, held_targets=None, split_ties: bool = True,
              ranging: bool = False) -> LayerOutcome:
        """Clear the layer (arguments as for :meth:`MarketLayer.solve`; a DSO layer has no
        TSO need and no held interface).

        Raises:
            SolverError: the conic solver returns no optimal solution.
        """
        if ranging:
            raise ValueError("an SOCP layer has no LP price ranges")
        cand, name = self.candidates, self.feeder.name
        out = self.model.solve(state.feeder_p[name], state.feeder_q[name], price[cand],
                               np.maximum(available_mw[cand], 0.0))
        if out.status != "optimal":
            raise SolverError(f"{self!r}: the conic solver returned {out.status!r}")
        activation = np.zeros(self.n_bids)
        activation[cand] = np.where(out.activation_mw > 1e-9, out.activation_mw, 0.0)
        marginal = np.full(self.n_bids, np.nan)
        # value of one more MW of a bid: it moves its bus's net demand by -sign MW (and
        # -sign tan_phi MVAr); the DLMP is the objective's change per MW of demand
        marginal[cand] = self.sign * (out.dlmp_p[self._bus] + self._tan_phi * out.dlmp_q[self._bus])
        return LayerOutcome(
            activation_mw=activation, marginal_value=marginal,
            cost_eur=float(price @ activation), objective_eur=float(out.objective),
            unmet_need_mw=0.0, line_slack=float(np.sum(out.s_over)),
            voltage_slack=float(np.sum(out.v_low) + np.sum(out.v_high)),
            interface_slack_mw=0.0)
