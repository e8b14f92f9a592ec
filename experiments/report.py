"""``flexgame report DIR``: one tidy table, figures and a markdown report of a run or sweep.

:func:`make_report` collects every readable run under ``DIR`` (:mod:`experiments.collect`),
writes the table (``runs.csv`` or ``runs.parquet``), draws the figures of
:data:`experiments.figures.FIGURES` that the runs hold data for (PNG and SVG) and writes
``report.md``: what was swept, a summary table (mean over seeds, units in the headers), the
figures with captions, the figures left out and why, and the runs left out (failed,
unreadable or incomplete) and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from flexgame.experiments.collect import collect, config_columns, rounds, strategies, write_table
from flexgame.experiments.figures import FIGURES, LeftOut, scheme_order, swept
from flexgame.experiments.store import write_figure, write_text
from flexgame.experiments.table import format_value, markdown_table
from flexgame.markets.metrics import metric

SUMMARY = ("total_cost", "inefficiency_pct", "price_of_anarchy", "price_of_stability",
           "mean_markup", "share_at_grid_top", "fsp_profit_total", "congestions",
           "max_congestion_pct", "voltage_violations", "max_voltage_violation_pct",
           "unmet_need_mw", "iterations", "epsilon", "epsilon_share_pct", "support_size",
           "runtime_s")
"""Metrics of the summary table (headers, units and decimals from the registry)."""
TEXT_COLUMNS = ("equilibrium_concept", "status")
"""Labels of the summary table: per cell, each value with its number of runs."""


@dataclass
class Report:
    """What :func:`make_report` wrote (``failed``: runs left out, failed, unreadable or
    incomplete)."""

    table: Path
    report: Path
    figures: dict[str, Path] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    runs: int = 0
    failed: int = 0


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean of the :data:`SUMMARY` metrics over seeds per combination of the other swept
    values, formatted for display with units in the headers (``cost [EUR]``)."""
    keys = [c for c in swept(runs) if c != "seed"] or ["scheme"]
    metrics = [m for m in SUMMARY if m in runs and pd.to_numeric(runs[m], errors="coerce")
               .notna().any()]
    numeric = runs[keys].assign(**{m: pd.to_numeric(runs[m], errors="coerce") for m in metrics})
    grouped = numeric.groupby(keys, sort=False, dropna=False)
    table = grouped[metrics].mean()
    table.insert(0, "runs", grouped.size())
    for text in TEXT_COLUMNS:
        if text in runs:
            table[text] = runs.groupby(keys, sort=False, dropna=False)[text].agg(
                lambda s: ", ".join(f"{k} x{n}" for k, n in s.dropna().value_counts().items()))
    table = table.reset_index()
    order = {s: i for i, s in enumerate(scheme_order(runs.scheme))}
    table = table.sort_values(keys, key=lambda c: c.map(order) if c.name == "scheme" else c,
                              kind="stable")
    shown = table[keys].astype(str)
    shown["runs"] = table["runs"].astype(str)
    for name in metrics:
        decimals = max(metric(name).decimals, 2)  # means over seeds of counts have decimals
        shown[metric(name).header] = [format_value(v, decimals) for v in table[name]]
    for text in TEXT_COLUMNS:
        if text in table:
            shown[metric(text).label] = table[text]
    return shown


def _values(runs: pd.DataFrame, column: str) -> str:
    values = runs[column].dropna().unique()
    try:
        values = sorted(values)
    except TypeError:
        pass
    return ", ".join(map(str, scheme_order(values) if column == "scheme" else values))


