"""The interconnected TSO-DSO test system and its base state.

A transmission case (DC, PTDF) with radial feeders (LinDistFlow) attached at coupling buses.
Each feeder's net demand is drawn at its coupling bus; with ``coupling_load="replace"`` the
feeder stands for part of that bus's case load (the bus keeps the rest as a lumped load), with
``"add"`` it comes on top. The base state adds distributed generation (DG) at the far ends of
each feeder, sets feeder ratings as a multiple of base flows, tightens a few of them below
their base flow (DSO congestion), and scales transmission generation so that demand and
generation differ by the TSO's imbalance (the TSO need).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from flexgame.markets.case_loading import load_case
from flexgame.markets.distribution import LINE_LIMITS, Feeder, build_feeder
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.grid_assessment import assess_base_state
from flexgame.markets.options import check, option, pair_rule
from flexgame.markets.reprs import names
from flexgame.markets.transmission import TransmissionNetwork, build_transmission

COUPLING_LOADS = ("replace", "add")
DIRECTIONS = ("up", "down")


def _case_source(value) -> str | None:
    """Rule of a case option: a name or path, or an in-memory case (CaseFrames, dict of
    MATPOWER tables or a loaded MatpowerCase); :func:`load_case` checks its content."""
    if isinstance(value, (str, os.PathLike, Mapping)) or hasattr(value, "bus"):
        return None
    return "must be a case name, a path of a MATPOWER file, a CaseFrames or a dict"


def _positive_mw(what: str, element: str):
    """Rule of a mapping of MW values by name (``tx_ratings_mw``, ``interface_limit_mw``):
    every value > 0."""
    def rule(value: Mapping) -> str | None:
        bad = [k for k, v in value.items() if not v > 0]
        return f"needs {what} > 0 MW ({element} {bad[0]!r})" if bad else None
    return rule


@dataclass
class FeederSpec:
    """One feeder to attach: a MATPOWER case at a transmission bus.

    Attributes:
        case: case name (embedded or of the ``matpower`` package), path of a ``.m`` file, or
            an in-memory case (matpowercaseframes ``CaseFrames`` or a dict of MATPOWER tables
            in MW, MVAr, p.u.: see :func:`flexgame.markets.case_loading.load_case`).
        bus: transmission bus number the feeder's root is coupled to.
        name: feeder name (default: the case's name, made unique).
    """

    case: Any = option(rule=_case_source)
    bus: int = option(low=1)
    name: str | None = None


@dataclass
class SystemConfig:
    """Settings of the interconnected system: IEEE 14-bus transmission with case69 and case141
    feeders by default (ALEXANDER D3.3 §4.1.2 uses a transmission case with distribution
    feeders attached at load buses).

    Attributes:
        transmission_case: MATPOWER case of the transmission grid (as ``FeederSpec.case``).
        feeders: feeders and the transmission bus each root is coupled to; empty for a
            transmission-only system.
        coupling_load: "replace" (feeder load is carved out of the bus load) or "add".
        tx_rating_factor: transmission rating = factor x |base DC flow| [-].
        tx_min_rating_mw: floor of transmission ratings [MW].
        tx_ratings_mw: explicit transmission ratings by line name "from-to" [MW].
        feeder_rating_factor: feeder rating = factor x |base apparent flow| [-].
        feeder_min_rating_share: floor of feeder ratings as a share of the root's base flow.
        congested_branches_per_feeder: branches tightened below their base flow, per feeder.
        congestion_factor: tightened rating = factor x |base apparent flow| (< 1 congests).
        congested_branches: explicit tightened branches per feeder name ("from-to" names).
        interface_limit_share: limit of every feeder's interface flow (the active power it
            exchanges with its transmission coupling bus, > 0 when drawn from transmission)
            as a share of its base interface flow: |interface flow| <= share x |base
            interface flow| [-]; None = no limit. A share below 1 congests the interface in
            the base state: only the feeder's own upward flexibility (less draw) relieves it,
            a DSO need whose FSPs have local market power (ALEXANDER D4.1 KER 2).
        interface_limit_mw: explicit interface limits per feeder name [MW] (override
            interface_limit_share for those feeders).
        feeder_line_limit: "active" (|P| <= rating, the default: the market LPs and the
            ex-post assessment then judge exactly the same limits) or "apparent" (|S| <=
            rating; the LPs use an inscribed polygon, the assessment the exact circle).
        v_limits: (min, max) voltage magnitude [p.u.] for feeder buses; None = the case's.
        dg_share: distributed generation per feeder as a share of its active load [-].
        dg_buses_per_feeder: number of far-end buses that host the DG.
        imbalance_share: TSO imbalance as a share of total demand net of DG [-].
        imbalance_mw: explicit TSO imbalance [MW] (overrides imbalance_share); its direction
            comes from the case (upward or downward need).
    """

    transmission_case: Any = option("case14", rule=_case_source)
    feeders: list[FeederSpec] = option(
        factory=lambda: [FeederSpec("case69", 14), FeederSpec("case141", 9)])
    coupling_load: str = option("replace", choices=COUPLING_LOADS)
    tx_rating_factor: float = option(1.5, low=0, low_open=True)
    tx_min_rating_mw: float = option(10.0, low=0)
    tx_ratings_mw: dict[str, float] = option(factory=dict, open_keys=True,
                                             rule=_positive_mw("ratings", "line"))
    feeder_rating_factor: float = option(1.3, low=0, low_open=True)
    feeder_min_rating_share: float = option(0.1, low=0)
    congested_branches_per_feeder: int = option(1, low=0)
    congestion_factor: float = option(0.9, low=0, low_open=True)
    congested_branches: dict[str, list[str]] = option(factory=dict, open_keys=True)
    interface_limit_share: float | None = option(None, low=0, low_open=True)
    interface_limit_mw: dict[str, float] = option(factory=dict, open_keys=True,
                                                  rule=_positive_mw("limits", "feeder"))
    feeder_line_limit: str = option("active", choices=LINE_LIMITS)
    v_limits: tuple[float, float] | None = option(None, rule=pair_rule(low=0.0))
    dg_share: float = option(0.3, low=0)
    dg_buses_per_feeder: int = option(3, low=0)
    imbalance_share: float = option(0.05, low=0)
    imbalance_mw: float | None = option(None, low=0)

    def __post_init__(self) -> None:
        self.feeders = [FeederSpec(**f) if isinstance(f, Mapping) else f for f in self.feeders]

    def validate(self) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting."""
        check(self)


