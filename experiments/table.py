"""The D3.3 comparison table: every coordination scheme on cases A-D with truthful bids.

For each case the scenario (system and bids, drawn from one seed) is built once and the
common market is cleared once; every scheme is then cleared on the same bids and assessed
ex post (ALEXANDER D3.3 Table 4-3 layout: inefficiency, congestions, voltage violations,
unqualified volume, runtime).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from flexgame.experiments.evaluation import clear
from flexgame.experiments.scenario import Scenario
from flexgame.experiments.store import provenance, write_csv, write_figure, write_json, write_text
from flexgame.markets.bids import CASES
from flexgame.markets.errors import require_choice
from flexgame.markets.metrics import metric
from flexgame.markets.schemes import DSO_MODELS, SCHEME_OPTIONS, SCHEMES
from flexgame.markets.system import SystemConfig

COLUMNS = ("inefficiency_pct", "congestions", "max_congestion_pct", "voltage_violations",
           "max_voltage_violation_pct", "unqualified_up_pct", "unqualified_down_pct",
           "residual_need_mw", "runtime_s")
"""The table's metrics, in D3.3 Table 4-3 order (headers and units from the registry). The
need column is the TSO need left at the ex-post state (what every layer's activations,
interface deviations included, leave), not the layers' balance slacks: a DSO layer that
deviates from a held interface leaves need unmet without a balance slack."""

LONG_METRICS = ("total_cost", "common_cost", *COLUMNS, "unmet_need_mw", "build_s")
"""The numeric metrics of the long (tidy) table."""

LEGEND = "; ".join(f"{metric(m).label} = {metric(m).definition}" for m in COLUMNS)

DEFAULT_OUT = Path("results") / "d33_table"

ASSESSMENTS = ("linear", "ac")
"""``assessment`` of :func:`compute`: the linear ex-post check only, or AC beside it."""

AC_COLUMNS = ("congestions_ac", "max_congestion_ac_pct", "voltage_violations_ac",
              "max_voltage_violation_ac_pct", "flagged_ac", "linear_v_error_pu",
              "linear_flow_error_mw")
"""The AC columns :func:`compute` adds with ``assessment="ac"`` (headers and decimals from the
registry; :func:`flexgame.markets.ac_assessment.ac_kpis`): AC power flow counts and maxima,
``flagged`` (the linear check passes, AC does not) and the linear model's largest voltage and
flow error against AC."""


def compute(cases=CASES, schemes=SCHEMES, seed: int = 0, progress: bool = True,
            assessment: str = "linear", system: SystemConfig | None = None,
            dso_model: str = "lindistflow") -> pd.DataFrame:
    """Clear every scheme on every case; one row per (case, scheme) with its KPIs.

    ``assessment="ac"`` adds, beside the linear ex-post check's columns, an AC power flow
    assessment of the same activations (:data:`AC_COLUMNS`, from
    :mod:`flexgame.markets.ac_assessment`; the AC networks are built once per case).
    ``system``: the system's settings (default: the default system; e.g. the ``high_dg``
    preset of ``conf/system/``). ``dso_model="socp"``: the schemes that have the option
    clear their first DSO markets on the SOCP relaxation (:mod:`flexgame.markets.socp_layer`)."""
    require_choice("dso_model", dso_model, DSO_MODELS)
    require_choice("assessment", assessment, ASSESSMENTS)
    if assessment == "ac":
        from flexgame.markets.ac_assessment import ac_kpis, ac_model
    for case in cases:
        require_choice("--cases", case, CASES)
    for scheme in schemes:
        require_choice("--schemes", scheme, SCHEMES)
    rows = {}
    with tqdm(total=len(cases) * len(schemes), desc="D3.3 table", unit="run",
              disable=not progress) as bar:
        for case in cases:
            scenario = Scenario.from_case(case, seed, system=system)
            common = None
            for scheme in sorted(schemes, key=lambda s: s != "common"):  # common first: reused
                bar.set_postfix_str(f"case {case}, {scheme}")
                options = ({"dso_model": dso_model}
                           if scheme in SCHEME_OPTIONS["dso_model"] else {})
                clearing = clear(scenario, scheme, common, **options)
                common = clearing if scheme == "common" else common
                rows[case, scheme] = {"case": case, "scheme": scheme, "seed": seed,
                                      "tso_need_mw": scenario.system.tso_need_mw,
                                      **clearing.kpis}
                if assessment == "ac":
                    report = ac_model(scenario.system).assess(scenario.bids,
                                                              clearing.result.activation_mw)
                    rows[case, scheme].update(ac_kpis(report))
                bar.update()
    return pd.DataFrame([rows[case, scheme] for case in cases for scheme in schemes])


def long_table(table: pd.DataFrame) -> pd.DataFrame:
    """Tidy long form: one row per (case, scheme, metric) with its value and unit."""
    metrics = [m for m in LONG_METRICS if m in table.columns]
    long = table.melt(id_vars=["case", "scheme", "seed"], value_vars=metrics,
                      var_name="metric", value_name="value")
    long["unit"] = long.metric.map(lambda m: metric(m).unit)
    return long


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """Wide form: one row per scheme, one column per (metric, case): ``inefficiency_pct_A``."""
    wide = table.pivot(index="scheme", columns="case", values=list(COLUMNS))
    wide = wide.reindex(table.scheme.drop_duplicates())
    wide.columns = [f"{metric}_{case}" for metric, case in wide.columns]
    counts = [c for c in wide.columns if c.startswith(("congestions_", "voltage_violations_"))]
    wide[counts] = wide[counts].astype("Int64")
    return wide.reset_index()


def format_value(value, decimals: int) -> str:
    """A number with ``decimals`` decimals; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if decimals == 0:
        return str(int(value))
    return f"{round(float(value), decimals) + 0.0:.{decimals}f}"  # + 0.0: no "-0.00"