def markdown(root: Path, runs: pd.DataFrame, failed: dict[Path, str],
             captions: dict[str, str], left_out: list[str], table_name: str,
             seconds: float) -> str:
    """The text of ``report.md`` (``failed``: the runs left out, with why)."""
    varied = swept(runs)
    fixed = [c for c in config_columns(runs) if c not in varied and runs[c].notna().any()]
    parts = [
        f"# flexgame report: {root}",
        "",
        f"{len(runs)} complete run{'s' * (len(runs) != 1)}"
        + (f", {len(failed)} failed, unreadable or incomplete" if failed else "") + ". "
        "Swept: " + ("; ".join(f"{c} = {_values(runs, c)}" for c in varied) or "nothing") + ". "
        "Fixed: " + "; ".join(f"{c} = {_values(runs, c)}" for c in fixed) + ".",
        "",
        "Costs are what the buyers (TSO, DSOs) pay under the settlement rule (EUR; under "
        "pay-as-bid accepted MW x declared price, D3.3's J); eta = (cost - J_common) / "
        "|J_common| x 100 % against the truthful common market at true prices on the same "
        "bids; price of anarchy (stability) = the dearest (cheapest) equilibrium found over the "
        "truthful cost of the same scheme. A strategic run's outcome is a named concept "
        "(pure or mixed Nash, coarse correlated equilibrium, or what a bounded-rationality "
        "process reached) with its certificate epsilon: the largest gain any FSP could still "
        "make by a unilateral deviation (EUR; epsilon/cost in %; a pure Nash equilibrium with "
        "epsilon > 0 is a profile of a best-response cycle within the tolerance), over a "
        "distribution of "
        "support profiles (support). Markups: to_cap strategies give the share of the way "
        "from true cost to the price cap, multiplicative ones price / cost, additive ones "
        "price - cost (EUR/MW); at grid top = share of FSPs at the top of the grid. cong. and "
        "V viol. count congested lines and voltage violations in the ex-post power flow, "
        "max = largest excess over a limit in % of it.",
        "",
        "## Summary" + (" (mean over seeds)" if "seed" in varied else ""),
        "",
        markdown_table(summary_table(runs)),
        "",
        "## Figures",
        "",
    ]
    for stem, caption in captions.items():
        parts += [f"![{stem}]({stem}.png)", "", f"*{caption}* ([SVG]({stem}.svg))", ""]
    if left_out:
        parts += ["Left out:", "", *(f"* {why}." for why in left_out), ""]
    if failed:
        parts += ["## Failed or unreadable runs", "",
                  *(f"* `{run.relative_to(root)}`: {why}" for run, why in failed.items()), ""]
    parts += ["## Files", "",
              f"* `{table_name}`: one row per run: the swept config values, `run_dir`, then "
              "every scalar of its `metrics.json`.",
              "* Each run directory: `config.yaml`, `provenance.json`, `metrics.json`, "
              "`bids.csv`, `clearing.csv`, `fsp.csv`, `grid.csv`, `liquidity.csv`; strategic "
              "runs add `rounds.csv` and `strategies.csv`; failed jobs hold `error.txt`.",
              "",
              f"Report drawn in {seconds:.1f} s.", ""]
    return "\n".join(parts)


def make_report(root, out=None, fmt: str = "csv") -> Report:
    """Collect the runs under ``root`` and write the table, figures and ``report.md`` into
    ``out`` (default ``root``).

    Raises:
        FlexgameInputError: ``root`` is not a directory or holds no readable run; unknown
            ``fmt`` or parquet without pyarrow.
    """
    start = time.perf_counter()
    root, out = Path(root), Path(out or root)
    runs, failed = collect(root)
    report = Report(table=write_table(runs, out / "runs", fmt), report=out / "report.md",
                    runs=len(runs), failed=len(failed))
    tables = (rounds(runs, root), strategies(runs, root))
    captions = {}
    for stem, draw in FIGURES.items():
        try:
            figure, captions[stem] = draw(runs, *tables)
        except LeftOut as why:
            report.left_out.append(str(why))
            continue
        for suffix in ("png", "svg"):
            report.figures[f"{stem}.{suffix}"] = write_figure(out / f"{stem}.{suffix}", figure)
    write_text(report.report, markdown(root, runs, failed, captions, report.left_out,
                                       report.table.name, time.perf_counter() - start))
    return report
