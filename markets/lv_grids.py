"""Synthetic urban LV grids calibrated to report 001 ch. 5 (Sibelga, Brussels), and the
classification of feeders into the chapter's three types (issue 15, item 3).

Calibration (report 001 §5.2, "Case study B - Sibelga grid", the paragraph under Figure 5-5):

* 49 LV feeders, 712 connection points, 2,267 end-users ("several end-users can be connected to
  the same grid connection point"): on average 712 / 49 = 14.5 connection points and
  2,267 / 49 = 46.3 users per feeder, 2,267 / 712 = 3.18 users per connection point;
* nominal voltage 230 V (the Brussels 3 x 230 V grid: users delta-connected, between phases);
* connection capacities from 3.7 kVA (single-phase 16 A: 230 V x 16 A) to 25.1 kVA
  (three-phase 63 A: sqrt 3 x 230 V x 63 A);
* average distance between connection points 13 m;
* "end-users are unevenly distributed across the feeders": feeder sizes and users per
  connection point are drawn from over-dispersed (gamma-mixed) distributions;
* §5.2 type 1: "short lengths (58 to 227 meters) and a small number of end-users (1 to 24)";
  type 3's example (Figure 5-8) has single-family homes along the street and one building with
  20 end-users mid-street.

Assumptions (NOT from the chapter, stated here and as :class:`GridConfig` defaults):

* cables: pandapower's standard types, the backbone (and the head from the LV busbar)
  ``NAYY 4x150 SE`` (r = 0.208 ohm/km, x = 0.080 ohm/km, 270 A), branches ``NAYY 4x120 SE``
  (0.225, 0.080, 242 A); service cables to the buildings are not modelled (the users sit on
  their connection point's bus);
* topology: a backbone with branches; each connection point after the first starts a branch
  (from a uniformly chosen backbone connection point) with probability ``p_branch`` (0.25),
  continues the current branch with ``p_continue`` (0.6) if one is open, else extends the
  backbone; every connection point is ``spacing_m`` (13 m) from its parent; the first backbone
  connection point is ``head_length_m`` (uniform 13-60 m) from the LV busbar;
* sizes: connection points per feeder = 1 + negative binomial (mean 13.5, shape 1.5); users
  per connection point = 1 + negative binomial (mean 2.18, shape 0.35: most are single-family
  houses, a few multi-user buildings of 10-30); :func:`generate_grid` with ``exact_totals``
  (default) distributes exactly 712 connection points over the 49 feeders and 2,267 users over
  the connection points with the same gamma weights (a Dirichlet-multinomial), so the grid's
  totals are the chapter's;
* capacities: the standard breaker ratings 16/20/25/32/40/50/63 A, single-phase
  (230 V x I: 3.68-14.5 kVA) or three-phase (sqrt 3 x 230 V x I: 6.37-25.1 kVA) with the
  probabilities of :data:`DEFAULT_CAPACITY_MIX` (single-phase 70 %, mostly 40 A = 9.2 kVA);
  the capacity is taken in kW (unity power factor), as in :mod:`flexgame.markets.lv_feeder`;
* electrical model (``impedance_model``): ``"balanced"`` (default): positive sequence, each
  user's power spread over the three phases, line rating sqrt 3 x V x I_max;
  ``"single_phase"``: conservatively every user single-phase on the same pair of phases of
  the 3-wire delta grid: the loop impedance 2 z1 per line, rating V x I_max (no neutral, so
  not :mod:`~flexgame.markets.lv_feeder`'s 2 z1 + z0 phase-neutral model);
* per unit: S_base 1 MVA, V_base 0.23 kV; root = the LV busbar at ``v0_pu`` (1.0) with no
  transformer; voltage limits EN 50160 +-10 % (the chapter states none).

Classification (§5.2): with fair and optimal envelopes, totals T = import + export over all
users and capacity C = 2 x sum c_i. The fair envelope is by default the same share of every
user's connection capacity (``weights="capacity"``): with the chapter's heterogeneous 3.7-25.1
kVA capacities, the equal-kW fair envelope (``weights="equal"``, §5.1's rule with its uniform
9.2 kVA) is capped at the smallest capacity, so it could never reach the capacity of a feeder
that does not bind and type 1 ("fair = optimal = capacity") would be empty:

* type 1: fair = optimal = capacity (T_fair >= (1 - rtol) C): the feeder never binds;
* type 2: fair = optimal < capacity (|T_opt - T_fair| <= rtol T_opt);
* type 3: optimal > fair (T_opt - T_fair > rtol T_opt);

``rtol`` = 1 % by default (the chapter's "similar" / "significant differences" states no
number); fair <= optimal <= capacity always holds (the fair envelope is a feasible point of
the optimal LP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flexgame.markets.envelopes import Envelopes, compute_envelopes
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.lv_feeder import (
    DEFAULT_V_LIMITS,
    IMPEDANCE_MODELS,
    LVFeeder,
    _feeder_from_tree,
    _Tree,
)

SQRT3 = float(np.sqrt(3.0))
BREAKERS_A = (16, 20, 25, 32, 40, 50, 63)
# (phases, breaker A) -> probability; assumption (module docstring), sums to 1
DEFAULT_CAPACITY_MIX: dict[tuple[int, int], float] = {
    (1, 16): 0.10, (1, 20): 0.05, (1, 25): 0.10, (1, 32): 0.10, (1, 40): 0.25,
    (1, 50): 0.05, (1, 63): 0.05,
    (3, 16): 0.05, (3, 20): 0.03, (3, 25): 0.07, (3, 32): 0.07, (3, 40): 0.05,
    (3, 50): 0.02, (3, 63): 0.01,
}

TYPE_NAMES = {1: "fair = optimal = capacity", 2: "fair = optimal < capacity",
              3: "optimal > fair"}


@dataclass(frozen=True)
class CableType:
    """A cable: per-km positive-sequence impedance and thermal current [A]."""

    name: str
    r_ohm_per_km: float
    x_ohm_per_km: float
    max_i_a: float


# pandapower standard line types (pandapower.std_types), the usual urban LV Al cables
NAYY_4x150 = CableType("NAYY 4x150 SE", 0.208, 0.080, 270.0)
NAYY_4x120 = CableType("NAYY 4x120 SE", 0.225, 0.080, 242.0)


@dataclass(frozen=True)
class GridConfig:
    """Generator settings; the defaults are report 001 §5.2's figures (module docstring) and
    the stated assumptions.

    Attributes:
        n_feeders, n_connection_points, n_users: the grid's totals (§5.2: 49, 712, 2,267).
        spacing_m: cable length between neighbouring connection points (§5.2: 13 m average).
        vn_kv: nominal (line-to-line) voltage (§5.2: 230 V).
        capacity_mix: (phases, breaker A) -> probability; capacities sqrt(phases == 3 ? 3 : 1)
            x vn x I, 3.68-25.1 kVA (§5.2: 3.7-25.1 kVA).
        exact_totals: :func:`generate_grid` hits the totals exactly (else each feeder is
            drawn independently by :func:`generate_feeder`).
        size_shape, users_shape: gamma shapes of the feeder-size and users-per-connection-
            point over-dispersion (smaller = more uneven).
        head_length_m: range of the LV busbar -> first connection point cable.
        p_branch, p_continue: topology (module docstring).
        backbone_cable, branch_cable: cable types (assumption: pandapower NAYY 4x150 / 4x120).
        impedance_model: "balanced" or "single_phase" (module docstring).
        v0_pu, v_limits, base_mva: root voltage, bus voltage limits, per-unit base.
    """

    n_feeders: int = 49
    n_connection_points: int = 712
    n_users: int = 2267
    spacing_m: float = 13.0
    vn_kv: float = 0.23
    capacity_mix: dict = field(default_factory=lambda: dict(DEFAULT_CAPACITY_MIX))
    exact_totals: bool = True
    size_shape: float = 1.5
    users_shape: float = 0.35
    head_length_m: tuple[float, float] = (13.0, 60.0)
    p_branch: float = 0.25
    p_continue: float = 0.6
    backbone_cable: CableType = NAYY_4x150
    branch_cable: CableType = NAYY_4x120
    impedance_model: str = "balanced"
    v0_pu: float = 1.0
    v_limits: tuple[float, float] = DEFAULT_V_LIMITS
    base_mva: float = 1.0

    @property
    def mean_connection_points(self) -> float:
        return self.n_connection_points / self.n_feeders

    @property
    def mean_users_per_connection_point(self) -> float:
        return self.n_users / self.n_connection_points

    def capacity_options_kva(self) -> tuple[np.ndarray, np.ndarray]:
        """(kVA per option, probability per option) of the capacity mix."""
        keys = list(self.capacity_mix)
        kva = np.array([(SQRT3 if ph == 3 else 1.0) * self.vn_kv * amp for ph, amp in keys])
        p = np.array([self.capacity_mix[k] for k in keys], float)
        if (p < 0).any() or p.sum() <= 0:
            raise FlexgameInputError("capacity_mix needs non-negative probabilities")
        return kva, p / p.sum()


def _neg_binomial(rng: np.random.Generator, mean: float, shape: float, size=None):
    """Gamma-Poisson draw with this mean and gamma shape."""
    lam = rng.gamma(shape, mean / shape, size=size)
    return rng.poisson(lam)


def _topology(rng: np.random.Generator, n_cp: int, config: GridConfig
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parent (root = 0, connection points 1..n_cp), length [m] and backbone flag per node."""
    parent = np.full(n_cp + 1, -1)
    length = np.zeros(n_cp + 1)
    backbone = np.zeros(n_cp + 1, bool)
    lo, hi = config.head_length_m
    parent[1], length[1], backbone[1] = 0, rng.uniform(lo, hi), True
    backbone_nodes, tip, open_branch = [1], 1, None
    for j in range(2, n_cp + 1):
        u = rng.random()
        if u < config.p_branch:                       # new branch from a backbone node
            parent[j] = backbone_nodes[rng.integers(len(backbone_nodes))]
            open_branch = j
        elif open_branch is not None and u < config.p_branch + (1 - config.p_branch) * \
                config.p_continue:                    # continue the open branch
            parent[j] = open_branch
            open_branch = j
        else:                                         # extend the backbone
            parent[j], backbone[j] = tip, True
            tip = j
            backbone_nodes.append(j)
            open_branch = None
        length[j] = config.spacing_m
    return parent, length, backbone