def case_blocks(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per case: a title and a display table (scheme rows, formatted KPI columns)."""
    blocks = []
    for case, part in table.groupby("case", sort=False):
        first = part.iloc[0]
        need = first.tso_need_mw
        title = (f"Case {case}: TSO need {abs(need):.2f} MW {'upward' if need > 0 else 'downward'}"
                 f", common cost {first.common_cost:.2f} EUR, seed {first.seed}")
        shown = pd.DataFrame({"scheme": part.scheme.to_numpy()})
        for name in COLUMNS:
            shown[metric(name).header] = [format_value(v, metric(name).decimals)
                                          for v in part[name]]
        for name in AC_COLUMNS:
            if name in part:
                m = metric(name)
                shown[m.header] = ([("yes" if v else "no") for v in part[name]] if not m.unit
                                   else [format_value(v, m.decimals) for v in part[name]])
        blocks.append((title, shown))
    return blocks


def format_table(table: pd.DataFrame) -> str:
    """The table as text, one block per case."""
    blocks = [f"{title}\n{shown.to_string(index=False)}" for title, shown in case_blocks(table)]
    return "\n\n".join([*blocks, LEGEND])


def markdown_table(shown: pd.DataFrame) -> str:
    """A display table as a markdown table (first column left-aligned, others right)."""
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join(["---"] + ["---:"] * (len(shown.columns) - 1)) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def figure(table: pd.DataFrame):
    """Grouped bars of inefficiency per scheme and case; bars of runs that violate grid
    limits ex post are hatched and carry their number of violations."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    schemes = list(table.scheme.drop_duplicates())
    cases = list(table.case.drop_duplicates())
    width = 0.8 / len(cases)
    fig = Figure(figsize=(max(6.0, 1.3 * len(schemes) + 2), 4.8))
    ax = fig.subplots()
    colors = colormaps["tab10"].colors
    values = table.inefficiency_pct.fillna(0.0).to_numpy()
    span = max(np.abs(values).max(), 1.0)
    for k, case in enumerate(cases):
        part = table[table.case == case].set_index("scheme").reindex(schemes)
        x = np.arange(len(schemes)) + (k - (len(cases) - 1) / 2) * width
        eta = part.inefficiency_pct.fillna(0.0).to_numpy()
        violations = (part.congestions + part.voltage_violations).fillna(0).to_numpy(int)
        bars = ax.bar(x, eta, width, color=colors[k % 10], label=f"case {case}",
                      edgecolor="black", linewidth=0.5)
        for bar, n, value in zip(bars, violations, eta):
            if n > 0:
                bar.set_hatch("///")
                offset = 0.02 * span if value >= 0 else -0.02 * span
                ax.text(bar.get_x() + bar.get_width() / 2, value + offset, str(n),
                        ha="center", va="bottom" if value >= 0 else "top", fontsize=7)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(schemes)), schemes, rotation=30, ha="right")
    ax.set_xlabel("coordination scheme")
    ax.set_ylabel(metric("inefficiency_pct").axis_label)
    ax.set_title("Procurement-cost inefficiency with truthful bids (D3.3 cases)")
    ax.margins(y=0.15)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                         label="grid limits violated ex post\n(number = congestions + "
                               "voltage violations)"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)
    fig.tight_layout()
    return fig


