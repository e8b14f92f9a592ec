"""One strategic FSP's economic and physical withholding in a distribution-level flexibility
market under VCG, DLMP (nodal) and pay-as-bid settlement (FLEXGRID D5.1 §3.6, "Simulation
setup"; flexgame issue 16, item 4).

D5.1 §3.6 plans "an imperfect DLFM, in which there is one strategic FSP that chooses its
optimal bidding strategy in order to maximize its profits, while the other FSPs truthfully bid",
the strategic FSP either declaring "a higher cost of its services than the true one (economic
withholding)" or offering "a lower flexibility capacity (physical withholding)", and claims
that under the VCG payment rule (Clarke pivot, r_i = C_f(x_-i) - C_f^-i(x_-i)) "FSPs cannot
benefit from falsely inflating their bids or not offering their whole capacity", unlike a
DLMP-based or pay-as-bid DLFM. This module measures it.

**The market (a DLFM).** D5.1's R-DLFM (§2.4.2; §3.6 "System model") is cleared by an FMO
for the DSO after the transmission-level markets, which fix the TSO-DSO interface flow
(D5.1 §4, the shared balancing responsibility model "similar to the FLEXGRID Reactive DLFM":
"the injection to the distribution network is fixed"); the FMO buys, at minimum cost, the
flexibility that removes its feeder's congestion and voltage violations. In flexgame that is
the DSO layer ``dso:<feeder>`` of the ``fragmented`` scheme with ``interface=fixed``
(:data:`DLFM_SCHEME`, :data:`DLFM_OPTIONS`): each feeder's own bids against its own
LinDistFlow limits with the interface flow held; its transmission layer takes only
transmission bids. The layers are then independent of each other, so the Clarke payment the
scheme computes (:func:`flexgame.markets.settlement.settle`, re-clearing the whole scheme
without the FSP) is that of each FSP's own DLFM, and VCG's dominant-strategy guarantee holds
exactly (SPEC §5: one layer on its own). The ``common`` market restricted to one feeder's bids
would not be a DLFM: its balance row buys the TSO's need.

**The strategic FSP** (:func:`strategic_fsp`): by default the FSP of the distribution grid
with the largest accepted truthful volume in the DLFMs (ties: first by name), or one named by
the user. It plays every (markup, withholding share) pair of a
:class:`~flexgame.games.strategies.StrategyConfig` grid on all its bids (to_cap markups:
declared price = cost + markup x (cap - cost); offered quantity = (1 - share) x quantity),
the other FSPs bid truthfully. One scheme is built; each strategy re-clears it with the
changed declared bids (:meth:`~flexgame.games.strategies.BidMap.deviate`, as
:mod:`flexgame.games.payoff` evaluates profiles), and the same clearing is settled under every
rule.

Signs and units: profit = payments received - true cost of the activated MW [EUR]
(positive: the FSP gains); buyer payment = what the FMO(s) of the FSP's feeder(s) pay all
FSPs of their DLFMs [EUR]; social cost = the DLFMs' objective at true costs [EUR]: true cost
of every activation plus the penalties of violations left (the operators' valuation, D5.1
§3.6: "Lost Load, RES spillage, penalties").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flexgame.games.best_response import TIE_TOLERANCE_EUR
from flexgame.games.strategies import BidMap, StrategyConfig, StrategySpace
from flexgame.markets.bids import AGGREGATIONS, CASES, BidConfig
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.options import check, option
from flexgame.markets.schemes import Scheme, build_scheme
from flexgame.markets.settlement import bid_payments

RULES = ("vcg", "nodal", "pay_as_bid")
"""The settlement rules D5.1 §3.6 compares: its proposed VCG DNPA, a DLMP-based and a
pay-as-bid DLFM."""
DLFM_SCHEME = "fragmented"
DLFM_OPTIONS = {"interface": "fixed"}
"""The scheme whose DSO layers are R-DLFMs (see the module docstring)."""
WITHHOLDING = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Default shares of its capacity the strategic FSP may withhold."""


def _default_strategies() -> StrategyConfig:
    return StrategyConfig(withholding=list(WITHHOLDING))


