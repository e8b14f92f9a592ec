"""The market link of non-firm connection agreements (NFCA): flexibility bids of LV users
capped to their operating envelopes (issue 15, item 4).

Report 001 (ALEXANDER D3.3) computes the operating envelopes of NFCA users on LV feeders
(§3.5.1, ch. 5; :mod:`flexgame.markets.envelopes`) and leaves "the impact of NFCA activations
on the availability of LV resources to provide flexibility to markets, such as TSO-level
markets" for future work (ch. 5, introduction). This module is that link for flexgame's
TSO-DSO system (:mod:`flexgame.markets.system`): when NFCA is activated, what the
distribution bids (:mod:`flexgame.markets.bids`) can still offer.

Design (assumptions stated; none is from 001):

* Behind every MV feeder bus that hosts distribution bids sit LV feeders drawn by the seeded
  Brussels-like generator (:func:`flexgame.markets.lv_grids.generate_feeder`, report 001
  §5.2's calibration, :class:`~flexgame.markets.lv_grids.GridConfig` defaults), from
  ``np.random.default_rng([run seed, seed_offset, MV feeder position, MV bus number])``:
  the same run seed gives the same LV grids. A share ``participation_share`` of each LV
  feeder's users (drawn from the same generator, at least one) hold an NFCA; the others
  are firm.
* The distribution bids at that MV bus are FSP portfolios of the NFCA users behind it: all
  the flexibility offered at the bus comes from them (the firm users are passive: anywhere
  in their connection box in ``mode="static"``, at their forecast in ``mode="dynamic"``,
  the two modes of :func:`~flexgame.markets.envelopes.compute_envelopes`).
* Enough LV feeders are drawn per MV bus that the NFCA users' connection capacities alone
  could deliver the bus's offers in both directions (up to ``max_feeders_per_bus``), so a
  lost MW is the LV grid's (the envelope's) and not a too-small portfolio's. The flows of
  the LV feeders do not change the MV system's state (the MV bus load is the system's).
* Every user's forecast net demand is ``baseline_share`` x its connection capacity [kW]
  (> 0 consumption). An NFCA user's operating point is its forecast clipped into its
  envelope [-e_i, m_i] (an NFCA user outside its envelope is curtailed to it first; the
  curtailment is not a market product). From there (flexgame's direction convention,
  :func:`flexgame.markets.bids.direction_sign`):

  - upward flexibility (more injection / less consumption: net demand down to -e_i):
    up_i = d_i + e_i >= 0 [kW], the envelope's export side relative to the baseline;
  - downward flexibility (less injection / more consumption: net demand up to m_i):
    down_i = m_i - d_i >= 0 [kW], the import side;

  so up_i + down_i = m_i + e_i: with every user participating, a bus's allowance in both
  directions together is its envelopes' total.
* Allocation at a bus, per direction: the allowance A = sum of up_i (or down_i) x 1e-3 [MW]
  over the bus's NFCA users is shared pro rata to the offered quantities q_k of the bids in
  that direction: cap_k = q_k x min(1, A / sum q). A bid whose share is at least its offer
  is unchanged; a capped bid loses q_k - cap_k. Any activation of the capped bids then keeps
  every NFCA user inside its envelope (its share of the bus's activation is at most up_i or
  down_i), so the LV feeders stay within their limits (the envelope's guarantee).
* Transmission bids are not capped (they are not behind LV feeders).

:func:`nfca_caps` computes the caps (a pure function of the system, the bid table, the
settings and the run seed); :func:`capped_bids` applies them to a bid table. No run plumbing
here (that is :mod:`flexgame.experiments.tso_dso`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from flexgame.markets.envelopes import (
    MODES,
    POLICIES,
    WEIGHTS,
    Envelopes,
    FirmUsersUnsafe,
    compute_envelopes,
)
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.lv_feeder import LVFeeder
from flexgame.markets.lv_grids import GridConfig, generate_feeder
from flexgame.markets.options import check, option

KW_PER_MW = 1e3
CAP_COLUMNS = ["bid", "fsp", "feeder", "bus", "direction", "lv_feeders", "offered_mw",
               "cap_mw", "lost_mw", "bus_offered_mw", "bus_allowance_mw"]
"""Columns of the caps table: one row per distribution bid. ``feeder`` and ``bus`` are the MV
feeder and bus number, ``lv_feeders`` the LV feeders behind the bus (``;``-separated),
``bus_offered_mw`` / ``bus_allowance_mw`` the bus's totals in the bid's direction [MW]."""


@dataclass
class NFCAConfig:
    """The ``nfca`` settings of a TSO-DSO run (module docstring for the design).

    Attributes:
        enabled: NFCA is activated: distribution bids are capped to their users' envelopes.
        policy: envelope policy (:data:`flexgame.markets.envelopes.POLICIES`).
        mode: static (firm users anywhere in their connection box) or dynamic (firm users at
            their forecast).
        weights: the fair policy's weights, equal kW or a share of capacity.
        participation_share: share of each LV feeder's users on an NFCA, in (0, 1] (at least
            one user per LV feeder).
        baseline_share: every user's forecast net demand as a share of its connection
            capacity (> 0 consumption) [-]. Default 0.1: about 1 kW on a 9.2 kVA connection,
            the order of an after-diversity household demand (assumption, not from 001).
        seed_offset: added to the draws' seed sequence: other LV grids for the same run seed.
        max_feeders_per_bus: most LV feeders drawn behind one MV bus.
    """

    enabled: bool = option(False)
    policy: str = option("optimal", choices=POLICIES, only_for=("enabled", (True,)))
    mode: str = option("dynamic", choices=MODES, only_for=("enabled", (True,)))
    weights: str = option("capacity", choices=WEIGHTS, only_for=("policy", ("fair",)))
    participation_share: float = option(0.5, low=0, high=1, low_open=True,
                                        only_for=("enabled", (True,)))
    baseline_share: float = option(0.1, low=-1, high=1, low_open=True, high_open=True,
                                   only_for=("enabled", (True,)))
    seed_offset: int = option(0, low=0, only_for=("enabled", (True,)))
    max_feeders_per_bus: int = option(20, low=1, only_for=("enabled", (True,)))

    def validate(self) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting."""
        check(self, "nfca")