def generate_feeder(rng: np.random.Generator, config: GridConfig | None = None, *,
                    n_connection_points: int | None = None, users_per_cp=None,
                    name: str = "lv_feeder") -> LVFeeder:
    """One radial urban LV feeder: a backbone with branches, connection points every
    ``spacing_m`` and users (with capacities) at the connection points.

    ``n_connection_points`` and ``users_per_cp`` (one count >= 1 per connection point) are
    drawn from the config's distributions unless given."""
    config = config or GridConfig()
    require_choice("impedance_model", config.impedance_model, IMPEDANCE_MODELS)
    if n_connection_points is None:
        mean = config.mean_connection_points - 1.0
        n_connection_points = 1 + int(_neg_binomial(rng, mean, config.size_shape))
    n_cp = int(n_connection_points)
    if n_cp < 1:
        raise FlexgameInputError("a feeder needs at least one connection point")
    if users_per_cp is None:
        users_per_cp = 1 + _neg_binomial(rng, config.mean_users_per_connection_point - 1.0,
                                         config.users_shape, size=n_cp)
    users_per_cp = np.asarray(users_per_cp, int)
    if users_per_cp.shape != (n_cp,) or (users_per_cp < 1).any():
        raise FlexgameInputError("users_per_cp needs one count >= 1 per connection point")
    parent, length, backbone = _topology(rng, n_cp, config)

    single = config.impedance_model == "single_phase"
    z_base = config.vn_kv**2 / config.base_mva
    factor = 2.0 if single else 1.0                   # loop impedance of a line-line user
    i_to_mva = config.vn_kv * 1e-3 * (1.0 if single else SQRT3)     # [MVA per A]
    cable = [config.backbone_cable if b else config.branch_cable for b in backbone]
    r = np.array([0.0] + [factor * cable[j].r_ohm_per_km * length[j] / 1000 / z_base
                          for j in range(1, n_cp + 1)])
    x = np.array([0.0] + [factor * cable[j].x_ohm_per_km * length[j] / 1000 / z_base
                          for j in range(1, n_cp + 1)])
    rating = np.array([np.inf] + [i_to_mva * cable[j].max_i_a for j in range(1, n_cp + 1)])
    tree = _Tree(names=["busbar"] + [f"cp{j}" for j in range(1, n_cp + 1)], parent=parent,
                 r_pu=r, x_pu=x, rating_mva=rating, length_m=length,
                 has_user=np.array([False] + [True] * n_cp))
    feeder, dist = _feeder_from_tree(tree, name, config.base_mva, config.v0_pu,
                                     config.v_limits)
    user_bus = np.repeat(np.arange(1, n_cp + 1), users_per_cp)
    user_names = [f"cp{b}.u{k}" for b, n in zip(range(1, n_cp + 1), users_per_cp)
                  for k in range(n)]
    kva, p = config.capacity_options_kva()
    cap = kva[rng.choice(len(kva), size=len(user_bus), p=p)]
    return LVFeeder(feeder=feeder, user_bus=user_bus, user_names=user_names,
                    capacity_kw=cap, distance_m=dist[user_bus],
                    impedance_model=config.impedance_model, vn_kv=config.vn_kv)