@dataclass
class WithholdingConfig:
    """Settings of the study.

    Attributes:
        case: D3.3 case of the bids (ALEXANDER D3.3 §4.2).
        seed: seed of the bids.
        aggregation: how resources form FSPs (:class:`~flexgame.markets.bids.BidConfig`).
        liquidity: share of the potential resources that bid (D5.1 §3.6's "levels of DLFM
            liquidity").
        fsp: the strategic FSP (None: the one with the largest accepted truthful volume in
            the DLFMs).
        strategies: the markup x withholding grid and the price cap.
    """

    case: str = option("A", choices=CASES)
    seed: int = option(0, low=0)
    aggregation: str = option("none", choices=AGGREGATIONS)
    liquidity: float = option(1.0, low=0, high=1, low_open=True)
    fsp: str | None = option(None)
    strategies: StrategyConfig = option(factory=_default_strategies)

    def validate(self) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting."""
        check(self)


@dataclass
class WithholdingStudy:
    """What :func:`run` computed.

    Attributes:
        config: the settings.
        scenario: a one-line description of the scenario.
        fsp: the strategic FSP; feeders: the feeders of its DLFMs.
        grid: one row per (rule, markup, withholding share) (:func:`profit_grid`).
        summary: one row per rule (:func:`summarise`).
        seconds: wall time of the grid [s].
    """

    config: WithholdingConfig
    scenario: str
    fsp: str
    feeders: list[str]
    grid: pd.DataFrame
    summary: pd.DataFrame
    seconds: float = field(default=0.0)


def dlfm_scheme(system, bids: pd.DataFrame) -> Scheme:
    """The built R-DLFM scheme of ``system`` and ``bids``: :data:`DLFM_SCHEME` with
    :data:`DLFM_OPTIONS`."""
    return build_scheme(system, bids, DLFM_SCHEME, **DLFM_OPTIONS)


def dlfm_feeders(bids: pd.DataFrame, fsp: str) -> list[str]:
    """The feeders whose DLFMs ``fsp`` bids in (in bid order). Raises
    :class:`FlexgameInputError` if it has no bids or no distribution bids."""
    own = bids[bids.fsp == fsp]
    if own.empty:
        raise FlexgameInputError(f"fsp={fsp!r} has no bids; FSPs are e.g. "
                                 f"{', '.join(sorted(bids.fsp.unique())[:5])}")
    feeders = list(dict.fromkeys(own.feeder[own.level == "distribution"]))
    if not feeders:
        raise FlexgameInputError(f"fsp={fsp!r} has only transmission bids: it bids in no DLFM "
                                 "(D5.1 §3.6 studies an FSP of the distribution grid)")
    return feeders


def strategic_fsp(scheme: Scheme, truthful, name: str | None = None) -> str:
    """``name`` if given (checked: it must bid in a DLFM), else the FSP with the largest
    accepted MW over the DSO layers of the ``truthful`` clearing of ``scheme`` (ties: the
    first by name). Raises :class:`FlexgameInputError` when no DLFM accepts any bid."""
    bids = scheme.bids
    if name is not None:
        dlfm_feeders(bids, name)
        return name
    accepted = np.zeros(len(bids))
    for layer in truthful.layers:
        if layer.operator.startswith("DSO"):
            accepted += layer.outcome.activation_mw
    volume = pd.Series(accepted, index=bids.fsp.to_numpy()).groupby(level=0).sum()
    volume = volume[volume > 0]
    if volume.empty:
        raise FlexgameInputError("no DLFM accepts any bid in this scenario (no congestion or "
                                 "voltage violation to remove): choose another case or seed")
    return str(volume.sort_index().idxmax())


def profit_grid(scheme: Scheme, fsp: str, space: StrategySpace,
                rules=RULES) -> pd.DataFrame:
    """Every strategy of ``space`` played by ``fsp`` on all its bids, the others truthful,
    settled under each of ``rules``: one row per (rule, strategy) with the markup, the
    withholding share, the FSP's offered and accepted MW, payment, true cost and profit
    [EUR], and, for the FSP's DLFMs, the buyer payment, the declared and social cost [EUR]
    and the line + interface slack left [MW or MVA]. ``scheme`` is built once and re-cleared
    per strategy (never rebuilt)."""
    if space.per_resource or space.reprice_forwarded:
        raise FlexgameInputError("strategies.per_resource and strategies.reprice_forwarded "
                                 "must be false: the strategic FSP plays one (markup, "
                                 "withholding) pair on all its bids")
    bids = scheme.bids
    feeders = dlfm_feeders(bids, fsp)  # raises unless fsp has distribution bids
    bid_map = BidMap(bids, space)
    own = bid_map.fsp_rows[fsp]
    in_dlfm = np.flatnonzero(((bids.level == "distribution") & bids.feeder.isin(feeders))
                             .to_numpy())
    layers = {f"dso:{f}" for f in feeders}
    truthful = bid_map.declare(bid_map.truthful())
    rows = []
    for strategy in space.strategies:
        declared = bid_map.deviate(truthful, fsp, strategy)
        result = scheme.clear(*declared)
        cleared = [layer for layer in result.layers if layer.name in layers]
        true_cost = bid_map.cost * result.activation_mw
        common = dict(
            markup_index=strategy[0], withholding_index=strategy[1],
            markup=space.markups[strategy[0]], withholding=space.withholding[strategy[1]],
            offered_mw=float(declared[1][own].sum()),
            accepted_mw=float(result.activation_mw[own].sum()),
            true_cost_eur=float(true_cost[own].sum()),
            dlfm_declared_cost_eur=float(sum(l.outcome.cost_eur for l in cleared)),
            dlfm_social_cost_eur=float(sum(l.outcome.objective_eur - l.outcome.cost_eur
                                           for l in cleared) + true_cost[in_dlfm].sum()),
            dlfm_slack=float(sum(l.outcome.line_slack + l.outcome.interface_slack_mw
                                 for l in cleared)),
        )
        for rule in rules:
            payment = bid_payments(scheme, result, rule)
            paid = float(payment[own].sum())
            rows.append(dict(rule=rule, **common, payment_eur=paid,
                             profit_eur=paid - common["true_cost_eur"],
                             buyer_payment_eur=float(payment[in_dlfm].sum())))
    columns = ["rule", "markup_index", "withholding_index", "markup", "withholding",
               "offered_mw", "accepted_mw", "payment_eur", "true_cost_eur", "profit_eur",
               "buyer_payment_eur", "dlfm_declared_cost_eur", "dlfm_social_cost_eur",
               "dlfm_slack"]
    return pd.DataFrame(rows, columns=columns)


def best_strategy(grid: pd.DataFrame, tol: float = TIE_TOLERANCE_EUR) -> pd.Series:
    """The row of ``grid`` (one rule) with the highest profit; ties within ``tol`` EUR go to
    the lowest markup, then the least withholding (truthful where truthful is as good)."""
    best = grid.profit_eur.max()
    tied = grid[grid.profit_eur >= best - tol]
    return tied.sort_values(["markup_index", "withholding_index"]).iloc[0]


def summarise(grid: pd.DataFrame) -> pd.DataFrame:
    """Per rule: the best markup and withholding share, the FSP's profit truthful and at its
    best strategy, the gain [EUR and % of the truthful profit; NaN where that is 0], and the
    DLFM buyer payment and social cost truthful and at the best strategy [EUR], the FSP's
    accepted MW and the DLFMs' line + interface slack left [MW or MVA], both truthful and at
    the best strategy."""
    rows = []
    for rule, part in grid.groupby("rule", sort=False):
        truthful = part[(part.markup_index == 0) & (part.withholding_index == 0)].iloc[0]
        best = best_strategy(part)
        gain = best.profit_eur - truthful.profit_eur
        rows.append(dict(
            rule=rule, best_markup=best.markup, best_withholding=best.withholding,
            profit_truthful_eur=truthful.profit_eur, profit_best_eur=best.profit_eur,
            gain_eur=gain,
            gain_pct=100 * gain / abs(truthful.profit_eur)
            if abs(truthful.profit_eur) > TIE_TOLERANCE_EUR else np.nan,
            buyer_payment_truthful_eur=truthful.buyer_payment_eur,
            buyer_payment_best_eur=best.buyer_payment_eur,
            buyer_payment_change_eur=best.buyer_payment_eur - truthful.buyer_payment_eur,
            social_cost_truthful_eur=truthful.dlfm_social_cost_eur,
            social_cost_best_eur=best.dlfm_social_cost_eur,
            social_cost_change_eur=best.dlfm_social_cost_eur - truthful.dlfm_social_cost_eur,
            accepted_truthful_mw=truthful.accepted_mw, accepted_best_mw=best.accepted_mw,
            slack_truthful=truthful.dlfm_slack, slack_best=best.dlfm_slack))
    return pd.DataFrame(rows)


def run(config: WithholdingConfig | None = None) -> WithholdingStudy:
    """The study for ``config`` on flexgame's default system: draws the scenario, builds the
    R-DLFM scheme once, picks the strategic FSP and evaluates the whole strategy grid under
    every rule of :data:`RULES`."""
    from flexgame.experiments.scenario import Scenario
    from flexgame.markets.system import SystemConfig

    config = config or WithholdingConfig()
    config.validate()
    space = config.strategies.space()
    scenario = Scenario.from_settings(
        SystemConfig(), BidConfig(case=config.case, aggregation=config.aggregation,
                                liquidity=config.liquidity), config.seed)
    scheme = dlfm_scheme(scenario.system, scenario.bids)
    fsp = strategic_fsp(scheme, scheme.clear(), config.fsp)
    start = time.perf_counter()
    grid = profit_grid(scheme, fsp, space)
    seconds = time.perf_counter() - start
    return WithholdingStudy(config, repr(scenario), fsp, dlfm_feeders(scenario.bids, fsp),
                            grid, summarise(grid), seconds)


RULE_TITLES = {"vcg": "VCG (Clarke pivot)", "nodal": "DLMP (nodal)", "pay_as_bid": "pay-as-bid"}


def heatmap(grid: pd.DataFrame, rule: str, fsp: str):
    """A figure of ``fsp``'s profit [EUR] under ``rule`` over markup (x) x withholding share
    (y): the truthful cell circled, the best one starred."""
    import matplotlib.pyplot as plt

    part = grid[grid.rule == rule]
    table = part.pivot(index="withholding_index", columns="markup_index", values="profit_eur")
    markups = part.groupby("markup_index").markup.first()
    shares = part.groupby("withholding_index").withholding.first()
    best = best_strategy(part)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    image = ax.imshow(table.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label=f"profit of {fsp} [EUR]")
    ax.set_xticks(range(len(markups)), [f"{m:.3g}" for m in markups], rotation=60)
    ax.set_yticks(range(len(shares)), [f"{w:.2g}" for w in shares])
    ax.set_xlabel("markup (share of the way from true cost to the price cap) [-]")
    ax.set_ylabel("withheld share of capacity [-]")
    ax.plot(0, 0, "o", mfc="none", mec="red", ms=15, mew=2.5, label="truthful")
    ax.plot(best.markup_index, best.withholding_index, "*", color="white", ms=15,
            mec="black", label="best (most profitable)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize=8)
    ax.set_title(f"{RULE_TITLES.get(rule, rule)}: profit of strategic FSP {fsp}")
    return fig


def report(study: WithholdingStudy, figures: dict[str, str]) -> str:
    """The markdown report of ``study``; ``figures``: PNG file name per rule."""
    from flexgame.experiments.table import format_value, markdown_table

    def money(values) -> list[str]:  # EUR, 3 decimals, "-" where undefined (no "-0.000")
        return [format_value(v, 3) for v in values]

    c, s = study.config, study.summary
    space = c.strategies.space()
    shown = pd.DataFrame({
        "settlement": [RULE_TITLES.get(r, r) for r in s.rule],
        "best markup [-]": [f"{m:.3g}" for m in s.best_markup],
        "best withholding [-]": [f"{w:.2g}" for w in s.best_withholding],
        "profit truthful [EUR]": money(s.profit_truthful_eur),
        "profit best [EUR]": money(s.profit_best_eur),
        "gain [EUR]": money(s.gain_eur),
        "gain [%]": [format_value(g, 1) for g in s.gain_pct],
        "buyer payment truthful [EUR]": money(s.buyer_payment_truthful_eur),
        "buyer payment change [EUR]": money(s.buyer_payment_change_eur),
        "social cost truthful [EUR]": money(s.social_cost_truthful_eur),
        "social cost change [EUR]": money(s.social_cost_change_eur),
        "slack left at best [MW or MVA]": [f"{x:.3g}" for x in s.slack_best],
    })
    profiles = len(space.strategies)
    lines = [
        "# Strategic withholding of one FSP in a DLFM (FLEXGRID D5.1 §3.6)", "",
        f"Scenario: {study.scenario}; aggregation {c.aggregation}, liquidity {c.liquidity:g}.",
        f"Market: the R-DLFM, i.e. the DSO layer of scheme `{DLFM_SCHEME}` with "
        f"{', '.join(f'{k}={v}' for k, v in DLFM_OPTIONS.items())} (each feeder's own bids "
        "against its own LinDistFlow limits, the TSO-DSO interface flow held), of feeder(s) "
        f"{', '.join(study.feeders)}.",
        f"Strategic FSP: **{study.fsp}** "
        + ("(named by the user)." if c.fsp else "(largest accepted truthful volume in the "
           "DLFMs)."),
        f"Strategies: {space!r}: {profiles} (markup, withholding) pairs, each cleared once "
        f"and settled under {', '.join(RULES)} ({study.seconds:.1f} s); the other FSPs bid "
        "truthfully.", "",
        "Profit = payments received - true cost of the activated MW; buyer payment = what "
        "the FMO pays all FSPs of the DLFM(s); social cost = the DLFMs' objective at true "
        "costs (true cost of every activation + penalties of violations left). Changes are "
        "at the FSP's best strategy against truthful bidding; ties within "
        f"{TIE_TOLERANCE_EUR:g} EUR go to the lowest markup, then the least withholding.", "",
        markdown_table(shown), "",
    ]
    vcg = s[s.rule == "vcg"]
    if len(vcg):
        gain = float(vcg.gain_eur.iloc[0])
        lines += [f"Under VCG the best deviation gains {gain:.3g} EUR over truthful bidding "
                  + ("(none: truthful bidding is optimal on this grid, as D5.1 §3.6 claims)."
                     if gain <= TIE_TOLERANCE_EUR else
                     "(a gain: truthful bidding is not optimal here; see the grid)."), ""]
        paid = s.set_index("rule").buyer_payment_truthful_eur
        if "pay_as_bid" in paid:
            lines += [f"The price of that guarantee: with every FSP truthful the FMO pays "
                      f"{paid['vcg']:,.2f} EUR under VCG against {paid['pay_as_bid']:,.2f} EUR "
                      "under pay-as-bid (the Clarke payment values what the DLFM would lose "
                      "without the FSP, penalties of violations left included).", ""]
    others = s[s.rule != "vcg"]
    for row in others.itertuples():
        title = RULE_TITLES.get(row.rule, row.rule)
        if row.gain_eur > TIE_TOLERANCE_EUR:
            how = ("economic and physical withholding" if row.best_markup > 0
                   and row.best_withholding > 0 else "economic withholding (a markup)"
                   if row.best_markup > 0 else "physical withholding")
            left = (f", leaving {row.slack_best:.3g} MW (or MVA) of the DLFM's violations "
                    "unresolved (priced at the clearing's penalties"
                    + (", which then set the DLMPs)" if row.rule == "nodal" else ")")
                    if row.slack_best > row.slack_truthful + 1e-9 else "")
            lines.append(f"- {title}: {how} pays {row.gain_eur:,.3f} EUR{left}; the FMO's "
                         f"payment changes by {row.buyer_payment_change_eur:+,.3f} EUR and the "
                         f"social cost by {row.social_cost_change_eur:+,.3f} EUR.")
        else:
            lines.append(f"- {title}: neither markup nor withholding pays on this grid (the "
                         "strategic FSP faces close substitutes in its DLFM).")
    lines.append("")
    for rule, name in figures.items():
        caption = f"{RULE_TITLES.get(rule, rule)}: profit over markup x withholding"
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += ["Files: `profit_grid.csv` (every rule x markup x withholding), `summary.csv`, "
              "`config.json` (settings and provenance).", ""]
    return "\n".join(lines)


def write(study: WithholdingStudy, out) -> Path:
    """``profit_grid.csv``, ``summary.csv``, ``config.json`` (settings and provenance), a
    heatmap PNG per rule and ``report.md`` into ``out``; returns the report's path."""
    import dataclasses

    import matplotlib.pyplot as plt

    from flexgame.experiments.store import (provenance, write_csv, write_figure, write_json,
                                            write_text)

    out = Path(out)
    write_csv(out / "profit_grid.csv", study.grid)
    write_csv(out / "summary.csv", study.summary)
    write_json(out / "config.json", provenance(
        seed=study.config.seed, settings=dataclasses.asdict(study.config),
        scheme=DLFM_SCHEME, scheme_options=DLFM_OPTIONS, strategic_fsp=study.fsp,
        feeders=study.feeders, scenario=study.scenario))
    figures = {}
    for rule in study.grid.rule.unique():
        fig = heatmap(study.grid, rule, study.fsp)
        figures[rule] = f"profit_{rule}.png"
        write_figure(out / figures[rule], fig)
        plt.close(fig)
    return write_text(out / "report.md", report(study, figures))