@dataclass
class InterconnectedSystem:
    """The test system in its base state (all powers in MW / MVAr).

    Attributes:
        transmission: DC network with ratings.
        feeders: the attached feeders with ratings, loads and DG (``dg_mw`` per bus).
        dg_mw: DG injection per feeder bus, by feeder name [MW].
        tx_load_mw: lumped load per transmission bus, excluding feeders [MW].
        tx_gen_mw: base generation per transmission bus [MW].
        tso_need_mw: upward need > 0 (demand exceeds generation), downward need < 0 [MW].
        congested: tightened branch indices per feeder name.
        feeder_line_limit: "active" or "apparent" (see SystemConfig).
        direction: direction of the TSO need, "up" or "down" (it follows the D3.3 case).
    """

    transmission: TransmissionNetwork
    feeders: list[Feeder]
    dg_mw: dict[str, np.ndarray]
    tx_load_mw: np.ndarray
    tx_gen_mw: np.ndarray
    tso_need_mw: float
    congested: dict[str, list[int]]
    feeder_line_limit: str = "active"
    direction: str = "up"

    def feeder(self, name: str) -> Feeder:
        for f in self.feeders:
            if f.name == name:
                return f
        raise FlexgameInputError(
            f"no feeder {name!r}; feeders are {', '.join(f.name for f in self.feeders)}"
        )

    def feeder_net_demand(self, feeder: Feeder) -> tuple[np.ndarray, np.ndarray]:
        """Base net demand per bus of a feeder [MW, MVAr] (load minus DG, DG at pf 1)."""
        return feeder.load_mw - self.dg_mw[feeder.name], feeder.load_mvar.copy()

    def base_interface_mw(self) -> dict[str, float]:
        """Base interface flow per feeder: power drawn from the coupling bus [MW]."""
        return {f.name: f.interface_mw(self.feeder_net_demand(f)[0]) for f in self.feeders}

    def base_tx_injection(self) -> np.ndarray:
        """Base injection per transmission bus [MW] including feeder interface flows; it sums
        to -tso_need_mw."""
        inj = self.tx_gen_mw - self.tx_load_mw
        interface = self.base_interface_mw()
        for f in self.feeders:
            inj[self.transmission.bus_index(f.coupling_bus)] -= interface[f.name]
        return inj

    @property
    def total_demand_mw(self) -> float:
        return float(self.tx_load_mw.sum() + sum(f.load_mw.sum() for f in self.feeders))

    def __repr__(self) -> str:
        feeders = names([f"{f.name} at bus {f.coupling_bus}" for f in self.feeders])
        return (f"InterconnectedSystem({self.transmission.case.name} with "
                f"{len(self.feeders)} feeders{': ' + feeders if feeders else ''}; TSO need "
                f"{abs(self.tso_need_mw):.2f} MW {self.direction}; feeder limits "
                f"{self.feeder_line_limit})")

    def summary(self) -> str:
        """A short human-readable description of the system and its base state."""
        tx = self.transmission
        lines = [
            f"Transmission: {tx.case.name}, {len(tx.buses)} buses, {tx.n_lines} lines, "
            f"slack bus {tx.case.reference_bus}, demand {self.total_demand_mw:.1f} MW",
            f"TSO need: {abs(self.tso_need_mw):.2f} MW "
            f"{'upward' if self.tso_need_mw > 0 else 'downward'}",
        ]
        for f in self.feeders:
            net_p, _ = self.feeder_net_demand(f)
            limit = f" (limit {f.interface_limit_mw:.2f} MW)" if f.has_interface_limit else ""
            lines.append(
                f"Feeder {f.name}: {f.case.name} at transmission bus {f.coupling_bus}, "
                f"{f.n_buses} buses, load {f.load_mw.sum():.2f} MW / {f.load_mvar.sum():.2f} "
                f"MVAr, DG {self.dg_mw[f.name].sum():.2f} MW, interface "
                f"{f.interface_mw(net_p):.2f} MW{limit}, "
                f"tightened branches {[f.branch_names()[k] for k in self.congested[f.name]]}"
            )
        report = assess_base_state(self)
        lines.append(
            f"Base state: {report.congestions} congested lines (max {report.max_congestion_pct:.1f}"
            f" % over limit), {report.voltage_violations} voltage violations "
            f"(max {report.max_voltage_violation_pct:.2f} % outside limit)"
        )
        return "\n".join(lines)


