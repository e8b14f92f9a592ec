"""The grid state a market layer clears against, and how activations move it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from flexgame.markets.bids import direction_sign
from flexgame.markets.reprs import names

if TYPE_CHECKING:  # only for annotations: the system module uses the assessment of states
    from flexgame.markets.system import InterconnectedSystem


@dataclass(frozen=True)
class BidEffects:
    """Linear effect of bid activations on the grid state (built once per bid table).

    Attributes:
        tx: transmission buses x bids, injection change per MW activated (+1 for up, -1 for
            down, at the bid's transmission bus; a distribution bid acts at its coupling bus
            through the interface flow, losses neglected).
        feeder_p, feeder_q: per feeder, buses x bids, change of net demand per MW activated
            (-1 / +1 for up / down; reactive: times the bid's tan_phi).
    """

    tx: sp.csr_matrix
    feeder_p: dict[str, sp.csr_matrix]
    feeder_q: dict[str, sp.csr_matrix]

    def __repr__(self) -> str:
        feeders = names([f"{k} ({m.shape[0]} buses)" for k, m in self.feeder_p.items()])
        return (f"BidEffects({self.tx.shape[1]} bids on {self.tx.shape[0]} transmission buses"
                f"{', feeders ' + feeders if feeders else ''})")

    @classmethod
    def of(cls, system: InterconnectedSystem, bids: pd.DataFrame) -> "BidEffects":
        n = len(bids)
        sign = direction_sign(bids)
        tx_net = system.transmission
        cols = np.arange(n)
        rows = [tx_net.bus_index(b) for b in bids.tx_bus]
        tx = sp.csr_matrix((sign, (rows, cols)), shape=(len(tx_net.buses), n))
        fp, fq = {}, {}
        tan_phi = bids.tan_phi.to_numpy(float)
        for f in system.feeders:
            mask = (bids.feeder == f.name).to_numpy()
            idx = [f.bus_index(b) for b in bids.bus[mask]]
            fp[f.name] = sp.csr_matrix((-sign[mask], (idx, cols[mask])), shape=(f.n_buses, n))
            fq[f.name] = sp.csr_matrix((-sign[mask] * tan_phi[mask], (idx, cols[mask])),
                                       shape=(f.n_buses, n))
        return cls(tx, fp, fq)


@dataclass
class GridState:
    """Operating point between market layers (MW, MVAr).

    Attributes:
        tx_injection: injection per transmission bus (generation - load - feeder draw);
            it sums to -residual need.
        feeder_p, feeder_q: net demand per feeder bus, by feeder name.
    """

    tx_injection: np.ndarray
    feeder_p: dict[str, np.ndarray]
    feeder_q: dict[str, np.ndarray]

    def __repr__(self) -> str:
        feeders = names(self.feeder_p) or "none"
        return (f"GridState(residual need {self.residual_need_mw:.2f} MW, "
                f"{len(self.tx_injection)} transmission buses, feeders {feeders})")

    @classmethod
    def base(cls, system: InterconnectedSystem) -> "GridState":
        """The base state before any market."""
        p, q = {}, {}
        for f in system.feeders:
            p[f.name], q[f.name] = system.feeder_net_demand(f)
        return cls(system.base_tx_injection(), p, q)

    def after(self, effects: BidEffects, activation_mw: np.ndarray) -> "GridState":
        """The state once ``activation_mw`` (per bid row) is delivered."""
        a = np.asarray(activation_mw, dtype=float)
        return GridState(
            self.tx_injection + effects.tx @ a,
            {k: v + effects.feeder_p[k] @ a for k, v in self.feeder_p.items()},
            {k: v + effects.feeder_q[k] @ a for k, v in self.feeder_q.items()},
        )

    @property
    def residual_need_mw(self) -> float:
        """TSO need left at this state [MW], > 0 upward."""
        return -float(self.tx_injection.sum())
