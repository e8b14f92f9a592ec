"""Linearised three-phase unbalanced LV feeder model for operating envelopes (issue 15 item 1).

The single-phase-equivalent LinDistFlow of :mod:`~flexgame.markets.envelopes` (report 001 ch. 5
states no network model beyond "the LV feeder", 001 §5.1) either puts every single-phase user
on one phase (``impedance_model="single_phase"``) or spreads every user over three phases
(``"balanced"``). This module keeps each user on its own phase(s) and couples the phases
through the lines' 3x3 phase impedance matrices: the linear multiphase branch-flow model of
Gan & Low (2014, "Convex relaxations and linear approximation for optimal power flow in
multiphase radial networks", PSCC, §IV "linear approximation"), the same model as the
three-phase LinDistFlow of Arnold et al. (2016).

Model (per branch k from bus i to bus j; phases phi, psi in a, b, c):

* Phase impedance Z_k [p.u.] (3x3, complex, the neutral / earth return Kron-reduced into it).
  From sequence data (pandapower's r, x = positive and r0, x0 = zero sequence):
  Z_abc = A diag(z0, z1, z1) A^-1 with A = [[1, 1, 1], [1, a^2, a], [1, a, a^2]],
  a = exp(j 2 pi / 3): a symmetric matrix with self impedance (z0 + 2 z1) / 3 and mutual
  impedance (z0 - z1) / 3.
* Voltages nearly balanced: V_i ~ alpha = (1, a^2, a) (positive sequence, |V| ~ 1), so the
  phase current is I^psi ~ conj(S^psi) alpha^psi and, dropping the second-order term,

      v_j^phi = v_i^phi - 2 sum_psi Re( Zt_k[phi, psi] conj(s_k^psi) ),
      Zt_k[phi, psi] = conj(alpha^phi) Z_k[phi, psi] alpha^psi,

  with v = |V|^2 [p.u.^2] and s_k^psi the complex power flowing from i to j on phase psi in
  p.u. of the per-phase base S_base / 3 (V_base = V_LL / sqrt 3, so Z_base = V_LL^2 / S_base,
  the same as the single-phase model's). With S^psi in MW: s = 3 S / S_base, hence the factor
  6 / S_base below. Flows are lossless sums of the downstream injections (LinDistFlow).
* Balanced check: for a symmetric Z_abc and s = (1, 1, 1) P / 3, the drop is 2 r1 P / S_base on
  every phase, the ``"balanced"`` single-phase equivalent; a user on phase a alone with P sees
  2 (2 r1 + r0) P / S_base on phase a, the ``"single_phase"`` equivalent's drop, and, through
  the mutual impedance, a rise or drop on phases b and c (the neutral-point shift).
* Thermal limits per phase: |S_k^phi| <= V_ph I_max (V_ph = V_LL / sqrt 3 at 1 p.u.), the
  per-phase form of the single-phase model's |P| sqrt(1 + tan_phi^2) <= rating. |S| <= R is
  replaced by a regular polygon with ``sides`` sides (even) INSCRIBED in the circle (rows
  P cos t_m + Q sin t_m <= R cos(pi / sides), t_m = phi0 + pi / sides + 2 pi m / sides),
  rotated so that two vertices lie on the power-factor ray phi0 = atan(tan_phi) and its
  opposite: for users connected phase-to-neutral at the common power factor the polygon is
  exact (the same limit as the single-phase model); otherwise (delta users) it is safe and at
  most 1 - cos(pi / sides) conservative (3.4 % for 12 sides).
* Neutral current: the return current of the three phases, I_n = sum_psi I^psi ~
  sum_psi conj(S^psi) alpha^psi (zero for balanced users; it is the phase current for users
  on one phase), limited to V_ph I_n,max by the same inscribed polygon (not exact on any
  ray: at most 3.4 % conservative) where a neutral rating is given. pandapower gives none;
  :func:`pandapower_network` takes the phase conductor's (the feeder's cables are 4-core
  with a full-size neutral, or 2-core phase + neutral service cables) for lines and none for
  the transformer. At the optimal envelopes' vertices of the IEEE feeder without this limit
  pandapower's neutral current reached 1.18 x max_i_ka.

User connections (each user's net demand d [kW] stays ONE variable; its complex power on the
phases is w d (1 + j tan_phi), sum(w) = 1):

* ``"a"``, ``"b"``, ``"c"``: single-phase, phase to neutral: w = unit vector of that phase;
* ``"abc"``: three-phase balanced (wye or delta alike): w = (1, 1, 1) / 3;
* ``"ab"``, ``"bc"``, ``"ca"``: single-phase, phase to phase (delta). A load S between phase
  phi and the next phase psi (V_phi_psi = V_phi - V_psi = sqrt 3 V_phi exp(j 30 deg)) draws the
  current I = conj(S / V_phi_psi) out of phi and into psi, so phase phi carries
  V_phi conj(I) = S exp(-j 30 deg) / sqrt 3 and phase psi carries -V_psi conj(I) =
  S exp(+j 30 deg) / sqrt 3 (Kersting, "Distribution system modeling and analysis", §9.3):
  half the real power on each phase, with reactive power -+ P / (2 sqrt 3) even at unity
  power factor.

Consequence for static envelopes: the rows of one phase's voltage have positive sensitivities
to its own users and (through the mutual impedance) signed sensitivities to the other phases'
users, so a row's worst case mixes importing and exporting users and the robust rows couple
the import and the export capacities (on the single-phase equivalent of a radial feeder they
never do). On the reduced IEEE European LV feeder (v0 = 1.05 at 11 kV, 0.9-1.1 p.u.) the equal
fair level is 3.89 kW import alone, 1.65 kW export alone, 1.21 kW for import = export
(:func:`~flexgame.markets.envelopes.ratio_levels`, printed by benchmarks/bench_envelopes.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from flexgame.markets.errors import FlexgameInputError, require_choice

PHASE_MODELS = ("single_phase_equivalent", "three_phase")
CONNECTIONS = ("a", "b", "c", "abc", "ab", "bc", "ca")
DEFAULT_SIDES = 12

_A_OP = np.exp(2j * np.pi / 3)
SEQUENCE_MATRIX = np.array([[1, 1, 1], [1, _A_OP**2, _A_OP], [1, _A_OP, _A_OP**2]])
ALPHA = SEQUENCE_MATRIX[:, 1].copy()        # (1, a^2, a): positive-sequence phase angles


def sequence_to_phase(z0, z1) -> np.ndarray:
    """Phase impedance matrix Z_abc = A diag(z0, z1, z1) A^-1 [same unit as z0, z1], for
    scalars (3x3) or arrays of branches (n x 3 x 3)."""
    z0, z1 = np.broadcast_arrays(np.asarray(z0, complex), np.asarray(z1, complex))
    diag = np.zeros(z0.shape + (3, 3), complex)
    diag[..., 0, 0], diag[..., 1, 1], diag[..., 2, 2] = z0, z1, z1
    return SEQUENCE_MATRIX @ diag @ np.linalg.inv(SEQUENCE_MATRIX)


def connection_weights(connection: str) -> np.ndarray:
    """Complex share w of a user's complex power on phases (a, b, c) (module docstring)."""
    require_choice("connection", connection, CONNECTIONS)
    w = np.zeros(3, complex)
    if connection == "abc":
        w[:] = 1 / 3
    elif len(connection) == 1:
        w["abc".index(connection)] = 1.0
    else:
        phi, psi = ("abc".index(c) for c in connection)
        w[phi] = np.exp(-1j * np.pi / 6) / np.sqrt(3)
        w[psi] = np.exp(1j * np.pi / 6) / np.sqrt(3)
    return w


