"""Low-voltage feeders with users (connection points) for operating envelopes (issue 15).

:func:`ieee_european_lv` loads pandapower's IEEE European LV test feeder
(``pandapower.networks.ieee_european_lv_asymmetric``: one 0.8 MVA 11/0.416 kV Dyn
transformer, 905 lines, 55 single-phase loads) into flexgame's LinDistFlow
:class:`~flexgame.markets.distribution.Feeder`, single-phase equivalent; the users are the
buses with loads, each with a connection capacity (default 9.2 kVA, as report 001 ch. 5 uses).
:func:`series_reduce` merges chains of load-free buses with one child (r and x add) and prunes
load-free dead ends: the "reduced" feeder of 001 §5.1 (55 users).

Modelling choices (all stated, none fitted to 001's numbers):

* Per unit: S_base = ``base_mva`` (1 MVA by default), V_base = the LV nominal line-to-line
  voltage (0.416 kV), Z_base = V_base^2 / S_base (0.173 ohm). Powers in the feeder are the
  users' real powers [MW].
* ``impedance_model="single_phase"`` (default): every user is single-phase (phase-neutral),
  and, conservatively, all are taken on the same phase. A single-phase current I on a
  four-wire line drops the phase-neutral voltage by I (2 z1 + z0) / 3 (symmetrical
  components, I0 = I1 = I2 = I / 3, z0 includes the neutral return); on the per-phase base
  (S_base / 3, V_base / sqrt 3, the same Z_base) a real power P is 3 P / S_base p.u., so the
  equivalent impedance on the three-phase base is z_eq = 2 z1 + z0 [ohm] / Z_base. Line
  ratings are per phase: V_LL / sqrt 3 x max_i_ka; the transformer's sn_mva / 3.
* ``impedance_model="balanced"``: positive sequence (z1), each user's power spread over
  three phases; ratings sqrt 3 x V_LL x max_i_ka and sn_mva.
* Transformer (``include_transformer=True``): a branch from the 11 kV source bus (the root,
  at the external grid's 1.05 p.u. unless ``v0_pu`` is given) with z1 = z0 from vk_percent,
  vkr_percent on its sn_mva (its tap at neutral); without it the root is the LV busbar at
  ``v0_pu`` (1.0 by default).
* Voltage limits: 001 ch. 5 states none; EN 50160's +-10 % (0.9-1.1 p.u.) for every
  non-root bus by default (``v_limits``).
* Line ratings: pandapower's ``max_i_ka`` of the feeder (0.421 kA for every line of this
  network, pandapower's data, not cable-specific) at the nominal voltage.
* ``phase_model="single_phase_equivalent"`` (default): the LinDistFlow feeder above;
  ``"three_phase"``: the builders also attach a
  :class:`~flexgame.markets.lv_three_phase.ThreePhaseNetwork` (3x3 phase impedances, per-phase
  ratings, each user's phase connection) and the envelopes use the linearised three-phase
  unbalanced model of :mod:`~flexgame.markets.lv_three_phase` instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from flexgame.markets.case_loading import MatpowerCase
from flexgame.markets.distribution import Feeder
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.lv_three_phase import (
    PHASE_MODELS,
    ThreePhaseNetwork,
    connection_weights,
    pandapower_network,
)

IMPEDANCE_MODELS = ("single_phase", "balanced")
DEFAULT_CAPACITY_KVA = 9.2
DEFAULT_V_LIMITS = (0.9, 1.1)


@dataclass(frozen=True)
class _Tree:
    """A radial network in root-first order (parent[i] < i), before it becomes a Feeder."""

    names: list[str]
    parent: np.ndarray          # per node, -1 for the root
    r_pu: np.ndarray            # per node: the branch feeding it (0 for the root)
    x_pu: np.ndarray
    rating_mva: np.ndarray      # per node: its feeding branch's rating (inf for the root)
    length_m: np.ndarray        # per node: its feeding branch's length (0 for the root)
    has_user: np.ndarray        # per node


@dataclass
class LVFeeder:
    """A LinDistFlow feeder with its users.

    Attributes:
        feeder: the LinDistFlow feeder (root = bus index 0).
        user_bus: feeder bus index per user.
        user_names: user names (pandapower load names).
        capacity_kw: connection capacity per user [kW]: the box +-capacity of net demand
            (the kVA capacity at unity power factor).
        distance_m: cable length from the root to each user [m].
        impedance_model: "single_phase" or "balanced" (module docstring).
        vn_kv: nominal LV voltage (line-to-line) the p.u. values refer to.
        phase_model: "single_phase_equivalent" (default) or "three_phase": which limit rows
            the envelopes use (module docstring).
        three_phase: the three-phase data (required for ``phase_model="three_phase"``).
    """

    feeder: Feeder
    user_bus: np.ndarray
    user_names: list[str]
    capacity_kw: np.ndarray
    distance_m: np.ndarray
    impedance_model: str
    vn_kv: float
    phase_model: str = "single_phase_equivalent"
    three_phase: ThreePhaseNetwork | None = None

    def __post_init__(self) -> None:
        require_choice("phase_model", self.phase_model, PHASE_MODELS)
        if self.phase_model == "three_phase" and self.three_phase is None:
            raise FlexgameInputError("phase_model='three_phase' needs three_phase data "
                                     "(a ThreePhaseNetwork)")

    def __repr__(self) -> str:
        f = self.feeder
        return (f"LVFeeder({f.name!r}: {f.n_buses} buses, {self.n_users} users, "
                f"{self.impedance_model}"
                f"{', three-phase' if self.phase_model == 'three_phase' else ''}, capacity {self.capacity_kw.sum():.1f} kW, far-end user "
                f"{self.user_names[self.far_end_user]} at {self.distance_m.max():.0f} m)")

    @property
    def n_users(self) -> int:
        return len(self.user_bus)

    @property
    def far_end_user(self) -> int:
        """Index of the user with the longest cable path from the root."""
        return int(np.argmax(self.distance_m))

    def path_resistance_pu(self) -> np.ndarray:
        """Resistance of the path from the root to each user [p.u.] (its voltage
        sensitivity is 2 x this / S_base)."""
        f = self.feeder
        return np.asarray(f.subtree[:, self.user_bus].T @ f.r_pu).ravel()

    def user_matrix(self) -> np.ndarray:
        """buses x users, 1 where the user sits (net demand per bus = this @ per user)."""
        m = np.zeros((self.feeder.n_buses, self.n_users))
        m[self.user_bus, np.arange(self.n_users)] = 1.0
        return m


def _feeder_from_tree(tree: _Tree, name: str, base_mva: float, v0_pu: float,
                      v_limits: tuple[float, float]) -> tuple[Feeder, np.ndarray]:
    nb = len(tree.names)
    lo, hi = v_limits
    if not 0 < lo < hi:
        raise FlexgameInputError(f"voltage limits {v_limits} must satisfy 0 < min < max")
    bus = pd.DataFrame({
        "BUS_I": np.arange(1, nb + 1), "BUS_TYPE": [3] + [1] * (nb - 1),
        "PD": 0.0, "QD": 0.0, "VM": [v0_pu] + [1.0] * (nb - 1),
        "VMAX": [v0_pu] + [hi] * (nb - 1), "VMIN": [v0_pu] + [lo] * (nb - 1),
        "NAME": tree.names,
    })
    branch = pd.DataFrame({
        "F_BUS": tree.parent[1:] + 1, "T_BUS": np.arange(2, nb + 1),
        "BR_R": tree.r_pu[1:], "BR_X": tree.x_pu[1:], "RATE_A": tree.rating_mva[1:],
        "BR_STATUS": 1, "TAP": 0.0, "LENGTH_M": tree.length_m[1:],
    })
    case = MatpowerCase(name, f"{name} (in memory)", base_mva, bus, branch,
                        pd.DataFrame({"GEN_BUS": [1], "PG": [0.0], "PMAX": [np.inf]}))
    vmin = np.full(nb, lo)
    vmax = np.full(nb, hi)
    vmin[0] = vmax[0] = v0_pu
    feeder = Feeder(
        name=name, case=case, coupling_bus=1, buses=np.arange(1, nb + 1),
        parent=tree.parent.copy(), child=np.arange(1, nb), r_pu=tree.r_pu[1:].copy(),
        x_pu=tree.x_pu[1:].copy(), load_mw=np.zeros(nb), load_mvar=np.zeros(nb),
        v_min=vmin, v_max=vmax, rating_mva=tree.rating_mva[1:].copy(), v0_sq=v0_pu**2,
    )
    # cable distance root -> bus
    dist = np.zeros(nb)
    for j in range(1, nb):
        dist[j] = dist[tree.parent[j]] + tree.length_m[j]
    return feeder, dist


def _tree_from_pandapower(net, impedance_model: str, base_mva: float,
                          include_transformer: bool
                          ) -> tuple[_Tree, list[str], float, list[int]]:
    """Orient the network from its external grid (or the transformer's LV bus): the tree, the
    user (load) names in tree order, the LV nominal voltage [kV] and the pandapower bus per
    tree node."""
    require_choice("impedance_model", impedance_model, IMPEDANCE_MODELS)
    single = impedance_model == "single_phase"
    if len(net.trafo) != 1:
        raise FlexgameInputError(f"expected one transformer, found {len(net.trafo)}")
    tr = net.trafo.iloc[0]
    vn = float(tr.vn_lv_kv)
    z_base = vn**2 / base_mva
    edges: dict[int, list[tuple[int, float, float, float, float]]] = {}

    def add(a, b, r, x, rating, length):
        edges.setdefault(a, []).append((b, r, x, rating, length))
        edges.setdefault(b, []).append((a, r, x, rating, length))

    i_to_mva = vn / np.sqrt(3) if single else np.sqrt(3) * vn
    for ln in net.line[net.line.in_service].itertuples():
        L = float(ln.length_km) / float(ln.parallel)
        if single:
            r = (2 * ln.r_ohm_per_km + ln.r0_ohm_per_km) * L
            x = (2 * ln.x_ohm_per_km + ln.x0_ohm_per_km) * L
        else:
            r, x = ln.r_ohm_per_km * L, ln.x_ohm_per_km * L
        add(int(ln.from_bus), int(ln.to_bus), r / z_base, x / z_base,
            i_to_mva * float(ln.max_i_ka) * float(ln.parallel), 1000.0 * float(ln.length_km))
    if include_transformer:
        z = tr.vk_percent / 100 * base_mva / tr.sn_mva
        rt = tr.vkr_percent / 100 * base_mva / tr.sn_mva
        xt = np.sqrt(max(z**2 - rt**2, 0.0))
        factor = 3.0 if single else 1.0      # 2 z1 + z0 with z0 = z1 (Dyn, vk0 = vk)
        add(int(tr.hv_bus), int(tr.lv_bus), factor * rt, factor * xt,
            tr.sn_mva / 3 if single else tr.sn_mva, 0.0)
        root = int(net.ext_grid.bus.iloc[0])
    else:
        root = int(tr.lv_bus)
    loads = net.asymmetric_load if len(net.asymmetric_load) else net.load
    load_bus = {int(b): str(n) for b, n in zip(loads.bus, loads.name)}
    if len(load_bus) != len(loads):
        raise FlexgameInputError("two loads share a bus; one user per bus is supported")
    order, parent, via = [root], {root: -1}, {root: (0.0, 0.0, np.inf, 0.0)}
    queue = deque([root])
    while queue:
        i = queue.popleft()
        for j, r, x, rating, length in edges.get(i, []):
            if j not in parent:
                parent[j], via[j] = i, (r, x, rating, length)
                order.append(j)
                queue.append(j)
    n_edges = sum(len(v) for v in edges.values()) // 2
    if n_edges != len(order) - 1:
        raise FlexgameInputError(f"network is not radial and connected: {len(order)} buses "
                                 f"reached, {n_edges} branches")
    pos = {b: k for k, b in enumerate(order)}
    names = [str(net.bus.name.at[b]) for b in order]
    tree = _Tree(
        names=names,
        parent=np.array([pos[parent[b]] if parent[b] >= 0 else -1 for b in order]),
        r_pu=np.array([via[b][0] for b in order]), x_pu=np.array([via[b][1] for b in order]),
        rating_mva=np.array([via[b][2] for b in order]),
        length_m=np.array([via[b][3] for b in order]),
        has_user=np.array([b in load_bus for b in order]),
    )
    user_names = [load_bus[b] for b in order if b in load_bus]
    return tree, user_names, vn, order


def ieee_european_lv(impedance_model: str = "single_phase", *, reduced: bool = False,
                     capacity_kva: float = DEFAULT_CAPACITY_KVA,
                     v_limits: tuple[float, float] = DEFAULT_V_LIMITS,
                     include_transformer: bool = True, v0_pu: float | None = None,
                     base_mva: float = 1.0,
                     phase_model: str = "single_phase_equivalent") -> LVFeeder:
    """The IEEE European LV test feeder (pandapower), full (906 buses with the transformer)
    or series-reduced (``reduced=True``). See the module docstring for the model; with
    ``phase_model="three_phase"`` the users sit on their phases in pandapower's data (21 on
    a, 19 on b, 15 on c)."""
    import pandapower.networks as pn

    require_choice("phase_model", phase_model, PHASE_MODELS)
    net = pn.ieee_european_lv_asymmetric()
    tree, user_names, vn, order = _tree_from_pandapower(net, impedance_model, base_mva,
                                                        include_transformer)
    three = (pandapower_network(net, order, tree.parent, base_mva, include_transformer,
                                user_names) if phase_model == "three_phase" else None)
    if v0_pu is None:
        v0_pu = float(net.ext_grid.vm_pu.iloc[0]) if include_transformer else 1.0
    feeder, dist = _feeder_from_tree(tree, "ieee_european_lv", base_mva, v0_pu, v_limits)
    users = np.flatnonzero(tree.has_user)
    lv = LVFeeder(feeder=feeder, user_bus=users, user_names=user_names,
                  capacity_kw=np.full(len(users), float(capacity_kva)),
                  distance_m=dist[users], impedance_model=impedance_model, vn_kv=vn,
                  phase_model=phase_model, three_phase=three)
    return series_reduce(lv) if reduced else lv


def series_reduce(lv: LVFeeder) -> LVFeeder:
    """Merge every chain of user-free buses with a single child into one line (r, x and
    lengths add, the rating is the chain's smallest) and prune user-free dead ends. The
    LinDistFlow voltages of the remaining buses and the flows of the merged lines are
    unchanged for any user injections (a user-free bus with one child carries the same flow
    on both sides); the ratings of the removed segments are kept by the minimum. Three-phase
    data merge the same way (3x3 impedances add)."""
    f = lv.feeder
    nb = f.n_buses
    has_user = np.zeros(nb, bool)
    has_user[lv.user_bus] = True
    children: list[list[int]] = [[] for _ in range(nb)]
    for j in range(1, nb):
        children[f.parent[j]].append(j)
    # prune user-free leaves repeatedly (reverse root-first order handles chains)
    alive = np.ones(nb, bool)
    for j in range(nb - 1, 0, -1):
        if not has_user[j] and not any(alive[c] for c in children[j]):
            alive[j] = False
    live_children = [[c for c in ch if alive[c]] for ch in children]
    names = list(f.case.bus.NAME) if "NAME" in f.case.bus else [str(b) for b in f.buses]
    length = np.zeros(nb)
    length[1:] = (f.case.branch.LENGTH_M.to_numpy() if "LENGTH_M" in f.case.branch
                  else np.zeros(nb - 1))
    keep = [0]
    new_parent, r, x, rating, ln = [-1], [0.0], [0.0], [np.inf], [0.0]
    new_index = {0: 0}
    segments: list[list[int]] = []                # old branches per new branch
    # walk down: a kept bus is the root, a user bus, or a junction (>= 2 live children)
    stack = [0]
    while stack:
        i = stack.pop()
        for c in live_children[i]:
            rr, xx, rt, ll, node = 0.0, 0.0, np.inf, 0.0, c
            segments.append([])
            while True:
                k = node - 1                               # branch feeding ``node``
                segments[-1].append(k)
                rr, xx, ll = rr + f.r_pu[k], xx + f.x_pu[k], ll + length[node]
                rt = min(rt, f.rating_mva[k])
                if has_user[node] or len(live_children[node]) != 1:
                    break
                node = live_children[node][0]
            new_index[node] = len(keep)
            keep.append(node)
            new_parent.append(new_index[i])
            r.append(rr), x.append(xx), rating.append(rt), ln.append(ll)
            stack.append(node)
    # root-first order holds: a node is appended after its parent
    tree = _Tree(names=[names[k] for k in keep], parent=np.array(new_parent),
                 r_pu=np.array(r), x_pu=np.array(x), rating_mva=np.array(rating),
                 length_m=np.array(ln), has_user=has_user[keep])
    v_lim = (float(f.v_min[1:].min()), float(f.v_max[1:].max())) if nb > 1 else DEFAULT_V_LIMITS
    feeder, dist = _feeder_from_tree(tree, f.name + "_reduced", f.base_mva,
                                     float(np.sqrt(f.v0_sq)), v_lim)
    user_of_bus = {int(b): u for u, b in enumerate(lv.user_bus)}
    order = [user_of_bus[k] for k in keep if k in user_of_bus]
    three = None if lv.three_phase is None else lv.three_phase.merged(segments, order)
    user_bus = np.array([new_index[int(lv.user_bus[u])] for u in order], int)
    return replace(lv, feeder=feeder, three_phase=three, user_bus=user_bus,
                   user_names=[lv.user_names[u] for u in order],
                   capacity_kw=lv.capacity_kw[order], distance_m=dist[user_bus])


def single_line(r_pu: float, x_pu: float = 0.0, *, capacity_kw: float = 10.0,
                v0_pu: float = 1.0, v_limits: tuple[float, float] = DEFAULT_V_LIMITS,
                rating_mva: float = np.inf, base_mva: float = 1.0,
                phase_model: str = "single_phase_equivalent", z_abc_pu=None,
                connection: str = "abc") -> LVFeeder:
    """Root + one line + one user (the closed-form test case). Three-phase data (used with
    ``phase_model="three_phase"``): see :func:`radial_lv_feeder`; ``connection`` is the
    user's."""
    tree = _Tree(names=["root", "user"], parent=np.array([-1, 0]), r_pu=np.array([0.0, r_pu]),
                 x_pu=np.array([0.0, x_pu]), rating_mva=np.array([np.inf, rating_mva]),
                 length_m=np.array([0.0, 1.0]), has_user=np.array([False, True]))
    feeder, dist = _feeder_from_tree(tree, "single_line", base_mva, v0_pu, v_limits)
    z = None if z_abc_pu is None else np.asarray(z_abc_pu, complex).reshape(1, 3, 3)
    return LVFeeder(feeder=feeder, user_bus=np.array([1]), user_names=["user"],
                    capacity_kw=np.array([float(capacity_kw)]), distance_m=dist[[1]],
                    impedance_model="balanced", vn_kv=0.4, phase_model=phase_model,
                    three_phase=_three_phase_data(phase_model, tree, z, [connection]))


def _three_phase_data(phase_model: str, tree: _Tree, z_abc_pu, connections
                      ) -> ThreePhaseNetwork | None:
    """Three-phase data of a feeder given by arrays: ``z_abc_pu`` (branches x 3 x 3 [p.u.]) or,
    by default, (r + j x) on the diagonal (no mutual coupling, z0 = z1: the balanced model's
    positive sequence); per-phase rating = the (three-phase) rating / 3."""
    require_choice("phase_model", phase_model, PHASE_MODELS)
    if phase_model != "three_phase":
        return None
    nbr = len(tree.names) - 1
    if z_abc_pu is None:
        z_abc_pu = (tree.r_pu[1:] + 1j * tree.x_pu[1:])[:, None, None] * np.eye(3)
    z = np.asarray(z_abc_pu, complex)
    if z.shape != (nbr, 3, 3):
        raise FlexgameInputError(f"z_abc_pu has shape {z.shape}; expected ({nbr}, 3, 3)")
    connections = tuple(connections)
    if len(connections) != int(tree.has_user.sum()):
        raise FlexgameInputError(f"connections has {len(connections)} entries; expected one "
                                 f"per user ({int(tree.has_user.sum())})")
    for c in connections:
        connection_weights(c)
    return ThreePhaseNetwork(z, tree.rating_mva[1:] / 3, connections)


def radial_lv_feeder(parent, r_pu, x_pu, rating_mva, user_bus, capacity_kw, *,
                     v0_pu: float = 1.0, v_limits: tuple[float, float] = DEFAULT_V_LIMITS,
                     base_mva: float = 1.0, name: str = "radial",
                     phase_model: str = "single_phase_equivalent", z_abc_pu=None,
                     connections=None) -> LVFeeder:
    """A small LV feeder from arrays: ``parent`` per bus (root first, parent[i] < i), and
    per non-root bus the r, x [p.u.] and rating [MVA] of the line feeding it (the balanced
    model: positive sequence, three-phase rating). ``phase_model="three_phase"``: per
    non-root bus the 3x3 phase impedance ``z_abc_pu`` of its line (default (r + j x) times
    the identity) and per user its connection (default "abc", three-phase balanced)."""
    parent = np.asarray(parent, int)
    nb = len(parent)
    if parent[0] != -1 or any(not 0 <= parent[i] < i for i in range(1, nb)):
        raise FlexgameInputError("parent must list the root first (-1) and parents before "
                                 "children")
    pad = lambda v: np.concatenate([[0.0], np.asarray(v, float)])
    users = np.asarray(user_bus, int)
    has_user = np.zeros(nb, bool)
    has_user[users] = True
    tree = _Tree(names=[str(i) for i in range(nb)], parent=parent, r_pu=pad(r_pu),
                 x_pu=pad(x_pu), rating_mva=np.concatenate([[np.inf], rating_mva]),
                 length_m=pad(np.ones(nb - 1)), has_user=has_user)
    feeder, dist = _feeder_from_tree(tree, name, base_mva, v0_pu, v_limits)
    return LVFeeder(feeder=feeder, user_bus=users, user_names=[f"u{b}" for b in users],
                    capacity_kw=np.broadcast_to(np.asarray(capacity_kw, float),
                                                users.shape).copy(),
                    distance_m=dist[users], impedance_model="balanced", vn_kv=0.4,
                    phase_model=phase_model, three_phase=_three_phase_data(
                        phase_model, tree, z_abc_pu,
                        ["abc"] * len(users) if connections is None else connections))
