"""``flexgame envelopes`` (issue 15, item 5): D3.3 chapter 5's studies with their report."""

from __future__ import annotations

import sys

import numpy as np

from flexgame.experiments.cli import main


def test_envelopes_command_writes_the_studies(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["flexgame", "envelopes", "--out", str(tmp_path)])
    main()
    assert "report.md" in capsys.readouterr().out
    for name in ("envelopes_along_feeder.csv", "participation.csv", "feeder_types.csv",
                 "envelopes_along_feeder.png", "fair_level_vs_participation.png",
                 "feeder_types.png", "report.md"):
        assert (tmp_path / name).is_file(), name
    import pandas as pd

    level = pd.read_csv(tmp_path / "participation.csv").groupby("share").fair_import_kw.mean()
    # fewer participants (more firm users at full capacity): the guaranteed level falls
    safe = level.dropna()
    assert len(safe) >= 3 and np.all(np.diff(safe.to_numpy()) >= -1e-9)
    text = (tmp_path / "report.md").read_text()
    assert "far-end user" in text and "feeder types 1/2/3" in text