@dataclass(frozen=True)
class LVSite:
    """One LV feeder behind an MV bus, its NFCA users and what they can offer.

    Attributes:
        mv_feeder, mv_bus: the MV feeder's name and the bus number it hangs from.
        lv: the LV feeder.
        participants: NFCA users (indices into ``lv``'s users), sorted.
        forecast_kw: forecast net demand of every user of ``lv`` [kW] (> 0 consumption).
        envelopes: the participants' envelopes (zero when the firm users alone can violate
            a limit: no envelope is safe, :func:`compute_envelopes` refuses).
        baseline_kw: each participant's operating point, its forecast clipped into its
            envelope [kW].
        up_kw, down_kw: each participant's upward / downward flexibility from it [kW], >= 0.
    """

    mv_feeder: str
    mv_bus: int
    lv: LVFeeder
    participants: np.ndarray
    forecast_kw: np.ndarray
    envelopes: Envelopes
    baseline_kw: np.ndarray
    up_kw: np.ndarray
    down_kw: np.ndarray

    @property
    def name(self) -> str:
        return self.lv.feeder.name

    @property
    def allowance_mw(self) -> dict[str, float]:
        """{"up": ..., "down": ...}: what the site's NFCA users can offer [MW]."""
        return {"up": float(self.up_kw.sum()) / KW_PER_MW,
                "down": float(self.down_kw.sum()) / KW_PER_MW}


@dataclass(frozen=True)
class NFCACaps:
    """The caps of one bid table.

    Attributes:
        caps: one row per distribution bid (:data:`CAP_COLUMNS`), index = bid id.
        sites: the LV feeders drawn, by MV bus.
        runtime_s: wall time of drawing the feeders and computing the envelopes [s].
    """

    caps: pd.DataFrame
    sites: list[LVSite]
    runtime_s: float

    def lost_mw(self, direction: str | None = None) -> float:
        """Volume lost to the caps [MW], in one direction or both."""
        rows = self.caps if direction is None else self.caps[self.caps.direction == direction]
        return float(rows.lost_mw.sum())

    def sites_table(self) -> pd.DataFrame:
        """One row per LV feeder: MV feeder and bus, users, NFCA users, envelope totals [kW]
        and allowances [MW]."""
        return pd.DataFrame([dict(
            lv_feeder=s.name, feeder=s.mv_feeder, bus=s.mv_bus, users=s.lv.n_users,
            nfca_users=len(s.participants), import_kw=s.envelopes.total_import_kw,
            export_kw=s.envelopes.total_export_kw, allowance_up_mw=s.allowance_mw["up"],
            allowance_down_mw=s.allowance_mw["down"]) for s in self.sites])


def lv_rng(seed: int, config: NFCAConfig, feeder_position: int, bus: int
           ) -> np.random.Generator:
    """The generator of the LV feeders behind one MV bus (module docstring)."""
    return np.random.default_rng([int(seed), int(config.seed_offset), int(feeder_position),
                                  int(bus)])


def site(lv: LVFeeder, mv_feeder: str, mv_bus: int, participants: np.ndarray,
         config: NFCAConfig) -> LVSite:
    """The envelopes of ``participants`` on ``lv`` and their flexibility (module docstring)."""
    forecast = config.baseline_share * np.asarray(lv.capacity_kw, float)
    part = np.unique(np.asarray(participants, int))
    try:
        env = compute_envelopes(lv, config.policy, part, mode=config.mode,
                                forecast_kw=forecast, weights=config.weights)
    except FirmUsersUnsafe:  # the firm users alone can violate a limit: nothing is safe
        n = len(part)
        env = Envelopes(part, [lv.user_names[i] for i in part], np.zeros(n), np.zeros(n),
                        np.asarray(lv.capacity_kw, float)[part], config.policy, config.mode,
                        config.weights if config.policy == "fair" else "-", 0.0)
    baseline = np.clip(forecast[part], -env.export_kw, env.import_kw)
    return LVSite(mv_feeder, int(mv_bus), lv, part, forecast, env, baseline,
                  up_kw=baseline + env.export_kw, down_kw=env.import_kw - baseline)


