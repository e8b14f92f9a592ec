"""Operating envelopes of non-firm connection agreements (NFCA; report 001 §3.5.1, ch. 5).

For the participating users P, an envelope is a guaranteed import capacity m_i >= 0 (net
consumption, net demand up to +m_i) and export capacity e_i >= 0 (net injection, net demand
down to -e_i), each at most the user's connection capacity c_i, such that the feeder stays
within its voltage and thermal limits for EVERY combination of

* participants anywhere in their envelope box  d_i in [-e_i, m_i], and
* firm users (non-participants) anywhere in their connection box d_i in [-c_i, c_i]
  (``mode="static"``) or at a given forecast d_i = f_i (``mode="dynamic"``).

Model: LinDistFlow (:class:`~flexgame.markets.distribution.Feeder`; for a feeder built with
``phase_model="three_phase"`` the linearised three-phase rows of
:mod:`~flexgame.markets.lv_three_phase`, the rest below unchanged), with reactive demand
q_i = tan_phi x d_i per user (unity power factor by default). Every limit is then a linear
row a . d <= b in the users' net demands [kW]:

* voltages: v_j = v0 - sum_i K_ji d_i with K = T^T diag(2 (r + x tan_phi) / S_base) T (per
  kW); v_j >= v_min^2 gives  K_j . d <= v0 - v_min^2, v_j <= v_max^2 gives
  -K_j . d <= v_max^2 - v0;
* lines: |P_k| sqrt(1 + tan_phi^2) <= rating_k with P_k = T_k . d, both signs.

Robustness over a box is exact for a linear row: the largest a . d over the box is reached
at a vertex, and, per user, at the bound the sign of its sensitivity a_i picks (the upper
bound when a_i > 0, the lower when a_i < 0). For a participant that worst term is
max(a_i m_i, -a_i e_i) = a_i^+ m_i + a_i^- e_i (a^+ = max(a, 0), a^- = max(-a, 0)), which
is linear in the envelope, and for a firm user max(a_i lo_i, a_i hi_i), a constant. The
robust counterpart of each row is therefore the linear constraint

    sum_{i in P} (a_i^+ m_i + a_i^- e_i) <= b - sum_{i not in P} max(a_i lo_i, a_i hi_i),

with import and export each taking their own worst case (on the single-phase LinDistFlow of a
radial feeder the sensitivities of a row share a sign, so import rows hold only m and export
rows only e; the three-phase rows mix signs and couple m and e). The adversarial
vertex of each row is :func:`worst_vertex`.

Policies:

* ``"optimal"``: maximise sum_i (m_i + e_i), an LP on HiGHS (:class:`CompiledLP`); its
  optimum is often not unique (which users get the capacity is the solver's choice);
* ``"fair"``: one common level per direction, m_i = lambda_m w_i, e_i = lambda_e w_i with
  w_i = 1 (``weights="equal"``: the same kW for everyone) or w_i = c_i
  (``weights="capacity"``: the same share of connection capacity); two small LPs on HiGHS
  (:func:`_fair_levels`: the best level both directions reach, then the best sum above
  it; with separate import and export rows, per direction the ratio test lambda = min over
  rows of slack / (a^+ . w), :func:`ratio_levels` for equal weights);
* ``"proportional_fair"``: maximise sum_i (log m_i + log e_i) (cvxpy, Clarabel); the result
  is scaled down by the solver's residual, if any, so that it satisfies every robust row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from flexgame.markets.errors import FlexgameInputError, SolverError, require_choice
from flexgame.markets.lp import INF, CompiledLP
from flexgame.markets.lv_feeder import LVFeeder
from flexgame.markets.lv_three_phase import phase_limit_rows

POLICIES = ("optimal", "fair", "proportional_fair")
MODES = ("static", "dynamic")
WEIGHTS = ("equal", "capacity")


@dataclass(frozen=True)
class Envelopes:
    """Operating envelopes of the participating users.

    Attributes:
        users: user index per participant (into the LVFeeder's users).
        names: participant names.
        import_kw, export_kw: guaranteed import (consumption) and export (injection)
            capacity per participant [kW], both >= 0 (export as a magnitude).
        capacity_kw: connection capacity per participant [kW].
        policy, mode, weights: how they were computed.
        runtime_s: wall time of the computation (rows and the solve).
    """

    users: np.ndarray
    names: list[str]
    import_kw: np.ndarray
    export_kw: np.ndarray
    capacity_kw: np.ndarray
    policy: str
    mode: str
    weights: str
    runtime_s: float

    @property
    def total_import_kw(self) -> float:
        return float(self.import_kw.sum())

    @property
    def total_export_kw(self) -> float:
        return float(self.export_kw.sum())

    @property
    def total_kw(self) -> float:
        return self.total_import_kw + self.total_export_kw

    def of(self, user: int) -> tuple[float, float]:
        """(import, -export) [kW] of the user with this index."""
        k = int(np.flatnonzero(self.users == user)[0])
        return float(self.import_kw[k]), -float(self.export_kw[k])

    def __repr__(self) -> str:
        return (f"Envelopes({self.policy}, {self.mode}, {len(self.users)} participants: import "
                f"{self.total_import_kw:.1f} kW [{self.import_kw.min():.2f}, "
                f"{self.import_kw.max():.2f}], export {self.total_export_kw:.1f} kW "
                f"[{self.export_kw.min():.2f}, {self.export_kw.max():.2f}], "
                f"{self.runtime_s * 1e3:.0f} ms)")


def limit_rows(lv: LVFeeder, tan_phi: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The feeder's limits as rows A d <= b in the users' net demands d [kW] (module
    docstring): voltage rows (lower limits, then upper) for the non-root buses, then line
    rows (forward, then reverse). A feeder with ``phase_model="three_phase"`` gives the
    linearised three-phase rows instead (:func:`~flexgame.markets.lv_three_phase.phase_limit_rows`)."""
    if lv.phase_model == "three_phase":
        return phase_limit_rows(lv, tan_phi)
    f = lv.feeder
    per_kw = 1e-3                                   # MW per kW
    t_users = f.subtree[:, lv.user_bus].toarray()   # branches x users
    drop = 2.0 * (f.r_pu + f.x_pu * tan_phi) / f.base_mva
    k = f.subtree.T @ sp.diags(drop) @ sp.csr_matrix(t_users)    # buses x users [per MW]
    k = np.asarray(k.todense())[1:] * per_kw
    v_min_sq = np.asarray(f.v_min, float)[1:] ** 2
    v_max_sq = np.asarray(f.v_max, float)[1:] ** 2
    scale = np.sqrt(1.0 + tan_phi**2)
    rating = np.asarray(f.rating_mva, float)
    finite = np.isfinite(rating)
    t_kw = t_users[finite] * per_kw * scale
    a = np.vstack([k, -k, t_kw, -t_kw])
    b = np.concatenate([f.v0_sq - v_min_sq, v_max_sq - f.v0_sq, rating[finite],
                        rating[finite]])
    return a, b


def robust_rows(a: np.ndarray, b: np.ndarray, participants: np.ndarray, lo: np.ndarray,
                hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust counterpart G [m; e] <= h of the rows A d <= b, the participants' columns
    becoming (a^+ for import m, a^- for export e) and the others' worst bound (by the sign
    of their sensitivity) moved to the right-hand side. ``lo``, ``hi``: bounds of every
    user's net demand [kW] (only the non-participants' are used)."""
    n = a.shape[1]
    firm = np.setdiff1d(np.arange(n), participants)
    worst_firm = np.maximum(a[:, firm] * lo[firm], a[:, firm] * hi[firm]).sum(axis=1)
    ap = a[:, participants]
    g = np.hstack([np.maximum(ap, 0.0), np.maximum(-ap, 0.0)])
    return g, b - worst_firm


def worst_vertex(a_row: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The vertex of the box [lo, hi] that maximises a_row . d: each user at the bound its
    sensitivity's sign picks (upper for a_i > 0, lower otherwise)."""
    return np.where(a_row > 0, hi, lo)


