"""Radial distribution feeders with the linearised branch-flow model (LinDistFlow).

LinDistFlow (Baran & Wu, IEEE Trans. Power Delivery 4(2), 1989, eqs. without loss terms):
for the branch k from parent i to child j,

    P_k = sum of net active demand in the subtree below j         [MW]
    Q_k = sum of net reactive demand in the subtree below j       [MVAr]
    v_j = v_i - 2 (r_k P_k + x_k Q_k) / S_base                    [p.u.^2]

with v the squared voltage magnitude and r, x in p.u. on S_base. In matrix form with the
subtree matrix T (branches x buses, T[k, j] = 1 when bus j lies below branch k):
P = T p, Q = T q, v = v0 - 2 T^T (r * P + x * Q) / S_base. Net demand is positive for
consumption; flexibility "up" lowers it, "down" raises it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from flexgame.markets.case_loading import MatpowerCase
from flexgame.markets.errors import FlexgameInputError


@dataclass(frozen=True)
class FeederState:
    """Power flow state of a feeder.

    Attributes:
        p_mw, q_mvar: branch flows (parent -> child positive), per branch.
        v_sq: squared voltage magnitude per bus [p.u.^2].
    """

    p_mw: np.ndarray
    q_mvar: np.ndarray
    v_sq: np.ndarray

    @property
    def s_mva(self) -> np.ndarray:
        return np.hypot(self.p_mw, self.q_mvar)

    def loading(self, kind: str) -> np.ndarray:
        """Loading each line's limit applies to: |P| [MW] ("active") or |S| [MVA]
        ("apparent")."""
        return np.abs(self.p_mw) if kind == "active" else self.s_mva

    @property
    def v_pu(self) -> np.ndarray:
        return np.sqrt(self.v_sq)


@dataclass
class Feeder:
    """A radial feeder in LinDistFlow form, oriented from its root (the case's reference bus).

    Attributes:
        name: feeder name (unique in a system).
        case: the MATPOWER case it was built from.
        coupling_bus: transmission bus number its root is connected to.
        buses: external bus numbers, index 0 is the root.
        parent: parent bus index per bus (-1 for the root).
        r_pu, x_pu: branch impedances [p.u. on base_mva], branch k feeds bus ``child[k]``.
        child: child bus index per branch.
        load_mw, load_mvar: base demand per bus.
        v_min, v_max: voltage magnitude limits per bus [p.u.].
        rating_mva: limit per branch [MW for active limits, MVA for apparent limits].
        v0_sq: squared root voltage [p.u.^2].
        interface_limit_mw: limit of the interface flow, |interface flow| <= limit [MW]
            (see :meth:`interface_mw`; +inf: no limit, the default).
        subtree: branches x buses, 1 where the bus lies below the branch (derived).
        branch_of: index of the branch feeding each bus, -1 for the root (derived).
    """

    name: str
    case: MatpowerCase
    coupling_bus: int
    buses: np.ndarray
    parent: np.ndarray
    child: np.ndarray
    r_pu: np.ndarray
    x_pu: np.ndarray
    load_mw: np.ndarray
    load_mvar: np.ndarray
    v_min: np.ndarray
    v_max: np.ndarray
    rating_mva: np.ndarray
    v0_sq: float = 1.0
    interface_limit_mw: float = np.inf
    subtree: sp.csr_matrix = field(init=False, repr=False)
    branch_of: np.ndarray = field(init=False, repr=False)

    def __repr__(self) -> str:
        return (f"Feeder({self.name!r} from {self.case.name} at transmission bus "
                f"{self.coupling_bus}: {self.n_buses} buses, load {self.load_mw.sum():.2f} MW / "
                f"{self.load_mvar.sum():.2f} MVAr)")

    def __post_init__(self) -> None:
        nb = len(self.buses)
        branch_of = -np.ones(nb, dtype=int)
        branch_of[self.child] = np.arange(len(self.child))
        self.branch_of = branch_of
        # bus j lies below branch k when k is on the path from the root to j
        rows, cols = [], []
        for j in range(1, nb):
            node = j
            while node != 0:
                rows.append(branch_of[node])
                cols.append(j)
                node = self.parent[node]
        self.subtree = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(nb - 1, nb)
        )

    @property
    def base_mva(self) -> float:
        return self.case.base_mva

    @property
    def n_buses(self) -> int:
        return len(self.buses)

    @property
    def n_branches(self) -> int:
        return len(self.child)

    def branch_names(self) -> list[str]:
        return [f"{self.buses[self.parent[j]]}-{self.buses[j]}" for j in self.child]

    def bus_index(self, bus: int) -> int:
        """Position of the feeder's bus number ``bus`` (a dict look-up: bids and their
        effects ask once per bid)."""
        try:
            return self._bus_position[int(bus)]
        except KeyError:
            raise FlexgameInputError(f"feeder {self.name!r} has no bus {bus}") from None

    @cached_property
    def _bus_position(self) -> dict[int, int]:
        positions: dict[int, int] = {}
        for i, b in enumerate(self.buses.tolist()):
            positions.setdefault(int(b), i)
        return positions

    @property
    def has_interface_limit(self) -> bool:
        return bool(np.isfinite(self.interface_limit_mw))

    @staticmethod
    def interface_mw(net_mw: np.ndarray) -> float:
        """Interface flow: the active power the feeder draws from its transmission coupling
        bus [MW], > 0 when drawn from transmission, < 0 when fed back. LinDistFlow neglects
        losses, so it is the feeder's total net demand (the head flow plus the root bus's own
        net demand)."""
        return float(net_mw.sum())

    def solve(self, net_mw: np.ndarray, net_mvar: np.ndarray) -> FeederState:
        """LinDistFlow state for net demand per bus [MW, MVAr] (a direct evaluation of the
        linear equations, independent of any clearing model)."""
        p = self.subtree @ net_mw
        q = self.subtree @ net_mvar
        drop = 2.0 * (self.r_pu * p + self.x_pu * q) / self.base_mva
        v = self.v0_sq - self.subtree.T @ drop
        return FeederState(p, q, v)

    def subtree_buses(self, branch: int) -> np.ndarray:
        """Bus indices below branch ``branch``."""
        return self.subtree[branch].indices

    def voltage_sensitivity(self) -> sp.csr_matrix:
        """d v_sq / d (net demand) per bus pair for active power with zero reactive change:
        buses x buses, -2 T^T diag(r) T / S_base."""
        return -(self.subtree.T @ sp.diags(2.0 * self.r_pu / self.base_mva) @ self.subtree)


def build_feeder(case: MatpowerCase, name: str, coupling_bus: int,
                 v_limits: tuple[float, float] | None = None) -> Feeder:
    """Orient a radial case from its reference bus and build its LinDistFlow data.

    Ratings are left at +inf (cases carry none); the system builder sets them.
    ``v_limits`` overrides the case's VMIN / VMAX for all non-root buses.

    Raises:
        FlexgameInputError: the case is not a connected radial network.
    """
    bus_ids = case.bus.BUS_I.to_numpy()
    index = {b: i for i, b in enumerate(bus_ids)}
    nb, nl = len(bus_ids), len(case.branch)
    if nl != nb - 1:
        raise FlexgameInputError(
            f"feeder case {case.source} is not radial: {nb} buses need {nb - 1} branches, "
            f"found {nl} in service"
        )
    adjacency: dict[int, list[tuple[int, int]]] = {i: [] for i in range(nb)}
    for k, (f, t) in enumerate(zip(case.branch.F_BUS, case.branch.T_BUS)):
        adjacency[index[f]].append((index[t], k))
        adjacency[index[t]].append((index[f], k))
    root = index[case.reference_bus]
    order, parent, via = [root], {root: -1}, {root: -1}
    queue = deque([root])
    while queue:
        i = queue.popleft()
        for j, k in adjacency[i]:
            if j not in parent:
                parent[j], via[j] = i, k
                order.append(j)
                queue.append(j)
    if len(order) != nb:
        raise FlexgameInputError(f"feeder case {case.source} is not connected")
    pos = {old: new for new, old in enumerate(order)}
    parents = np.array([pos[parent[o]] if parent[o] >= 0 else -1 for o in order])
    child = np.arange(1, nb)
    branch_rows = [via[o] for o in order[1:]]
    br = case.branch.iloc[branch_rows]
    bus = case.bus.iloc[order]
    vmin, vmax = bus.VMIN.to_numpy().copy(), bus.VMAX.to_numpy().copy()
    if v_limits is not None:
        lo, hi = v_limits
        if not 0 < lo < hi:
            raise FlexgameInputError(f"voltage limits {v_limits} must satisfy 0 < min < max")
        vmin[1:], vmax[1:] = lo, hi
    v0 = float(bus.VM.iloc[0]) if float(bus.VM.iloc[0]) > 0 else 1.0
    return Feeder(
        name=name, case=case, coupling_bus=int(coupling_bus),
        buses=bus.BUS_I.to_numpy(), parent=parents, child=child,
        r_pu=br.BR_R.to_numpy(), x_pu=br.BR_X.to_numpy(),
        load_mw=bus.PD.to_numpy(), load_mvar=bus.QD.to_numpy(),
        v_min=vmin, v_max=vmax, rating_mva=np.full(nb - 1, np.inf), v0_sq=v0**2,
    )


LINE_LIMITS = ("active", "apparent")


def limit_directions(kind: str, polygon_sides: int) -> tuple[np.ndarray, float]:
    """Linear form of a feeder line limit: rows cos(a) P + sin(a) Q <= shrink x rating.

    * "active": |P| <= rating (angles 0 and pi, shrink 1); exact, so the clearing LPs and
      the ex-post assessment judge the same set.
    * "apparent": the regular polygon with ``polygon_sides`` sides inscribed in the circle
      |S| <= rating (shrink cos(pi / sides)): every point the LP accepts has |S| within the
      rating, but the LP forgoes the slivers between polygon and circle.
    """
    if kind == "active":
        return np.array([0.0, np.pi]), 1.0
    if kind == "apparent":
        return 2 * np.pi * np.arange(polygon_sides) / polygon_sides, float(np.cos(np.pi / polygon_sides))
    raise FlexgameInputError(f"feeder_line_limit={kind!r} is not allowed; choose one of: active, apparent")
