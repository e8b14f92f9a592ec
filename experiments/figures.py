"""Figures of a report on collected runs (:mod:`experiments.collect`).

Each figure function takes the runs table (one row per run), the stacked ``rounds.csv`` and
``strategies.csv`` tables, and returns ``(figure, caption)``, or raises :class:`LeftOut` with
the reason when the runs hold no data for it (a truthful-only sweep has no markups). Panels
are split by the swept values the figure does not put on an axis (e.g. one column per
aggregation mode and liquidity); values over seeds are summarised by :func:`band`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from flexgame.experiments.collect import config_columns
from flexgame.markets.metrics import metric as registered
from flexgame.markets.schemes import SCHEMES


def metric_label(name: str) -> str:
    """Axis label with unit, from the metric registry."""
    return registered(name).axis_label

PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.0
"""Size of one panel [inch]."""

MIN_SPAN = {"price_of_anarchy": 0.05, "inefficiency_pct": 1.0, "mean_markup": 0.05,
            "procurement_cost_eur": 1.0}
"""Smallest y range shown per metric (in its unit)."""


class LeftOut(Exception):
    """A figure the runs hold no data for; the message says why."""


def scheme_color(scheme: str):
    """One colour per scheme, the same in every figure."""
    order = list(SCHEMES)
    return colormaps["tab10"].colors[order.index(scheme) % 10 if scheme in order else 9]


MARKERS = "os^Dv<>phX"
"""One marker per scheme (by its position in SCHEMES), so that overlapping lines stay visible."""


def scheme_marker(scheme: str) -> str:
    """One marker per scheme, the same in every figure."""
    order = list(SCHEMES)
    return MARKERS[order.index(scheme) % len(MARKERS) if scheme in order else -1]


def dodge(k: int, n: int, span: float) -> float:
    """Horizontal offset of the ``k``-th of ``n`` lines: 1.5 % of ``span`` apart, so that
    schemes with equal values do not hide each other."""
    return (k - (n - 1) / 2) * 0.015 * span


def scheme_order(schemes) -> list[str]:
    """Schemes in the order of :data:`markets.schemes.SCHEMES`."""
    rank = {s: i for i, s in enumerate(SCHEMES)}
    return sorted(set(schemes), key=lambda s: (rank.get(s, len(rank)), s))


def band(values: pd.Series) -> tuple[float, float, float]:
    """Mean and band of ``values`` (one per seed): mean +- 1.96 standard errors with 3 or
    more values, the min-max range with 2, no band (low = high = mean) with 1."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    mean = float(values.mean())
    if len(values) >= 3:
        half = 1.96 * float(values.sem())
        return mean, mean - half, mean + half
    return mean, float(values.min()), float(values.max())


def band_rule(runs: pd.DataFrame, by: list[str]) -> str:
    """The caption's sentence on the band, from the number of runs per point."""
    counts = runs.groupby(by, dropna=False).size()
    low, high = int(counts.min()), int(counts.max())
    if high == 1:
        return "One run per point (no band)."
    rule = ("mean ± 1.96 standard errors" if low >= 3 else
            "mean and min-max range" if high == 2 else
            "mean ± 1.96 standard errors where a point has 3 or more runs, else min-max range")
    runs_per_point = str(low) if low == high else f"{low}-{high}"
    return f"Band or error bar: {rule} over the {runs_per_point} runs (seeds) per point."


def _readable_y(ax, min_span: float) -> None:
    """Plain y tick labels (no offset), and at least ``min_span`` of range so that round-off
    noise around a constant does not look like a trend."""
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    low, high = ax.get_ylim()
    if high - low < min_span:
        mid = (low + high) / 2
        ax.set_ylim(mid - min_span / 2, mid + min_span / 2)