def ratio_levels(lv: LVFeeder, tan_phi: float = 0.0) -> tuple[float, float, float]:
    """Equal-kW fair levels [kW] of all users (static) by ratio tests on the robust rows
    G [m; e] <= h: lambda = min over the rows with a positive coefficient of h / (row sum),
    capped at the smallest connection capacity, for import alone (export at 0), export alone
    (import at 0) and import = export. A closed form, independent of the fair policy's LPs
    (:func:`_fair_levels`): with separate import and export rows (single-phase LinDistFlow)
    the fair policy reaches the first two; with coupled rows (three-phase) at least the
    third."""
    a, b = limit_rows(lv, tan_phi)
    n, cap = lv.n_users, np.asarray(lv.capacity_kw, float)
    g, h = robust_rows(a, b, np.arange(n), -cap, cap)
    gm, ge = g[:, :n].sum(axis=1), g[:, n:].sum(axis=1)

    def level(row: np.ndarray) -> float:
        pos = row > 0
        return min(float(np.min(h[pos] / row[pos], initial=np.inf)), float(cap.min()))

    return level(gm), level(ge), level(gm + ge)


class FirmUsersUnsafe(FlexgameInputError):
    """The firm users alone, anywhere in their bounds, can violate a feeder limit: no
    envelope, not even zero, is safe for the participants."""