def _draw_participants(rng: np.random.Generator, lv: LVFeeder, share: float) -> np.ndarray:
    k = min(lv.n_users, max(1, round(share * lv.n_users)))
    return np.sort(rng.choice(lv.n_users, size=k, replace=False))


def bus_sites(mv_feeder: str, feeder_position: int, mv_bus: int, offered_mw: dict[str, float],
              config: NFCAConfig, seed: int, grid: GridConfig | None = None) -> list[LVSite]:
    """The LV feeders behind one MV bus: drawn one by one until the NFCA users' connection
    capacities could deliver ``offered_mw`` ({"up": MW, "down": MW}) from their forecasts
    (up to (1 + baseline_share) x capacity upward, (1 - baseline_share) x capacity downward),
    or ``max_feeders_per_bus`` are drawn."""
    rng = lv_rng(seed, config, feeder_position, mv_bus)
    grid = grid or GridConfig()
    beta = config.baseline_share
    sites: list[LVSite] = []
    capacity_mw = 0.0
    while len(sites) < config.max_feeders_per_bus:
        lv = generate_feeder(rng, grid, name=f"{mv_feeder}:{mv_bus}:lv{len(sites)}")
        part = _draw_participants(rng, lv, config.participation_share)
        sites.append(site(lv, mv_feeder, mv_bus, part, config))
        capacity_mw += float(lv.capacity_kw[part].sum()) / KW_PER_MW
        if ((1 + beta) * capacity_mw >= offered_mw["up"]
                and (1 - beta) * capacity_mw >= offered_mw["down"]):
            break
    return sites


def nfca_caps(system, bids: pd.DataFrame, config: NFCAConfig, seed: int,
              grid: GridConfig | None = None) -> NFCACaps:
    """Caps of the distribution bids of ``bids`` on ``system`` (module docstring).

    Args:
        system: the interconnected system (:class:`flexgame.markets.system.InterconnectedSystem`).
        bids: a bid table (``quantity_mw`` is the offered quantity; the declared one in a
            strategic run).
        config: the NFCA settings (``enabled`` is not read: the caller decides).
        seed: the run's seed.
        grid: the LV generator's settings (report 001 §5.2's calibration by default).

    Returns:
        the caps table (one row per distribution bid, index = bid id) and the LV sites.

    Raises:
        FlexgameInputError: an invalid setting, or a distribution bid at a feeder the system
            lacks.
    """
    config.validate()
    start = time.perf_counter()
    dist = bids[bids.level == "distribution"]
    positions = {f.name: k for k, f in enumerate(system.feeders)}
    unknown = sorted(set(dist.feeder) - set(positions))
    if unknown:
        raise FlexgameInputError(f"distribution bids at feeder {unknown[0]!r}, which the "
                                 f"system lacks (feeders: {', '.join(positions)})")
    rows, sites = [], []
    for (feeder, bus), at_bus in dist.groupby(["feeder", "bus"], sort=True):
        offered = {d: float(at_bus.quantity_mw[at_bus.direction == d].sum())
                   for d in ("up", "down")}
        here = bus_sites(feeder, positions[feeder], int(bus), offered, config, seed, grid)
        sites.extend(here)
        allowance = {d: sum(s.allowance_mw[d] for s in here) for d in ("up", "down")}
        names = ";".join(s.name for s in here)
        for bid, row in at_bus.iterrows():
            d = row.direction
            total = offered[d]
            ratio = 1.0 if total <= allowance[d] else allowance[d] / total
            q = float(row.quantity_mw)
            cap = min(q, q * ratio)
            rows.append(dict(bid=int(bid), fsp=row.fsp, feeder=feeder, bus=int(bus),
                             direction=d, lv_feeders=names, offered_mw=q, cap_mw=cap,
                             lost_mw=q - cap, bus_offered_mw=total,
                             bus_allowance_mw=allowance[d]))
    caps = pd.DataFrame(rows, columns=CAP_COLUMNS)
    caps.index = caps.bid.to_numpy()
    return NFCACaps(caps.sort_index(), sites, time.perf_counter() - start)


def capped_bids(bids: pd.DataFrame, caps: NFCACaps) -> pd.DataFrame:
    """A copy of ``bids`` whose distribution bids offer their caps (``quantity_mw``)."""
    out = bids.copy()
    out.loc[caps.caps.index, "quantity_mw"] = caps.caps.cap_mw.to_numpy()
    return out