def swept(runs: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between the runs."""
    return [c for c in config_columns(runs) if runs[c].dropna().astype(str).nunique() > 1]


def panel_keys(runs: pd.DataFrame, on_axes) -> list[str]:
    """The swept values a figure splits into panels: those not on its axes (nor seed)."""
    return [c for c in swept(runs) if c not in {*on_axes, "seed"}]


def panels(runs: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by ``keys``: one ``(title, part)`` per combination of their values."""
    if not keys:
        return [("", runs)]
    return [(", ".join(f"{k}={v}" for k, v in zip(keys, values)), part)
            for values, part in runs.groupby(keys, sort=True, dropna=False)]


def _grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(PANEL_WIDTH * cols + 1.6, PANEL_HEIGHT * rows + 0.6),
                 layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def _scheme_legend(fig: Figure, schemes) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=scheme_color(s), marker=scheme_marker(s), label=s)
               for s in schemes]
    fig.legend(handles=handles, title="scheme", loc="outside right upper")


def _strategic(runs: pd.DataFrame) -> pd.DataFrame:
    if "price_of_anarchy" not in runs:
        return runs.iloc[0:0]
    return runs[pd.to_numeric(runs.price_of_anarchy, errors="coerce").notna()]


def efficiency_vs_liquidity(runs: pd.DataFrame, rounds: pd.DataFrame,
                            strategies: pd.DataFrame) -> tuple[Figure, str]:
    """Price of anarchy and eta against liquidity, one line per scheme."""
    levels = sorted(runs.liquidity.dropna().unique())
    if len(levels) < 2:
        raise LeftOut(f"efficiency vs liquidity: the runs have one liquidity level ({levels[0]})")
    metrics = ["inefficiency_pct"]
    if len(_strategic(runs)):
        metrics.insert(0, "price_of_anarchy")
    keys = panel_keys(runs, {"scheme", "liquidity"})
    parts = panels(runs, keys)
    fig, axes = _grid(len(metrics), len(parts))
    for col, (title, part) in enumerate(parts):
        for row, metric in enumerate(metrics):
            ax = axes[row, col]
            data = part[pd.to_numeric(part[metric], errors="coerce").notna()]
            if data.empty:
                ax.set_visible(False)  # e.g. the price of anarchy of truthful runs: not drawn
                continue
            schemes = scheme_order(data.scheme)
            for k, scheme in enumerate(schemes):
                stats = pd.DataFrame(
                    {liq: band(d[metric]) for liq, d in data[data.scheme == scheme]
                     .groupby("liquidity")}, index=["mean", "low", "high"]).T
                x = stats.index + dodge(k, len(schemes), levels[-1] - levels[0])
                color = scheme_color(scheme)
                ax.plot(x, stats["mean"], marker=scheme_marker(scheme), color=color,
                        label=scheme)
                ax.fill_between(x, stats.low, stats.high, color=color, alpha=0.15, linewidth=0)
            ax.set_xlabel(metric_label("liquidity"))
            ax.set_ylabel(metric_label(metric))
            _readable_y(ax, MIN_SPAN[metric])
            ax.set_xticks(levels)
            ax.set_title(title, fontsize=9)
    _scheme_legend(fig, scheme_order(runs.scheme))
    caption = ("Efficiency against liquidity per scheme. Price of anarchy = strategic / truthful "
               "procurement cost of the same scheme (strategic runs only); eta = (J - J_common) "
               "/ |J_common| x 100 % against the truthful common market. "
               + band_rule(runs, ["scheme", "liquidity", *keys]))
    return fig, caption