def _box(lv: LVFeeder, mode: str, forecast_kw) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of every user's net demand [kW]: its connection box (static) or its forecast
    (dynamic; only the firm users' bounds are used)."""
    cap = np.asarray(lv.capacity_kw, float)
    if mode == "static":
        return -cap, cap.copy()
    if forecast_kw is None:
        raise FlexgameInputError("mode='dynamic' needs forecast_kw (net demand per user)")
    f = np.asarray(forecast_kw, float)
    if f.shape != cap.shape:
        raise FlexgameInputError(f"forecast_kw has {f.size} values, the feeder {cap.size} users")
    return f.copy(), f.copy()


def compute_envelopes(lv: LVFeeder, policy: str = "optimal", participants=None, *,
                      mode: str = "static", forecast_kw=None, weights: str = "equal",
                      tan_phi: float = 0.0) -> Envelopes:
    """Operating envelopes of ``participants`` (user indices; all users by default) under
    ``policy`` (module docstring).

    Raises:
        FlexgameInputError: unknown policy / mode / weights.
        FirmUsersUnsafe: the firm users alone can violate a limit (no envelope, not even
            zero, is safe).
    """
    require_choice("policy", policy, POLICIES)
    require_choice("mode", mode, MODES)
    require_choice("weights", weights, WEIGHTS)
    start = time.perf_counter()
    part = (np.arange(lv.n_users) if participants is None
            else np.unique(np.asarray(participants, int)))
    n = len(part)
    cap = np.asarray(lv.capacity_kw, float)[part]
    lo, hi = _box(lv, mode, forecast_kw)
    a, b = limit_rows(lv, tan_phi)
    g, h = robust_rows(a, b, part, lo, hi)
    tol = 1e-12
    if (h < -tol).any():
        raise FirmUsersUnsafe(
            f"the firm users alone can violate {int((h < -tol).sum())} feeder limit(s) "
            f"(worst by {-h.min():.3g}); no envelope is safe")
    h = np.maximum(h, 0.0)
    active = np.abs(g).sum(axis=1) > 0
    g, h = g[active], h[active]
    if n == 0:
        m = e = np.zeros(0)
    elif policy == "optimal":
        lp = CompiledLP.from_arrays(-np.ones(2 * n), sp.csc_matrix(g), np.full(len(h), -INF),
                                    h, np.zeros(2 * n), np.concatenate([cap, cap]))
        x = lp.solve().require_optimal("optimal operating envelopes").x
        m, e = x[:n], x[n:]
    elif policy == "fair":
        w = np.ones(n) if weights == "equal" else cap
        lam = _fair_levels(np.column_stack([g[:, :n] @ w, g[:, n:] @ w]), h,
                           float(np.min(cap / w)))
        m, e = lam[0] * w, lam[1] * w
    else:
        m, e = _proportional_fair(g, h, cap)
    # clip the solvers' round-off so that the rows hold exactly
    x = np.clip(np.concatenate([m, e]), 0.0, np.concatenate([cap, cap]))
    load = g @ x
    over = load > h
    if over.any():
        x *= float(np.min(np.where(over, h / np.maximum(load, 1e-300), 1.0)))
    return Envelopes(users=part, names=[lv.user_names[i] for i in part], import_kw=x[:n],
                     export_kw=x[n:], capacity_kw=cap, policy=policy, mode=mode,
                     weights=weights if policy == "fair" else "-",
                     runtime_s=time.perf_counter() - start)


FAIR_SLACK = 1e-9
"""Relative slack under the best common level of both directions that the fair policy's
second LP keeps (so that the first LP's optimum stays feasible in the second)."""


def _fair_levels(g2: np.ndarray, h: np.ndarray, ub: float) -> np.ndarray:
    """The fair levels (lambda_m, lambda_e) of the robust rows ``g2 lambda <= h``, both in
    [0, ub]: first the largest level t both directions reach together (max t s.t. lambda_m,
    lambda_e >= t), then the largest lambda_m + lambda_e with both at least t. Where import
    and export rows are separate (single-phase LinDistFlow) this is each direction's own
    largest level; where they are coupled (three-phase: a phase's voltage also drops when the
    other phases export, through the neutral), it does not sell one direction off for the
    other, as maximising the sum alone would (the three-phase IEEE European LV feeder: 3.89
    kW import and 0 kW export)."""
    rows = np.full(len(h), -INF)
    # max t: columns (lambda_m, lambda_e, t), rows g2 lambda <= h and t - lambda <= 0
    a = sp.csc_matrix(np.block([[g2, np.zeros((len(h), 1))],
                                [-np.eye(2), np.ones((2, 1))]]))
    both = CompiledLP.from_arrays(np.array([0.0, 0.0, -1.0]), a, np.r_[rows, -INF, -INF],
                                  np.r_[h, 0.0, 0.0], np.zeros(3), np.full(3, ub))
    t = both.solve().require_optimal("fair operating envelopes (common level)").x[2]
    lp = CompiledLP.from_arrays(-np.ones(2), sp.csc_matrix(g2), rows, h,
                                np.full(2, t * (1 - FAIR_SLACK)), np.full(2, ub))
    return lp.solve().require_optimal("fair operating envelopes").x


def _proportional_fair(g: np.ndarray, h: np.ndarray, cap: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    import cvxpy as cp

    n = len(cap)
    # scale rows to unit norm (voltage and kW rows differ by orders of magnitude)
    norm = np.linalg.norm(g, axis=1)
    gs, hs = g / norm[:, None], h / norm
    x = cp.Variable(2 * n)
    capc = np.concatenate([cap, cap])
    prob = cp.Problem(cp.Maximize(cp.sum(cp.log(x))), [gs @ x <= hs, x <= capc])
    prob.solve(solver=cp.CLARABEL)
    # an inaccurate optimum is accepted: compute_envelopes scales the result back inside
    # every robust row, so it is safe (at worst slightly below the proportional-fair optimum)
    if prob.status not in ("optimal", "optimal_inaccurate") or x.value is None:
        raise SolverError(f"proportional-fair operating envelopes: Clarabel status {prob.status}")
    v = np.maximum(np.asarray(x.value, float), 0.0)
    return v[:n], v[n:]
