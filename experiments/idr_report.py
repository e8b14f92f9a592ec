"""Reports of implicit DR: the paper's Table II and the FOIO / VOIO / SBVOIO study.

``flexgame idr table`` prints :func:`flexgame.experiments.idr_cases.table_ii`;
``flexgame idr study`` runs :func:`flexgame.experiments.idr_study.run_study` and writes, into
its output directory: ``quarters.csv`` (every candidate on every evaluated quarter-hour),
``grid.csv`` (per candidate and split), ``selected.csv`` (FOIO, VOIO, SBVOIO), ``findings.json``
(seed 000 §4's numbers), three figures (PNG and SVG) and ``report.md``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from flexgame.experiments.idr_study import MEDIAN, StudyResult, findings
from flexgame.experiments.store import provenance, write_csv, write_figure, write_json, write_text
from flexgame.experiments.table import markdown_table

METHODS = ("FOIO", "VOIO", "SBVOIO")
COLOURS = {"FOIO": "tab:grey", "VOIO": "tab:blue", "SBVOIO": "tab:orange"}
WIDTHS = {"FOIO": 5.0, "VOIO": 3.0, "SBVOIO": 1.5}
"""Line widths of the curves: methods that select the same candidate stay visible."""


def _candidate(label: str, result: StudyResult):
    from flexgame.experiments.idr_study import candidates

    return next(c for c in candidates(result.config) if c.label == label)


def curves_figure(result: StudyResult):
    """Fitted flexibility curves of the selected candidates against the DR's true response,
    for the first test day at the study's middle quarter-hour."""
    import matplotlib.pyplot as plt

    config, data = result.config, result.data
    day = config.splits["test"].start
    quarter = config.quarter_hours[len(config.quarter_hours) // 2]
    prices = np.linspace(0.0, config.max_retail_price, 121)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    truth = [data.actual.demand(day, quarter, p) for p in prices]
    ax.plot(prices, truth, color="black", lw=2, label="true response (ground truth)")
    selected = result.selected.set_index("method")
    for method in METHODS:
        candidate = _candidate(selected.loc[method, "candidate"], result)
        for q in candidate.quantiles:
            curve = data.curve(candidate.n_blocks, candidate.window, None if q == MEDIAN else q,
                               quarter, day)
            ax.step(prices, curve.demand(prices), where="post", color=COLOURS[method],
                    ls="-" if q == MEDIAN else ":", lw=WIDTHS[method], alpha=0.8,
                    label=f"{method} ({candidate.label})" + ("" if q == MEDIAN else f" q{q:g}"))
    ax.set_xlabel("retail price [EUR/MWh]")
    ax.set_ylabel("DR demand [MW]")
    ax.set_title(f"Flexibility curves, test day {day}, quarter-hour {quarter}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _bars(result: StudyResult, column: str, ylabel: str, title: str):
    import matplotlib.pyplot as plt

    selected = result.selected.set_index("method")
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.38
    for i, split in enumerate(("validation", "test")):
        values = [selected.loc[m, f"{split}_{column}"] for m in METHODS]
        bars = ax.bar(np.arange(3) + (i - 0.5) * width, values, width, label=f"{split} days",
                      color=["tab:grey", "tab:blue", "tab:orange"], alpha=1.0 if i else 0.55,
                      edgecolor="black")
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(np.arange(3), [f"{m}\n{selected.loc[m, 'candidate']}" for m in METHODS])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.axhline(0, color="black", lw=0.8)
    ax.legend(fontsize=8)
    return fig


def write_study(result: StudyResult, out) -> Path:
    """Write the study's tables, figures and ``report.md`` into ``out``; returns the report."""
    import matplotlib.pyplot as plt

    out = Path(out)
    found = findings(result)
    write_csv(out / "quarters.csv", result.quarters)
    write_csv(out / "grid.csv", result.grid)
    write_csv(out / "selected.csv", result.selected)
    write_json(out / "findings.json", found)
    config = asdict(result.config)
    write_json(out / "provenance.json", provenance(seed=result.config.seed, study=config))
    figures = {
        "idr_curves": (curves_figure(result), "fitted flexibility curves of the selected "
                       "candidates (dotted: SBVOIO's quantile scenarios) against the DR's true "
                       "response"),
        "idr_profit": (_bars(result, "profit_eur", "BRP ex-post profit [EUR]",
                             "Profit per method"), "the BRP's ex-post profit, summed over the "
                       "evaluated quarter-hours"),
        "idr_over_activations": (_bars(result, "over_activations", "over-activations [-]",
                                       "Extreme over-activations per method"),
                                 "quarter-hours whose residual imbalance has the opposite sign "
                                 "of the system imbalance"),
    }
    for name, (fig, _) in figures.items():
        for suffix in (".png", ".svg"):
            write_figure(out / f"{name}{suffix}", fig)
        plt.close(fig)
    write_text(out / "report.md", markdown(result, found, {n: c for n, (_, c) in figures.items()}))
    return out / "report.md"


def markdown(result: StudyResult, found: dict, captions: dict[str, str]) -> str:
    c = result.config
    splits = c.splits
    selected = result.selected.rename(columns=lambda k: k.replace("_eur", " [EUR]")
                                      .replace("_mw", " [MW]"))
    shown = selected.map(lambda v: f"{v:.2f}" if isinstance(v, float) else v)
    lines = [
        "# Implicit DR: FOIO, VOIO and SBVOIO (seed 000 KER 3)", "",
        f"Generated EV history of {c.history.days} days (seed {c.seed}); validation days "
        f"{splits['validation'].start}-{splits['validation'].stop - 1}, test days "
        f"{splits['test'].start}-{splits['test'].stop - 1}; quarter-hours "
        f"{', '.join(map(str, c.quarter_hours))}; grid N {list(c.blocks)}, W {list(c.windows)}"
        f" days, SBVOIO quantile sets {[list(q) for q in c.quantile_sets]}; retail price cap "
        f"{c.max_retail_price:g} EUR/MWh; actual-response noise {c.noise_std:g}.", "",
        "## Selected candidates", "", markdown_table(shown), "",
        "## Findings of seed 000 §4, here", "",
        f"- VOIO over FOIO: {found['voio_over_foio_profit_pct_validation']:+.2f} % profit on "
        f"validation days, {found['voio_over_foio_profit_pct_test']:+.2f} % on test days "
        "(seed 000: +2.69 % / +1.94 %); forecast MAE FOIO "
        f"{found['forecast_mae_foio_vs_voio_mw'][0]:.2f} MW vs VOIO "
        f"{found['forecast_mae_foio_vs_voio_mw'][1]:.2f} MW.",
        f"- Correlation of forecast error and profit over the candidates (validation): Pearson "
        f"{found['pearson_forecast_error_profit']:.2f}, Spearman "
        f"{found['spearman_forecast_error_profit']:.2f} (seed 000: 0.1 / -0.02).",
        f"- Extreme over-activations (test): FOIO {found['over_activations_foio_test']}, VOIO "
        f"{found['over_activations_voio_test']}, SBVOIO {found['over_activations_sbvoio_test']}"
        " (seed 000: VOIO 7.68 % fewer than FOIO, SBVOIO 77 % fewer than VOIO).",
        f"- SBVOIO over VOIO: {found['sbvoio_over_voio_profit_pct_validation']:+.2f} % "
        f"(validation), {found['sbvoio_over_voio_profit_pct_test']:+.2f} % (test) (seed 000: "
        "+4.7 % / +4.34 %); profit MAE (ex ante vs ex post) on test days: VOIO "
        f"{found['profit_mae_voio_test']:.1f} EUR, SBVOIO {found['profit_mae_sbvoio_test']:.1f} "
        "EUR.", "",
        "By construction VOIO's validation profit is at least FOIO's and SBVOIO's at least "
        "VOIO's (asserted); test days show whether the choice carries over.", "",
        "## Figures", ""]
    for name, caption in captions.items():
        lines += [f"![{caption}]({name}.png)", "", f"*{caption}*", ""]
    return "\n".join(lines)