def _spread(rng: np.random.Generator, total: int, n: int, shape: float) -> np.ndarray:
    """n counts >= 1 summing to ``total``: 1 each plus a Dirichlet-multinomial of the rest."""
    if total < n:
        raise FlexgameInputError(f"cannot give {n} items at least one each out of {total}")
    w = rng.gamma(shape, 1.0, size=n)
    if w.sum() <= 0:
        w = np.ones(n)
    return 1 + rng.multinomial(total - n, w / w.sum())


def generate_grid(rng: np.random.Generator | int, config: GridConfig | None = None
                  ) -> list[LVFeeder]:
    """``config.n_feeders`` feeders (same seed, same grid). With ``exact_totals`` the grid has
    exactly ``n_connection_points`` connection points and ``n_users`` users."""
    config = config or GridConfig()
    rng = np.random.default_rng(rng)
    if not config.exact_totals:
        return [generate_feeder(rng, config, name=f"lv_feeder_{k:02d}")
                for k in range(config.n_feeders)]
    n_cp = _spread(rng, config.n_connection_points, config.n_feeders, config.size_shape)
    users = _spread(rng, config.n_users, config.n_connection_points, config.users_shape)
    out, start = [], 0
    for k, n in enumerate(n_cp):
        out.append(generate_feeder(rng, config, n_connection_points=int(n),
                                   users_per_cp=users[start:start + n],
                                   name=f"lv_feeder_{k:02d}"))
        start += n
    return out


