"""The studies of D3.3 chapter 5 (non-firm connection agreements), as one command.

``flexgame envelopes`` (issue 15, item 5) computes, and writes into its output directory as
tables, figures (PNG and SVG) and ``report.md``:

1. the envelopes per user along the IEEE European LV feeder (reduced), fair, optimal and
   proportional fair, import and export, against the user's cable distance from the root
   (001 ch. 5's figures of envelopes along the feeder);
2. the guaranteed (fair) level against the share of users participating, over seeded random
   subsets of participants (the non-participants firm at their connection capacity);
3. the feeder types of a generated 49-feeder urban grid (:mod:`flexgame.markets.lv_grids`).

Every number comes from :mod:`flexgame.markets.envelopes` (robust LinDistFlow envelopes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flexgame.markets.envelopes import POLICIES, FirmUsersUnsafe, compute_envelopes
from flexgame.markets.lv_feeder import LVFeeder, ieee_european_lv
from flexgame.markets.lv_grids import GridConfig, classify, feeder_length_m, generate_grid

SHARES = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
"""Shares of users participating in the participation study (below about 0.7 the firm users
at their full connection capacity alone break the feeder's limits, so no envelope is safe)."""
SUBSETS = 5
"""Random subsets of participants per share."""


@dataclass
class EnvelopeStudy:
    """What :func:`run` computed: ``along`` (one row per user and policy: distance [m],
    import and export [kW]), ``participation`` (one row per share and subset: the fair
    import and export level [kW], or NaN when the firm users alone break a limit),
    ``types`` (one row per generated feeder: users, length [m], type, totals [kW]);
    ``settings``: :func:`run`'s arguments (seed, impedance and phase model), recorded in
    ``provenance.json``."""

    feeder: LVFeeder
    along: pd.DataFrame
    participation: pd.DataFrame
    types: pd.DataFrame
    settings: dict = field(default_factory=dict)


def along_feeder(lv: LVFeeder) -> pd.DataFrame:
    """The envelopes of every user under each policy, with its distance from the root."""
    rows = []
    for policy in POLICIES:
        env = compute_envelopes(lv, policy)
        for k, user in enumerate(env.users):
            rows.append(dict(policy=policy, user=env.names[k], distance_m=lv.distance_m[user],
                             import_kw=env.import_kw[k], export_kw=env.export_kw[k]))
    return pd.DataFrame(rows)


def participation(lv: LVFeeder, rng: np.random.Generator) -> pd.DataFrame:
    """The fair level per share of participating users (seeded random subsets)."""
    rows = []
    for share in SHARES:
        n = max(1, int(round(share * lv.n_users)))
        for subset in range(SUBSETS if n < lv.n_users else 1):
            users = np.sort(rng.choice(lv.n_users, n, replace=False))
            try:
                env = compute_envelopes(lv, "fair", participants=users)
                level = (float(env.import_kw[0]), float(env.export_kw[0]))
            except FirmUsersUnsafe:  # the firm users alone break a limit
                level = (np.nan, np.nan)
            rows.append(dict(share=share, subset=subset, participants=n,
                             fair_import_kw=level[0], fair_export_kw=level[1]))
    return pd.DataFrame(rows)


def feeder_types(seed: int, impedance_model: str) -> pd.DataFrame:
    """The types of the feeders of a generated grid."""
    rows = []
    for lv in generate_grid(seed, GridConfig(impedance_model=impedance_model)):
        c = classify(lv, details=True)
        rows.append(dict(feeder=lv.feeder.name, users=lv.n_users,
                         length_m=feeder_length_m(lv), type=c.type, fair_kw=c.fair_kw,
                         optimal_kw=c.optimal_kw, capacity_kw=c.capacity_kw))
    return pd.DataFrame(rows)


def run(impedance_model: str = "balanced", seed: int = 0,
        phase_model: str = "single_phase_equivalent") -> EnvelopeStudy:
    """The three studies (module docstring). The balanced model is the default here: with the
    single-phase equivalent (the library's conservative default) firm users at their full
    connection capacity alone break the feeder's limits unless every user participates, so
    the participation study would be empty. ``phase_model="three_phase"`` computes the IEEE
    feeder's studies (1 and 2) with the linearised three-phase unbalanced model
    (:mod:`flexgame.markets.lv_three_phase`; ``impedance_model`` then only sets the generated
    grid's model, which has no phase data)."""
    lv = ieee_european_lv(impedance_model, reduced=True, phase_model=phase_model)
    return EnvelopeStudy(lv, along_feeder(lv), participation(lv, np.random.default_rng(seed)),
                         feeder_types(seed, impedance_model),
                         {"seed": seed, "impedance_model": impedance_model,
                          "phase_model": phase_model})


def _figures(study: EnvelopeStudy) -> dict:
    import matplotlib.pyplot as plt

    figs = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, col, title in ((axes[0], "import_kw", "import"), (axes[1], "export_kw", "export")):
        for policy, marker in zip(POLICIES, ("o", "s", "^")):
            part = study.along[study.along.policy == policy].sort_values("distance_m")
            ax.plot(part.distance_m, part[col], marker=marker, ls="", ms=4, label=policy)
        ax.set_xlabel("cable distance from the transformer [m]")
        ax.set_ylabel(f"guaranteed {title} [kW]")
        ax.set_title(f"{title} envelope per user")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figs["envelopes_along_feeder"] = (fig, "each user's guaranteed import and export against "
                                      "its distance from the transformer (IEEE European LV "
                                      "feeder, reduced)")
    fig, ax = plt.subplots(figsize=(6, 4))
    mean = study.participation.groupby("share")[["fair_import_kw", "fair_export_kw"]].mean()
    ax.plot(mean.index * 100, mean.fair_import_kw, "o-", label="import")
    ax.plot(mean.index * 100, mean.fair_export_kw, "s-", label="export")
    ax.set_xlabel("users participating [%]")
    ax.set_ylabel("guaranteed (fair) level [kW]")
    ax.set_title("Guaranteed capacity against participation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figs["fair_level_vs_participation"] = (fig, f"the fair level, mean over {SUBSETS} random "
                                           "subsets of participants per share")
    fig, ax = plt.subplots(figsize=(5, 4))
    counts = study.types.type.value_counts().reindex([1, 2, 3], fill_value=0)
    bars = ax.bar(["1: fair = optimal\n= capacity", "2: equal totals", "3: differing totals"],
                  counts.to_numpy(), color=["tab:green", "tab:blue", "tab:orange"])
    ax.bar_label(bars)
    ax.set_ylabel("feeders [-]")
    ax.set_title("Feeder types of a generated 49-feeder grid")
    figs["feeder_types"] = (fig, "feeders of the generated urban grid per type")
    return figs


def write(study: EnvelopeStudy, out) -> Path:
    """Tables, figures, ``provenance.json`` and ``report.md`` of the study into ``out``;
    returns the report."""
    import matplotlib.pyplot as plt

    from flexgame.experiments.store import (
        provenance,
        write_csv,
        write_figure,
        write_json,
        write_text,
    )
    from flexgame.experiments.table import markdown_table

    out = Path(out)
    write_csv(out / "envelopes_along_feeder.csv", study.along)
    write_csv(out / "participation.csv", study.participation)
    write_csv(out / "feeder_types.csv", study.types)
    write_json(out / "provenance.json", provenance(**study.settings))
    captions = {}
    for name, (fig, caption) in _figures(study).items():
        for suffix in (".png", ".svg"):
            write_figure(out / f"{name}{suffix}", fig)
        plt.close(fig)
        captions[name] = caption
    lv = study.feeder
    far = lv.user_names[lv.far_end_user]
    totals = study.along.groupby("policy")[["import_kw", "export_kw"]].sum()
    far_rows = study.along[study.along.user == far].set_index("policy")
    policies = pd.DataFrame({
        "policy": POLICIES,
        "total import [kW]": [f"{totals.loc[p, 'import_kw']:.1f}" for p in POLICIES],
        "total export [kW]": [f"{totals.loc[p, 'export_kw']:.1f}" for p in POLICIES],
        f"far-end user ({far}) import / export [kW]": [
            f"{far_rows.loc[p, 'import_kw']:.2f} / {far_rows.loc[p, 'export_kw']:.2f}"
            for p in POLICIES]})
    level = study.participation.groupby("share").agg(
        runs=("subset", "size"), safe=("fair_import_kw", "count"),
        import_kw=("fair_import_kw", "mean"), export_kw=("fair_export_kw", "mean"))
    shares = pd.DataFrame({
        "share": [f"{share:.2f}" for share in level.index], "subsets": level.runs,
        "with a safe envelope": level.safe,
        "import [kW]": [f"{v:.2f}" for v in level.import_kw],
        "export [kW]": [f"{v:.2f}" for v in level.export_kw]})
    lines = ["# Operating envelopes of non-firm connections (D3.3 chapter 5)", "",
             f"Feeder: {lv!r}.", "", markdown_table(policies), "",
             "Guaranteed (fair) level against the share of users participating (firm users at "
             "their connection capacity; subsets where they alone break a limit have no safe "
             "envelope):", "", markdown_table(shares)]
    counts = study.types.type.value_counts().reindex([1, 2, 3], fill_value=0)
    lines += ["", f"Generated grid: feeder types 1/2/3 = {counts[1]}/{counts[2]}/{counts[3]}.",
              ""]
    for name, caption in captions.items():
        lines += [f"![{caption}]({name}.png)", "", f"*{caption}*", ""]
    return write_text(out / "report.md", "\n".join(lines))