@dataclass(frozen=True)
class ThreePhaseNetwork:
    """Three-phase data of an LV feeder, aligned with its LinDistFlow
    :class:`~flexgame.markets.distribution.Feeder` (branch k feeds bus ``feeder.child[k]``).

    Attributes:
        z_abc_pu: phase impedance matrix per branch [p.u. on Z_base = V_LL^2 / S_base],
            branches x 3 x 3 complex.
        rating_mva: per-phase thermal rating per branch [MVA per phase], inf for none.
        connections: per user, one of :data:`CONNECTIONS`.
        neutral_rating_mva: neutral current limit per branch as V_ph x I_n,max [MVA], inf
            for none (``None``: no neutral limit anywhere).
    """

    z_abc_pu: np.ndarray
    rating_mva: np.ndarray
    connections: tuple[str, ...]
    neutral_rating_mva: np.ndarray | None = None

    def __post_init__(self) -> None:
        z = np.asarray(self.z_abc_pu)
        if z.ndim != 3 or z.shape[1:] != (3, 3):
            raise FlexgameInputError(f"z_abc_pu has shape {z.shape}; expected branches x 3 x 3")
        for key in ("rating_mva", "neutral_rating_mva"):
            value = getattr(self, key)
            if value is not None and np.shape(value) != (z.shape[0],):
                raise FlexgameInputError(f"{key} has shape {np.shape(value)}; expected "
                                         f"({z.shape[0]},), one per branch")
        for c in self.connections:
            connection_weights(c)

    def user_weights(self, tan_phi: float = 0.0) -> np.ndarray:
        """users x 3 complex power per MW of net demand on each phase: w (1 + j tan_phi)."""
        return np.array([connection_weights(c) for c in self.connections]).reshape(-1, 3) \
            * (1 + 1j * tan_phi)

    def rotated_impedance(self) -> np.ndarray:
        """Zt[k, phi, psi] = conj(alpha^phi) Z_k[phi, psi] alpha^psi (module docstring)."""
        return np.conj(ALPHA)[None, :, None] * self.z_abc_pu * ALPHA[None, None, :]

    def merged(self, segments: list[list[int]], user_order) -> ThreePhaseNetwork:
        """The network after series reduction: new branch n is the chain of old branches
        ``segments[n]`` (impedances add, the smallest rating holds); users re-ordered by
        ``user_order`` (old user index per new user)."""
        z = np.array([self.z_abc_pu[s].sum(axis=0) for s in segments]).reshape(-1, 3, 3)
        rating = np.array([np.min(self.rating_mva[s]) for s in segments])
        neutral = (None if self.neutral_rating_mva is None else
                   np.array([np.min(self.neutral_rating_mva[s]) for s in segments]))
        return ThreePhaseNetwork(z, rating, tuple(self.connections[u] for u in user_order),
                                 neutral)

    def with_connections(self, connections) -> ThreePhaseNetwork:
        """The same lines with other user connections (one per user)."""
        connections = tuple(connections)
        if len(connections) != len(self.connections):
            raise FlexgameInputError(f"connections has {len(connections)} entries, the feeder "
                                     f"{len(self.connections)} users")
        return replace(self, connections=connections)