def aggregation_effect(runs: pd.DataFrame, rounds: pd.DataFrame,
                       strategies: pd.DataFrame) -> tuple[Figure, str]:
    """Price of anarchy and mean markup per scheme, one bar per aggregation mode."""
    strategic = _strategic(runs)
    if strategic.empty:
        raise LeftOut("effect of aggregation: no strategic runs (aggregation only changes "
                      "who bids together, which matters under strategic bidding)")
    modes = sorted(strategic.aggregation.dropna().unique())
    if len(modes) < 2:
        raise LeftOut(f"effect of aggregation: the strategic runs have one aggregation mode "
                      f"({modes[0]})")
    metrics = ["price_of_anarchy", "mean_markup"]
    keys = panel_keys(strategic, {"scheme", "aggregation"})
    parts = panels(strategic, keys)
    fig, axes = _grid(len(metrics), len(parts))
    colors = colormaps["Set2"].colors
    for col, (title, part) in enumerate(parts):
        schemes = scheme_order(part.scheme)
        width = 0.8 / len(modes)
        for row, metric in enumerate(metrics):
            ax = axes[row, col]
            for k, mode in enumerate(modes):
                stats = [band(part[(part.scheme == s) & (part.aggregation == mode)][metric])
                         for s in schemes]
                mean = np.array([s[0] for s in stats])
                err = np.abs(np.array([[m - s[1], s[2] - m] for m, s in zip(mean, stats)]).T)
                x = np.arange(len(schemes)) + (k - (len(modes) - 1) / 2) * width
                ax.bar(x, mean, width, yerr=np.nan_to_num(err), capsize=3,
                       color=colors[k % len(colors)], edgecolor="black", linewidth=0.5,
                       label=mode)
            if metric == "price_of_anarchy":
                ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_xticks(np.arange(len(schemes)), schemes, rotation=30, ha="right")
            ax.set_xlabel("coordination scheme")
            ax.set_ylabel(metric_label(metric))
            ax.set_title(title, fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="aggregation", loc="outside right upper")
    caption = ("Effect of aggregation on market power: price of anarchy (strategic / truthful "
               "cost, 1 = no market power) and mean final markup per scheme, one bar per "
               "aggregation mode. Error bars: "
               + band_rule(strategic, ["scheme", "aggregation", *keys]))
    return fig, caption