def _far_end_buses(feeder: Feeder, count: int) -> np.ndarray:
    """The ``count`` buses with the largest resistance path from the root."""
    depth = feeder.subtree.T @ feeder.r_pu
    return np.argsort(-depth, kind="stable")[:count]


def _tightened_branches(feeder: Feeder, flows: np.ndarray, count: int) -> list[int]:
    """Branches whose base flow is closest to 40 % of the root flow: mid-feeder lines whose
    congestion leaves flexibility both below and beside them."""
    target = 0.4 * flows.max()
    return [int(k) for k in np.argsort(np.abs(flows - target), kind="stable")[:count]]


def _interface_limit(cfg: SystemConfig, feeder: Feeder, dg_mw: np.ndarray) -> float:
    """The feeder's interface limit [MW]: explicit, a share of its base interface flow, or
    +inf (none)."""
    if feeder.name in cfg.interface_limit_mw:
        return float(cfg.interface_limit_mw[feeder.name])
    if cfg.interface_limit_share is None:
        return np.inf
    limit = cfg.interface_limit_share * abs(feeder.interface_mw(feeder.load_mw - dg_mw))
    if limit <= 0:
        raise FlexgameInputError(
            f"feeder {feeder.name!r} exchanges 0 MW with transmission in its base state, so "
            "interface_limit_share gives it no limit > 0; set interface_limit_mw for it"
        )
    return limit


def spread_feeders(n_feeders: int, transmission_case: Any = "case118",
                   cases: tuple = ("case69", "case141"),
                   max_load_share: float = 0.5) -> list[FeederSpec]:
    """``n_feeders`` feeders, alternating ``cases``, at distinct load buses spread over the
    transmission case (the scale preset ``conf/system/scale.yaml`` is ``spread_feeders(20)``).

    The load buses are taken in bus-number order (in case118 that follows its three areas);
    feeder k goes to the first free bus at or after position ``k * n_buses / n_feeders`` of
    that order (wrapping around) whose load is at least the feeder's load divided by
    ``max_load_share``: with the default ``coupling_load="replace"`` the feeder then stands
    for at most that share of the bus load, and the bus keeps a lumped load (and its
    transmission resources). Feeders are named ``<case>_b<bus>``.

    Raises:
        FlexgameInputError: too few load buses large enough for the feeders asked for.
    """
    if n_feeders < 0 or not 0 < max_load_share <= 1:
        raise FlexgameInputError(f"spread_feeders needs n_feeders >= 0 (got {n_feeders}) and "
                                 f"max_load_share in (0, 1] (got {max_load_share})")
    tx = load_case(transmission_case)
    loads = tx.bus.loc[tx.bus.PD > 0].sort_values("BUS_I", kind="stable")
    buses = loads.BUS_I.to_numpy(int)
    pd_mw = loads.PD.to_numpy(float)
    loaded = [load_case(c) for c in cases]
    used: set[int] = set()
    specs = []
    for k in range(n_feeders):
        case = loaded[k % len(cases)]
        start = (k * len(buses)) // max(n_feeders, 1)
        for step in range(len(buses)):
            i = (start + step) % len(buses)
            if buses[i] not in used and pd_mw[i] * max_load_share >= case.total_load_mw - 1e-9:
                break
        else:
            raise FlexgameInputError(
                f"{tx.name} has too few load buses of at least "
                f"{case.total_load_mw / max_load_share:.2f} MW for {n_feeders} feeders of "
                f"{', '.join(c.name for c in loaded)} (max_load_share={max_load_share})")
        used.add(int(buses[i]))
        specs.append(FeederSpec(cases[k % len(cases)], int(buses[i]),
                                f"{case.name}_b{int(buses[i])}"))
    return specs