def feeder_length_m(lv: LVFeeder) -> float:
    """Total cable length of the feeder [m]."""
    br = lv.feeder.case.branch
    return float(br.LENGTH_M.sum()) if "LENGTH_M" in br else float("nan")


@dataclass(frozen=True)
class Classification:
    """A feeder's type (1, 2 or 3) with the totals [kW] it was decided on."""

    type: int
    fair_kw: float
    optimal_kw: float
    capacity_kw: float
    rtol: float

    @property
    def description(self) -> str:
        return TYPE_NAMES[self.type]


def classify_envelopes(fair: Envelopes, optimal: Envelopes, rtol: float = 0.01
                       ) -> Classification:
    """The type from already computed fair and optimal envelopes (module docstring)."""
    cap = 2.0 * float(optimal.capacity_kw.sum())
    tf, to = fair.total_kw, optimal.total_kw
    if tf >= (1.0 - rtol) * cap:
        t = 1
    elif to - tf <= rtol * to:
        t = 2
    else:
        t = 3
    return Classification(type=t, fair_kw=tf, optimal_kw=to, capacity_kw=cap, rtol=rtol)


def classify(lv: LVFeeder, rtol: float = 0.01, *, weights: str = "capacity",
             details: bool = False) -> int | Classification:
    """Type 1, 2 or 3 of report 001 §5.2 (module docstring) from the static fair and optimal
    envelopes of all users (``weights``: the fair policy's, "capacity" by default, see the
    module docstring); ``details=True`` returns the :class:`Classification`."""
    c = classify_envelopes(compute_envelopes(lv, "fair", weights=weights),
                           compute_envelopes(lv, "optimal"), rtol)
    return c if details else c.type