def markup_distribution(runs: pd.DataFrame, rounds: pd.DataFrame,
                        strategies: pd.DataFrame) -> tuple[Figure, str]:
    """Boxes of the FSPs' final markups per scheme (all FSPs of all seeds pooled)."""
    if strategies.empty:
        raise LeftOut("markup distributions: no strategic runs (strategies.csv)")
    parts = panels(strategies, panel_keys(strategies, {"scheme"}))
    cols = 2 if len(parts) == 4 else min(len(parts), 3)
    fig, axes = _grid(-(-len(parts) // cols), cols)
    for ax in axes.flat[len(parts):]:
        ax.set_visible(False)
    for ax, (title, part) in zip(axes.flat, parts):
        schemes = scheme_order(part.scheme)
        boxes = ax.boxplot([part[part.scheme == s].markup.to_numpy() for s in schemes],
                           tick_labels=schemes, patch_artist=True, widths=0.6)
        for patch, scheme in zip(boxes["boxes"], schemes):
            patch.set_facecolor(scheme_color(scheme))
            patch.set_alpha(0.6)
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set_xlabel("coordination scheme")
        ax.set_ylabel(f"final markup [{_markup_unit(runs)}]")
        ax.set_title(title, fontsize=9)
    caption = ("Distribution of the FSPs' final markups per scheme (box: quartiles and median, "
               "whiskers: 1.5 x interquartile range, points: outliers); every FSP of every "
               "seed counts once.")
    return fig, caption


def _markup_unit(runs: pd.DataFrame) -> str:
    """Unit of the markups of the runs' strategy kinds (to_cap and multiplicative: -)."""
    from flexgame.games.strategies import MARKUP_UNITS

    kinds = set(runs.get("markup_kind", pd.Series(dtype=object)).dropna())
    units = {MARKUP_UNITS.get(k, "-") for k in kinds} or {"-"}
    return units.pop() if len(units) == 1 else " or ".join(sorted(units))


def convergence(runs: pd.DataFrame, rounds: pd.DataFrame,
                strategies: pd.DataFrame) -> tuple[Figure, str]:
    """Procurement cost and mean markup per reasoning round, one line per scheme."""
    if rounds.empty:
        raise LeftOut("convergence: no strategic runs (rounds.csv)")
    per_round = rounds.drop_duplicates(["run_dir", "step"])
    last = int(per_round.step.max())
    # a run that stopped early (fixed point, cycle) is held at its last round
    filled = (per_round.set_index("step").groupby("run_dir", group_keys=True)
              [["procurement_cost_eur", "mean_markup"]]
              .apply(lambda r: r.reindex(range(last + 1)).ffill())
              .reset_index())
    filled = filled.merge(per_round[[*config_columns(rounds), "run_dir"]]
                          .drop_duplicates("run_dir"), on="run_dir")
    metrics = ["procurement_cost_eur", "mean_markup"]
    keys = panel_keys(rounds, {"scheme"})
    parts = panels(filled, keys)
    fig, axes = _grid(len(metrics), len(parts))
    for col, (title, part) in enumerate(parts):
        for row, metric in enumerate(metrics):
            ax = axes[row, col]
            schemes = scheme_order(part.scheme)
            for k, scheme in enumerate(schemes):
                stats = pd.DataFrame({step: band(d[metric]) for step, d in
                                      part[part.scheme == scheme].groupby("step")},
                                     index=["mean", "low", "high"]).T
                x = stats.index + dodge(k, len(schemes), max(last, 1))
                color = scheme_color(scheme)
                ax.plot(x, stats["mean"], marker=scheme_marker(scheme), markersize=4,
                        color=color, label=scheme)
                ax.fill_between(x, stats.low, stats.high, color=color, alpha=0.15, linewidth=0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("reasoning round [-]")
            ax.set_ylabel(metric_label(metric))
            _readable_y(ax, MIN_SPAN[metric])
            ax.set_title(title, fontsize=9)
    _scheme_legend(fig, scheme_order(filled.scheme))
    caption = ("Convergence of the reasoning rounds: procurement cost and mean markup per round "
               "(round 0 = truthful bids; the last round of an equilibrium run is the "
               "equilibrium's expected outcome and markup); runs that stopped early are held "
               "at their last round. "
               + band_rule(filled[filled.step == 0], ["scheme", *keys]))
    return fig, caption


def grid_safety(runs: pd.DataFrame, rounds: pd.DataFrame,
                strategies: pd.DataFrame) -> tuple[Figure, str]:
    """Violations (congestions + voltage violations) and the largest excess per scheme and
    case."""
    data = runs.assign(
        violations=runs.congestions.fillna(0) + runs.voltage_violations.fillna(0),
        max_excess=pd.concat([pd.to_numeric(runs.max_congestion_pct, errors="coerce"),
                              pd.to_numeric(runs.max_voltage_violation_pct, errors="coerce")],
                             axis=1).max(axis=1).fillna(0.0))
    schemes = scheme_order(data.scheme)
    cases = sorted(data.case.dropna().unique())
    fig, axes = _grid(1, 2)
    colors = colormaps["tab10"].colors
    width = 0.8 / len(cases)
    panel_specs = [("violations", "mean", "violations per run [-]",
                    "congestions + voltage violations"),
                   ("max_excess", "max", "largest excess over a limit [%]", "largest excess")]
    for ax, (column, how, label, title) in zip(axes[0], panel_specs):
        table = data.groupby(["scheme", "case"])[column].agg(how).unstack("case")
        table = table.reindex(index=schemes, columns=cases)
        for k, case in enumerate(cases):
            x = np.arange(len(schemes)) + (k - (len(cases) - 1) / 2) * width
            ax.bar(x, table[case].fillna(0.0), width, color=colors[k % 10], edgecolor="black",
                   linewidth=0.5, label=f"case {case}")
        ax.set_xticks(np.arange(len(schemes)), schemes, rotation=30, ha="right")
        ax.set_xlabel("coordination scheme")
        ax.set_ylabel(label)
        ax.set_title(title, fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="case", loc="outside right upper")
    caption = ("Grid safety ex post (power flow with all activations): congestions + voltage "
               "violations per run (mean over the runs of each scheme and case: seeds, "
               "liquidity, reasoning, ...) and the largest excess over a line or voltage limit "
               "in % of the limit (maximum over those runs). Empty bars: no violation.")
    return fig, caption


FIGURES = {
    "efficiency_vs_liquidity": efficiency_vs_liquidity,
    "aggregation_effect": aggregation_effect,
    "markup_distribution": markup_distribution,
    "convergence": convergence,
    "grid_safety": grid_safety,
}
"""Figure file stem -> function, in report order."""