def build_system(config: SystemConfig | None = None, direction: str = "up") -> InterconnectedSystem:
    """Build the interconnected system and its base state.

    Args:
        config: system settings (defaults: case14 + case69 at bus 14 + case141 at bus 9).
        direction: the TSO imbalance, "up" (demand exceeds generation) or "down".

    Raises:
        FlexgameInputError: a missing coupling bus, an unknown case, a negative rating, ...
    """
    cfg = config or SystemConfig()
    require_choice("direction", direction, DIRECTIONS)
    cfg.validate()
    tx_case = load_case(cfg.transmission_case)
    transmission = build_transmission(
        tx_case, cfg.tx_rating_factor, cfg.tx_min_rating_mw, cfg.tx_ratings_mw
    )
    tx_load = tx_case.bus.PD.to_numpy().copy()
    feeders, dg, congested = [], {}, {}
    names = set()
    for spec in cfg.feeders:
        idx = transmission.bus_index(spec.bus)  # raises with the list of buses
        case = load_case(spec.case)
        name = spec.name or case.name
        while name in names:
            name = f"{name}_{len(names)}"
        names.add(name)
        feeder = build_feeder(case, name, spec.bus, cfg.v_limits)
        if cfg.coupling_load == "replace":
            if feeder.load_mw.sum() > tx_load[idx] + 1e-9:
                raise FlexgameInputError(
                    f"feeder {name!r} ({feeder.load_mw.sum():.2f} MW) exceeds the load of "
                    f"transmission bus {spec.bus} ({tx_load[idx]:.2f} MW) it replaces; attach it "
                    "to a larger load bus or set coupling_load=add"
                )
            tx_load[idx] -= feeder.load_mw.sum()
        dg_p = np.zeros(feeder.n_buses)
        hosts = _far_end_buses(feeder, cfg.dg_buses_per_feeder)
        dg_p[hosts] = cfg.dg_share * feeder.load_mw.sum() / max(len(hosts), 1)
        base = feeder.solve(feeder.load_mw - dg_p, feeder.load_mvar)
        s = base.loading(cfg.feeder_line_limit)
        rating = np.maximum(cfg.feeder_rating_factor * s, cfg.feeder_min_rating_share * s.max())
        branch_names = feeder.branch_names()
        if name in cfg.congested_branches:
            tight = []
            for b in cfg.congested_branches[name]:
                if b not in branch_names:
                    raise FlexgameInputError(
                        f"congested branch {b!r} is not a branch of feeder {name!r}"
                    )
                tight.append(branch_names.index(b))
        else:
            tight = _tightened_branches(feeder, base.p_mw, cfg.congested_branches_per_feeder)
        rating[tight] = cfg.congestion_factor * s[tight]
        feeder.rating_mva = rating
        feeders.append(feeder)
        dg[name], congested[name] = dg_p, tight
    for option_name in ("congested_branches", "interface_limit_mw"):
        unknown = set(getattr(cfg, option_name)) - names
        if unknown:
            raise FlexgameInputError(
                f"{option_name} names unknown feeders {sorted(unknown)}; feeders are "
                f"{sorted(names)}"
            )
    for f in feeders:
        f.interface_limit_mw = _interface_limit(cfg, f, dg[f.name])
    demand = tx_load.sum() + sum(f.load_mw.sum() - dg[f.name].sum() for f in feeders)
    need = cfg.imbalance_mw if cfg.imbalance_mw is not None else cfg.imbalance_share * demand
    need = need if direction == "up" else -need
    gen = np.zeros(len(transmission.buses))
    for bus, pg in zip(tx_case.gen.GEN_BUS, tx_case.gen.PG):
        gen[transmission.bus_index(bus)] += pg
    if gen.sum() <= 0:
        raise FlexgameInputError(f"case {tx_case.source} has no generation to scale")
    gen *= (demand - need) / gen.sum()
    return InterconnectedSystem(transmission, feeders, dg, tx_load, gen, float(need), congested,
                                cfg.feeder_line_limit, direction)
