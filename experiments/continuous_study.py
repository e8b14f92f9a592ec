"""Continuous network-aware flexibility market against a welfare-maximising auction
(flexgame issue 16, items 1 and 5; FLEXGRID D5.1, seed 003, §3.2 and Table 6).

``flexgame continuous`` runs, on every feeder of the default system (IEEE 14-bus with case69
and case141, base state of D3.3 case A drawn with ``seed``):

* traders: one :class:`flexgame.agents.continuous.OrderFSPAgent` per distribution bid of the
  scenario (both directions: flexgame "up" bids sell a net-demand decrease at their price,
  "down" bids buy a net-demand increase at their price; restriction none), plus as many
  seeded demand-side traders per feeder (bus, direction, restriction and reactive ratio drawn
  once with ``seed``; price uniform over the feeder's bid price range and quantity drawn from
  the feeder's bid quantities, drawn once, or every sample with ``redraw_demand``);
* every sample: a new seeded arrival order (each agent's arrival time from its own
  generator, the agents' generators seeded from the sample's); the continuous market
  (LinDistFlow check "no_worsening": the default system's feeders start with a congested
  branch, so "strict" admits no state) against the welfare auction LP of the same orders
  (:class:`flexgame.markets.double_auction.WelfareAuction`, built once per feeder and
  re-solved per sample);
* sample 0 again with the AC check (``network_check="ac"``: every match also confirmed by a
  Newton-Raphson power flow of the feeder), and a linear and AC ex-post check of sample 0's
  final states.

Outputs (``--out``, default results/continuous/): ``samples.csv`` (one row per sample),
``kpis.csv`` (Table 6 KPIs over samples), ``network_check.csv`` (linear and AC ex-post check
of sample 0), ``welfare_ratio.png`` (histogram of continuous /
auction welfare) and ``report.md``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flexgame.agents.continuous import ContinuousMarketModel, Resource
from flexgame.markets.continuous import AC_HALVINGS, KPI_UNITS, net_demand_change, state_after
from flexgame.markets.double_auction import WelfareAuction
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.feeder_limits import FeederLimits
from flexgame.markets.grid_state import GridState
from flexgame.markets.orders import RESTRICTIONS

MODE = "no_worsening"
DEMAND_RESTRICTION_SHARES = (0.4, 0.2, 0.2, 0.2)
"""Shares of none / IOC / FOK / AON among the demand-side traders."""
STEPS = 12
"""Steps of the one-hour session (5 minutes each)."""
WELFARE_TOLERANCE_EUR = 1e-6


@dataclass
class ContinuousStudy:
    """What :func:`run` computed.

    Attributes:
        samples: one row per sample: welfare of the continuous market and of the auction
            [EUR], their ratio, and the continuous market's Table 6 KPIs (units in
            :data:`flexgame.markets.continuous.KPI_UNITS`).
        network: ex-post check of sample 0 (base state, after the continuous market, after
            the auction): linear and AC (Newton-Raphson, :mod:`flexgame.markets.ac_assessment`)
            congestions, voltage violations and their largest excess [%].
        checks: sample 0's session with the LinDistFlow check and with the AC check
            (``network_check="ac"``) side by side: KPIs and power flows run (empty without
            ``ac_session``).
        settings: seed, samples, case, check mode, trader counts.
        system_summary: the system's one-line description.
        seconds: wall time of the study [s].
    """

    samples: pd.DataFrame
    network: pd.DataFrame = field(default_factory=pd.DataFrame)
    checks: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: dict = field(default_factory=dict)
    system_summary: str = ""
    seconds: float = 0.0

    def kpi_statistics(self) -> pd.DataFrame:
        """Table 6 KPIs over samples: mean, std, min, max, with units."""
        units = {**KPI_UNITS, "welfare_auction": "EUR", "volume_auction": "MWh",
                 "welfare_auction_no_network": "EUR", "welfare_ratio": "-"}
        return pd.DataFrame([
            {"kpi": kpi, "unit": unit, "mean": v.mean(), "std": v.std(ddof=0), "min": v.min(),
             "max": v.max()}
            for kpi, unit in units.items() for v in [self.samples[kpi]]])


def scenario_resources(bids: pd.DataFrame) -> list[Resource]:
    """One trader per distribution bid: its bus, direction, quantity [MW], price as true
    value [EUR/MWh of the one-hour product; D3.3's EUR/MW per activation], tan_phi."""
    d = bids[bids.level == "distribution"]
    return [Resource(f"{r.fsp}/{r.resource}", r.feeder, int(r.bus), r.direction,
                     float(r.quantity_mw), float(r.price_eur_per_mw), float(r.tan_phi))
            for r in d.itertuples()]


def demand_slots(system, bids: pd.DataFrame, rng: np.random.Generator) -> list[Resource]:
    """The demand-side traders' fixed part, per feeder as many as the feeder's distribution
    bids: a load bus, a direction, a restriction and the bus's reactive ratio (price and
    quantity are placeholders, drawn per sample by :func:`draw_demand`)."""
    out = []
    for f in system.feeders:
        n = int(((bids.level == "distribution") & (bids.feeder == f.name)).sum())
        loads = np.flatnonzero(f.load_mw > 0)
        for k in range(n):
            j = int(rng.choice(loads))
            out.append(Resource(f"demand/{f.name}/{k}", f.name, int(f.buses[j]),
                                str(rng.choice(["up", "down"])), 1.0, 0.0,
                                float(f.load_mvar[j] / f.load_mw[j]),
                                str(rng.choice(RESTRICTIONS, p=DEMAND_RESTRICTION_SHARES))))
    return out


def draw_demand(slots: list[Resource], bids: pd.DataFrame,
                rng: np.random.Generator) -> list[Resource]:
    """The demand side of one sample: price uniform over its feeder's bid price range
    [EUR/MWh], quantity drawn from its feeder's bid quantities [MW]."""
    d = bids[bids.level == "distribution"]
    quantities = {f: g.quantity_mw.to_numpy() for f, g in d.groupby("feeder")}
    prices = d.groupby("feeder").price_eur_per_mw.agg(["min", "max"])
    out = []
    for s in slots:
        low, high = prices.loc[s.feeder, "min"], prices.loc[s.feeder, "max"]
        out.append(Resource(s.name, s.feeder, s.bus, s.direction,
                            float(rng.choice(quantities[s.feeder])),
                            float(rng.uniform(low, high)), s.tan_phi, s.restriction))
    return out


def run(samples: int = 100, seed: int = 0, case: str = "A", redraw_demand: bool = False,
        ac_session: bool = True, progress: bool = False) -> ContinuousStudy:
    """The study (see the module docstring): ``samples`` arrival orders of the same orders,
    or with ``redraw_demand`` also a new draw of the demand side's prices and quantities per
    sample. ``ac_session`` re-runs sample 0 with the AC check (about 10 s on the default
    system).

    Raises:
        FlexgameInputError: samples < 1.
        SolverError: an auction LP without optimum.
        RuntimeError: a sample where the continuous market beats the auction (which theory
            excludes: it would be a bug).
    """
    from flexgame.experiments.scenario import Scenario

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise FlexgameInputError(f"samples={samples!r} must be an integer >= 1")
    start = time.perf_counter()
    scenario = Scenario.from_case(case, seed=seed)
    system, bids = scenario.system, scenario.bids
    state = GridState.base(system)
    limits = [FeederLimits(f, state, system.feeder_line_limit, mode=MODE) for f in system.feeders]
    rng = np.random.default_rng(seed)
    fixed = scenario_resources(bids)
    slots = demand_slots(system, bids, rng)
    demand = draw_demand(slots, bids, rng)
    auctions: dict[tuple[str, bool], WelfareAuction] = {}
    rows = []
    first: dict = {}
    for s in range(samples):
        sample_rng = np.random.default_rng([seed, s])
        if redraw_demand:
            demand = draw_demand(slots, bids, sample_rng)
        resources = fixed + demand
        if s == 0:
            first_session = (resources, copy.deepcopy(sample_rng))
        model = ContinuousMarketModel(limits, resources, steps=STEPS, rng=sample_rng).run()
        welfare, volume, copper = 0.0, 0.0, 0.0
        for lim in limits:
            orders = model.orders(lim.feeder.name)
            for network in (True, False):
                key = (lim.feeder.name, network)
                if key not in auctions:
                    auctions[key] = WelfareAuction(lim, orders, network=network)
            result = auctions[lim.feeder.name, True].clear_orders(orders)
            if s == 0:
                market = next(m for m in model.markets if m.limits is lim)
                first[lim.feeder.name] = (orders, market, result.accepted_mw)
            welfare += result.welfare_eur
            volume += result.volume_mw
            copper += auctions[lim.feeder.name, False].clear_orders(orders).welfare_eur
        kpis = model.kpis()
        if kpis["declared_welfare"] > welfare + WELFARE_TOLERANCE_EUR:
            raise RuntimeError(f"sample {s}: continuous welfare {kpis['declared_welfare']:.6f} "
                               f"EUR exceeds the auction's {welfare:.6f} EUR")
        rows.append({"sample": s, **kpis, "welfare_auction": welfare, "volume_auction": volume,
                     "welfare_auction_no_network": copper,
                     "welfare_ratio": (kpis["declared_welfare"] / welfare if welfare > 0
                                       else np.nan)})
        if progress and (s + 1) % 10 == 0:
            print(f"  sample {s + 1}/{samples}", flush=True)
    settings = {"samples": samples, "seed": seed, "case": case, "network_check": MODE,
                "scenario_traders": len(fixed), "demand_traders": len(slots),
                "steps": STEPS, "redraw_demand": redraw_demand,
                "feeders": [lim.feeder.name for lim in limits]}
    checks = pd.DataFrame()
    if ac_session:
        checks = compare_checks(limits, *first_session, rows[0])
    return ContinuousStudy(pd.DataFrame(rows), ex_post_check(system, state, limits, first),
                           checks, settings, system.summary().splitlines()[0],
                           time.perf_counter() - start)


def compare_checks(limits: list[FeederLimits], resources: list[Resource],
                   rng: np.random.Generator, linear: dict) -> pd.DataFrame:
    """Sample 0's session (its ``resources`` and model generator ``rng``) with the AC check,
    beside ``linear``, its row with the LinDistFlow check; raises RuntimeError when the AC
    session beats the auction (it cannot: AC-confirmed matches are linearly feasible)."""
    model = ContinuousMarketModel(limits, resources, steps=STEPS, rng=rng,
                                  network_check="ac").run()
    ac = {**model.kpis(), "welfare_auction": linear["welfare_auction"],
          "power_flows": sum(m.ac.power_flows for m in model.markets)}
    if ac["declared_welfare"] > ac["welfare_auction"] + WELFARE_TOLERANCE_EUR:
        raise RuntimeError("the AC-checked continuous market beats the auction")
    keys = ["declared_welfare", "transactions", "volume", "network_rejections",
            "latency_mean", "latency_p95", "runtime"]
    units = {**KPI_UNITS, "power_flows": "-"}
    return pd.DataFrame([{"kpi": k, "unit": units[k], "lindistflow": linear.get(k, 0.0),
                          "ac": ac[k]} for k in [*keys, "power_flows"]])


def ex_post_check(system, state: GridState, limits: list[FeederLimits],
                  first: dict) -> pd.DataFrame:
    """Linear and AC ex-post assessment of the base state and of sample 0's final states
    (continuous market, auction): one row per state."""
    from flexgame.markets.ac_assessment import assess_state_ac

    changes: dict[str, dict] = {"base state": {}, "after continuous": {}, "after auction": {}}
    for lim in limits:
        f = lim.feeder
        orders, market, accepted = first[f.name]
        changes["after continuous"][f.name] = net_demand_change(f, orders, market.activation_mw)
        auction = {o.order_id: float(x) for o, x in zip(orders, accepted)}
        changes["after auction"][f.name] = net_demand_change(f, orders, auction)
    rows = []
    for label, change in changes.items():
        ac = assess_state_ac(system, state_after(state, change))
        rows.append({"state": label, "congestions_linear": ac.linear.congestions,
                     "max_congestion_linear_pct": ac.linear.max_congestion_pct,
                     "voltage_violations_linear": ac.linear.voltage_violations,
                     "congestions_ac": ac.congestions,
                     "max_congestion_ac_pct": ac.max_congestion_pct,
                     "voltage_violations_ac": ac.voltage_violations,
                     "max_voltage_violation_ac_pct": ac.max_voltage_violation_pct,
                     "ac_converged": ac.converged})
    return pd.DataFrame(rows)


def _histogram(study: ContinuousStudy):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ratio = study.samples.welfare_ratio.dropna()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.hist(ratio, bins=min(30, max(5, len(ratio) // 5)), color="tab:blue", edgecolor="white")
    ax.axvline(ratio.mean(), color="tab:red", ls="--", label=f"mean {ratio.mean():.3f}")
    ax.axvline(1.0, color="black", lw=1, label="auction (= 1)")
    ax.set_xlabel("welfare of the continuous market / welfare of the auction [-]")
    ax.set_ylabel("samples [-]")
    what = "samples" if study.settings["redraw_demand"] else "seeded arrival orders"
    ax.set_title(f"Continuous vs auction over {len(ratio)} {what}")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _fmt(value: float) -> str:
    if abs(value) < 1e-9:
        return "0"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def _checks_section(study: ContinuousStudy) -> list[str]:
    if not len(study.checks):
        return []
    from flexgame.experiments.table import markdown_table

    shown = study.checks.assign(lindistflow=study.checks.lindistflow.map(_fmt),
                                ac=study.checks.ac.map(_fmt))
    return ["## LinDistFlow check vs AC check (sample 0)", "",
            ("The session of sample 0 again, each match also confirmed by a Newton-Raphson "
             f"power flow of the feeder (its quantity halved up to {AC_HALVINGS} times until "
             "the AC check confirms it; a resting AON order is checked whole only): what the "
             "AC check costs in welfare and latency."), "",
            markdown_table(shown), ""]


def _pct(part: pd.Series, whole: pd.Series) -> str:
    """Mean share of ``whole`` that ``part`` misses, as text [%]."""
    return f"{100.0 * (1.0 - (part / whole).mean()):.1f} %"


def report(study: ContinuousStudy) -> str:
    """``report.md`` of the study."""
    from flexgame.experiments.table import markdown_table

    st, samples = study.settings, study.samples
    stats = study.kpi_statistics()
    shown = stats.assign(**{c: stats[c].map(_fmt) for c in ("mean", "std", "min", "max")})
    ratio = study.samples.welfare_ratio.dropna()
    holds = int((study.samples.declared_welfare
                 <= study.samples.welfare_auction + WELFARE_TOLERANCE_EUR).sum())
    return "\n".join([
        "# Continuous network-aware flexibility market vs welfare-maximising auction", "",
        ("FLEXGRID D5.1 (seed 003) §3.2: orders matched one by one in price-time priority, a "
        "match confirmed only when the feeder's LinDistFlow limits allow it (partly, up to "
        f"the feasible quantity); check mode `{st['network_check']}` (a match may not create "
        "a violation nor worsen the congestion the base state already has). Pay-as-bid on "
        "both sides. flexgame's \"up\" (less net demand) is the sell side, seed 003's "
        "\"down\"; flexgame's \"down\" is the buy side, seed 003's \"up\"."), "",
        (f"System: {study.system_summary}; feeders {', '.join(st['feeders'])}; base state and "
        f"bids of case {st['case']}, seed {st['seed']}."), "",
        (f"Traders: {st['scenario_traders']} from the scenario's distribution bids (truthful, "
        f"no restriction) and {st['demand_traders']} seeded demand-side traders (none / IOC / "
        f"FOK / AON in shares {DEMAND_RESTRICTION_SHARES}); one order each, arriving "
        f"uniformly over a one-hour session of {st['steps']} steps. {st['samples']} samples: "
        + ("each redraws the demand side's prices and quantities and the arrival order."
           if st["redraw_demand"] else "the same orders, each sample a new seeded arrival "
           "order (each agent's arrival time drawn from its own generator).")), "",
        "## Table 6 KPIs of the continuous market (over samples)", "",
        markdown_table(shown[["kpi", "unit", "mean", "std", "min", "max"]]), "",
        ("Welfare is measured at the declared prices (traders are truthful, so it equals the "
        "market surplus of pay-as-bid and the traders' own surpluses are 0). Utilisation = "
        "matched / offered volume per side; latency = processing time per order "
        "(including the network check; wall time, so the max also catches pauses of the "
        "process such as garbage collection); runtime = their sum per session."), "",
        "## Continuous vs auction", "",
        (f"Welfare ratio continuous / auction: mean {ratio.mean():.3f}, median "
        f"{ratio.median():.3f}, min {ratio.min():.3f}, max {ratio.max():.3f}. Auction welfare "
        f">= continuous welfare on {holds} of {len(study.samples)} samples (theory: all; the "
        "auction LP relaxes FOK/AON, so it bounds every arrival order)."), "",
        (f"The same auction without feeder limits reaches "
         f"{study.samples.welfare_auction_no_network.mean():.4g} EUR (mean): the limits cost "
         f"the auction {_pct(samples.welfare_auction, samples.welfare_auction_no_network)}"
         " of its welfare, continuous matching (arrival order, greedy first-come matches) "
         f"{_pct(study.samples.declared_welfare, study.samples.welfare_auction)} of the "
         "auction's."), "",
        "![welfare ratio](welfare_ratio.png)", "",
        *_checks_section(study),
        "## Ex-post network check of sample 0", "",
        ("Linear (the matching's own LinDistFlow model, plus transmission) and AC "
         "(Newton-Raphson) assessment of the base state and of the final states of sample 0; "
         "congestions count lines over their rating, excesses are the largest over a limit:"),
        "", markdown_table(study.network.assign(**{
            c: study.network[c].map(lambda v: f"{v:.3f}")
            for c in study.network.columns if c.endswith("_pct")})), "",
        ("Files: samples.csv (one row per sample), kpis.csv, network_check.csv. Wall time "
         f"{study.seconds:.1f} s."),
        ""])


def write(study: ContinuousStudy, out) -> Path:
    """samples.csv, kpis.csv, network_check.csv, welfare_ratio.png, provenance.json and
    report.md into ``out``; returns the report's path."""
    import matplotlib.pyplot as plt

    from flexgame.experiments.store import (
        provenance, write_csv, write_figure, write_json, write_text,
    )

    out = Path(out)
    write_csv(out / "samples.csv", study.samples)
    write_csv(out / "kpis.csv", study.kpi_statistics())
    write_csv(out / "network_check.csv", study.network)
    fig = _histogram(study)
    write_figure(out / "welfare_ratio.png", fig)
    plt.close(fig)
    write_json(out / "provenance.json", provenance(**study.settings))
    return write_text(out / "report.md", report(study))
