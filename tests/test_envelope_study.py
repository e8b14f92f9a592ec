"""``flexgame envelopes`` (issue 15, item 5): D3.3 chapter 5's studies with their report."""

from __future__ import annotations

import json
import sys

import numpy as np

from flexgame.experiments.cli import main


def test_envelopes_command_writes_the_studies(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["flexgame", "envelopes", "--out", str(tmp_path)])
    main()
    assert "report.md" in capsys.readouterr().out
    for name in ("envelopes_along_feeder.csv", "participation.csv", "feeder_types.csv",
                 "envelopes_along_feeder.png", "fair_level_vs_participation.png",
                 "feeder_types.png", "report.md", "provenance.json"):
        assert (tmp_path / name).is_file(), name
    settings = json.loads((tmp_path / "provenance.json").read_text())
    assert (settings["seed"], settings["impedance_model"], settings["phase_model"]) == (
        0, "balanced", "single_phase_equivalent")     # the command's defaults
    import pandas as pd

    level = pd.read_csv(tmp_path / "participation.csv").groupby("share").fair_import_kw.mean()
    # fewer participants (more firm users at full capacity): the guaranteed level falls
    safe = level.dropna()
    assert len(safe) >= 3 and np.all(np.diff(safe.to_numpy()) >= -1e-9)
    text = (tmp_path / "report.md").read_text()
    assert "far-end user" in text and "feeder types 1/2/3" in text


def test_three_phase_studies_of_the_ieee_feeder():
    """``--phase-model three_phase``: the IEEE feeder's studies use the three-phase model
    (its repr says so); the fair level gives both directions the same kW there (the common
    level binds, import and export are coupled); with fewer participants the common level
    (the smaller direction) is never above full participation's: making a participant firm
    widens its box, so every robust row only tightens."""
    from flexgame.experiments.envelope_study import along_feeder, participation
    from flexgame.markets.lv_feeder import ieee_european_lv

    lv = ieee_european_lv(reduced=True, phase_model="three_phase")
    assert "three-phase" in repr(lv)
    fair = along_feeder(lv).query("policy == 'fair'")
    assert np.allclose(fair.import_kw, fair.export_kw) and (fair.import_kw > 0).all()
    level = participation(lv, np.random.default_rng(0))
    common = level[["fair_import_kw", "fair_export_kw"]].min(axis=1)
    full = common[level.share == 1.0].iloc[0]
    assert (common.dropna() <= full + 1e-9).all() and common.notna().sum() > 1