def report(table: pd.DataFrame, system_summary: str, figure_name: str, seconds: float) -> str:
    """A short markdown report of the table."""
    parts = [
        "# D3.3 table: coordination schemes with truthful bids",
        "",
        "Every scheme clears the same bids per case (one seed); costs are pay-as-bid procurement "
        "costs J, inefficiency η = (J_scheme − J_common) / |J_common| × 100 %. Congestions and "
        "voltage violations come from the ex-post power flow with all activations (excess in % "
        "of the limit). Unqualified volume is the share of forwarded distribution bids capped "
        "off by prequalification (ml03, ml06). η < 0 means cheaper than common by violating "
        "limits or leaving need unmet; it can also appear without a counted violation, since "
        "the clearing LPs keep feeder flows inside a polygon inscribed in the |S| circle "
        "(scheme.polygon_sides) while the ex-post check uses the circle itself.",
        "",
        LEGEND + ".",
        "",
        f"## System (base state of case {table.case.iloc[0]})",
        "",
        "```",
        system_summary,
        "```",
        "",
    ]
    for title, shown in case_blocks(table):
        parts += [f"## {title}", "", markdown_table(shown), ""]
    parts += [f"![inefficiency per scheme and case]({figure_name})", "",
              f"{len(table)} runs in {seconds:.1f} s. Files: `d33_table_long.csv` (tidy: case, "
              "scheme, metric, value, unit), `d33_table_wide.csv` (one row per scheme), "
              "`provenance.json`.", ""]
    return "\n".join(parts)


def write(table: pd.DataFrame, out_dir, system_summary: str, seconds: float) -> dict[str, Path]:
    """Write the long and wide CSV, the figure (PNG, SVG), the report and provenance."""
    out = Path(out_dir)
    files = {
        "long": write_csv(out / "d33_table_long.csv", long_table(table)),
        "wide": write_csv(out / "d33_table_wide.csv", wide_table(table)),
    }
    fig = figure(table)
    files["png"] = write_figure(out / "d33_inefficiency.png", fig)
    files["svg"] = write_figure(out / "d33_inefficiency.svg", fig)
    files["report"] = write_text(out / "report.md",
                                 report(table, system_summary, "d33_inefficiency.png", seconds))
    files["provenance"] = write_json(
        out / "provenance.json",
        provenance(seed=int(table.seed.iloc[0]), cases=list(table.case.unique()),
                   schemes=list(table.scheme.unique()), seconds=seconds))
    return files


def run_table(cases=CASES, schemes=SCHEMES, seed: int = 0, out_dir=DEFAULT_OUT,
              progress: bool = True, assessment: str = "linear",
              system: SystemConfig | None = None, dso_model: str = "lindistflow"
              ) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Compute the table and write its files; returns the table and the written paths."""
    start = time.perf_counter()
    table = compute(cases, schemes, seed, progress, assessment, system, dso_model)
    seconds = time.perf_counter() - start
    summary = Scenario.from_case(cases[0], seed, system=system).system.summary()
    return table, write(table, out_dir, summary, seconds)