def phase_limit_rows(lv, tan_phi: float = 0.0, sides: int = DEFAULT_SIDES
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The three-phase limits as rows A d <= b in the users' net demands d [kW] (consumption
    positive): voltage lower limits (bus-major, phases a, b, c per non-root bus), voltage
    upper limits (same order), then per branch with a finite rating, per phase, the
    ``sides`` polygon rows of |S_k^phi| <= rating, then per branch with a finite neutral
    rating the ``sides`` polygon rows of its neutral current (module docstring).

    ``lv`` is an :class:`~flexgame.markets.lv_feeder.LVFeeder` with ``three_phase`` data.
    """
    tp = _network(lv)
    if sides < 4 or sides % 2:
        raise FlexgameInputError(f"sides={sides}: the line polygon needs an even number >= 4")
    f = lv.feeder
    per_kw = 1e-3
    t_users = f.subtree[:, lv.user_bus].toarray()              # branches x users
    s = tp.user_weights(tan_phi)                                # users x 3 [MW per MW]
    zt = tp.rotated_impedance()
    scale = 6.0 / f.base_mva * per_kw
    k = np.empty((f.n_buses - 1, 3, lv.n_users))
    for phi in range(3):
        per_branch = sum(zt[:, phi, psi].real[:, None] * t_users * s[:, psi].real[None, :]
                         + zt[:, phi, psi].imag[:, None] * t_users * s[:, psi].imag[None, :]
                         for psi in range(3))
        k[:, phi, :] = np.asarray(f.subtree.T @ per_branch)[1:] * scale
    k = k.reshape(-1, lv.n_users)
    v_min_sq = np.repeat(np.asarray(f.v_min, float)[1:] ** 2, 3)
    v_max_sq = np.repeat(np.asarray(f.v_max, float)[1:] ** 2, 3)
    # line polygon: vertices on the power-factor ray, normals between them
    theta = np.arctan(tan_phi) + np.pi / sides + 2 * np.pi * np.arange(sides) / sides
    rating = np.asarray(tp.rating_mva, float)
    finite = np.flatnonzero(np.isfinite(rating))
    rot = np.exp(-1j * theta)                                   # Re(S e^-jt) = P cos t + Q sin t
    coef = (s.T[:, None, :] * rot[None, :, None]).real          # 3 x sides x users
    lines = (t_users[finite][:, None, None, :] * coef[None] * per_kw).reshape(-1, lv.n_users)
    line_b = np.repeat(rating[finite] * np.cos(np.pi / sides), 3 * sides)
    # neutral: I_n per MW of a user's demand = sum_psi conj(s_psi) alpha_psi
    n_rating = (np.full(len(rating), np.inf) if tp.neutral_rating_mva is None
                else np.asarray(tp.neutral_rating_mva, float))
    has_n = np.flatnonzero(np.isfinite(n_rating))
    n_user = np.conj(s) @ ALPHA
    n_user[np.abs(n_user) < 1e-12] = 0.0        # balanced users: zero up to round-off
    n_coef = (n_user[None, :] * rot[:, None]).real                          # sides x users
    neutral = (t_users[has_n][:, None, :] * n_coef[None] * per_kw).reshape(-1, lv.n_users)
    neutral_b = np.repeat(n_rating[has_n] * np.cos(np.pi / sides), sides)
    a = np.vstack([k, -k, lines, neutral])
    b = np.concatenate([f.v0_sq - v_min_sq, v_max_sq - f.v0_sq, line_b, neutral_b])
    return a, b


@dataclass(frozen=True)
class PhaseState:
    """Linear three-phase state: ``s_mva`` branches x 3 complex flows (parent -> child, per
    phase [MVA]) and ``v_sq`` buses x 3 squared phase-neutral voltages [p.u.^2]."""

    s_mva: np.ndarray
    v_sq: np.ndarray

    @property
    def neutral_mva(self) -> np.ndarray:
        """Neutral current per branch as V_ph x |I_n| [MVA], I_n ~ sum conj(S) alpha."""
        return np.abs(np.conj(self.s_mva) @ ALPHA)

    @property
    def v_pu(self) -> np.ndarray:
        return np.sqrt(self.v_sq)


def linear_state(lv, d_kw, tan_phi: float = 0.0) -> PhaseState:
    """Evaluate the linear three-phase model at net demands ``d_kw`` [kW per user] by a
    backward (flows) / forward (voltages) sweep, independently of :func:`phase_limit_rows`."""
    tp = _network(lv)
    f = lv.feeder
    d = np.asarray(d_kw, float)
    if d.shape != (lv.n_users,):
        raise FlexgameInputError(f"d_kw has shape {d.shape}; expected ({lv.n_users},)")
    bus_s = np.zeros((f.n_buses, 3), complex)
    np.add.at(bus_s, lv.user_bus, tp.user_weights(tan_phi) * d[:, None] * 1e-3)
    below = bus_s.copy()
    for j in range(f.n_buses - 1, 0, -1):                       # parents precede children
        below[f.parent[j]] += below[j]
    s_branch = below[f.child]
    zt = tp.rotated_impedance()
    v = np.full((f.n_buses, 3), f.v0_sq)
    for j in range(1, f.n_buses):
        k = f.branch_of[j]
        v[j] = v[f.parent[j]] - 6.0 / f.base_mva * (zt[k] @ np.conj(s_branch[k])).real
    return PhaseState(s_mva=s_branch, v_sq=v)


def pandapower_network(net, bus_order, parent, base_mva: float, include_transformer: bool,
                       user_names) -> ThreePhaseNetwork:
    """Three-phase data of a pandapower LV network oriented as ``bus_order`` (pandapower bus
    per feeder bus, root first) with ``parent`` (feeder bus index per bus, -1 for the root).

    Lines: Z_abc from (r, x) and (r0, x0) per km (:func:`sequence_to_phase`), divided by
    ``parallel``; per-phase rating V_LL / sqrt 3 x max_i_ka x parallel. Transformer (Dyn,
    star-grounded LV side): z1 from vk_percent / vkr_percent, z0 from vk0_percent /
    vkr0_percent (the LV-side zero-sequence path closes in the delta), on sn_mva, per-phase
    rating sn_mva / 3. Neutral ratings: a line's phase rating (full-size neutral), none for
    the transformer. Users' connections from their asymmetric loads: the one phase with
    nonzero power ("a", "b" or "c"), or all three ("abc").
    """
    tr = net.trafo.iloc[0]
    vn = float(tr.vn_lv_kv)
    z_base = vn**2 / base_mva
    branch: dict[frozenset, tuple[complex, complex, float]] = {}
    for ln in net.line[net.line.in_service].itertuples():
        L = float(ln.length_km) / float(ln.parallel)
        z1 = complex(ln.r_ohm_per_km, ln.x_ohm_per_km) * L / z_base
        z0 = complex(ln.r0_ohm_per_km, ln.x0_ohm_per_km) * L / z_base
        branch[frozenset((int(ln.from_bus), int(ln.to_bus)))] = (
            z0, z1, vn / np.sqrt(3) * float(ln.max_i_ka) * float(ln.parallel))
    if include_transformer:
        def z_tr(vk, vkr):
            z, r = vk / 100 * base_mva / tr.sn_mva, vkr / 100 * base_mva / tr.sn_mva
            return complex(r, np.sqrt(max(z**2 - r**2, 0.0)))
        vk0 = float(tr.get("vk0_percent", tr.vk_percent))
        vkr0 = float(tr.get("vkr0_percent", tr.vkr_percent))
        branch[frozenset((int(tr.hv_bus), int(tr.lv_bus)))] = (
            z_tr(vk0, vkr0), z_tr(tr.vk_percent, tr.vkr_percent), float(tr.sn_mva) / 3)
    z0s, z1s, ratings, neutral = [], [], [], []
    trafo = frozenset((int(tr.hv_bus), int(tr.lv_bus)))
    for j in range(1, len(bus_order)):
        key = frozenset((int(bus_order[j]), int(bus_order[parent[j]])))
        z0, z1, rating = branch[key]
        z0s.append(z0), z1s.append(z1), ratings.append(rating)
        neutral.append(np.inf if key == trafo else rating)
    loads = net.asymmetric_load
    if not len(loads):
        raise FlexgameInputError("phase_model='three_phase' needs the network's "
                                 "asymmetric_load table (the users' phases)")
    conn_of = {}
    for ld in loads.itertuples():
        if getattr(ld, "type", "wye") != "wye":
            raise FlexgameInputError(f"load {ld.name}: type={ld.type!r}; only wye loads carry "
                                     "their phase in pandapower's table")
        on = [abs(getattr(ld, f"p_{p}_mw")) + abs(getattr(ld, f"q_{p}_mvar")) > 0 for p in "abc"]
        if sum(on) not in (1, 3):
            raise FlexgameInputError(f"load {ld.name}: power on {sum(on)} phases; one (a user "
                                     "phase to neutral) or three (balanced) are supported")
        conn_of[str(ld.name)] = "abc" if sum(on) == 3 else "abc"[on.index(True)]
    return ThreePhaseNetwork(sequence_to_phase(z0s, z1s).reshape(-1, 3, 3),
                             np.array(ratings, float),
                             tuple(conn_of[n] for n in user_names), np.array(neutral, float))


def _network(lv) -> ThreePhaseNetwork:
    tp = getattr(lv, "three_phase", None)
    if tp is None:
        raise FlexgameInputError("the feeder has no three-phase data; build it with "
                                 "phase_model='three_phase'")
    if len(tp.connections) != lv.n_users or len(tp.rating_mva) != lv.feeder.n_buses - 1:
        raise FlexgameInputError("the feeder's three-phase data does not match its users / "
                                 "branches")
    return tp
