"""The grid state a market layer clears against, and how activations move it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from markets.system import InterconnectedSystem


def net_demand_changes(system: InterconnectedSystem, bids: pd.DataFrame,
                       activation_mw: np.ndarray) -> tuple[np.ndarray, dict[str, tuple]]:
    """Injection change per transmission bus [MW] from transmission bids, and the change of
    net demand per feeder bus (MW, MVAr) from distribution bids.

    Up activations raise injection (lower net demand), down activations lower it.
    """
    sign = np.where(bids.direction.to_numpy() == "up", 1.0, -1.0)
    signed = sign * np.asarray(activation_mw, dtype=float)
    tx = system.transmission
    d_inj = np.zeros(len(tx.buses))
    is_tx = (bids.level == "transmission").to_numpy()
    np.add.at(d_inj, [tx.bus_index(b) for b in bids.bus[is_tx]], signed[is_tx])
    feeder_changes = {}
    for f in system.feeders:
        mask = (bids.feeder == f.name).to_numpy()
        dp = np.zeros(f.n_buses)
        dq = np.zeros(f.n_buses)
        idx = [f.bus_index(b) for b in bids.bus[mask]]
        np.add.at(dp, idx, -signed[mask])
        np.add.at(dq, idx, -signed[mask] * bids.tan_phi.to_numpy()[mask])
        feeder_changes[f.name] = (dp, dq)
    return d_inj, feeder_changes


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

    @classmethod
    def base(cls, system: InterconnectedSystem) -> "GridState":
        p, q = {}, {}
        for f in system.feeders:
            p[f.name], q[f.name] = system.feeder_net_demand(f)
        return cls(system.base_tx_injection(), p, q)

    def copy(self) -> "GridState":
        return GridState(self.tx_injection.copy(), {k: v.copy() for k, v in self.feeder_p.items()},
                         {k: v.copy() for k, v in self.feeder_q.items()})

    def after(self, system: InterconnectedSystem, bids: pd.DataFrame,
              activation_mw: np.ndarray) -> "GridState":
        """The state once ``activation_mw`` (per bid row) is delivered."""
        d_inj, feeder_changes = net_demand_changes(system, bids, activation_mw)
        new = self.copy()
        new.tx_injection += d_inj
        for f in system.feeders:
            dp, dq = feeder_changes[f.name]
            new.feeder_p[f.name] += dp
            new.feeder_q[f.name] += dq
            new.tx_injection[system.transmission.bus_index(f.coupling_bus)] -= dp.sum()
        return new

    @property
    def residual_need_mw(self) -> float:
        """TSO need left at this state [MW], > 0 upward."""
        return -float(self.tx_injection.sum())
