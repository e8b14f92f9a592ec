"""`flexgame run` refuses an empty output directory and, in a reused one, leaves no file of
an earlier run beside its own."""

from __future__ import annotations

import sys

import pytest

from flexgame.experiments import run
from flexgame.experiments.cli import main


def _flexgame(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["flexgame", *args])
    main()


@pytest.mark.parametrize("value", ["", "' '"])
def test_an_empty_run_dir_is_refused(monkeypatch, capsys, tmp_path, value):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        _flexgame(monkeypatch, "run", f"hydra.run.dir={value}")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hydra.run.dir" in err and "Traceback" not in err
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "bids.csv").exists()


def test_a_truthful_run_removes_the_strategic_files_of_an_earlier_run(monkeypatch, tmp_path):
    earlier = ["rounds.csv", "operators.csv", "strategies.csv", "equilibria.csv",
               "distribution.csv", "error.txt"]
    for name in [*earlier, "metrics.json"]:
        (tmp_path / name).write_text("from an earlier run\n")
    (tmp_path / "notes.txt").write_text("the user's\n")
    _flexgame(monkeypatch, "run", f"hydra.run.dir={tmp_path}")
    for name in earlier:
        assert not (tmp_path / name).exists(), name
    assert (tmp_path / "metrics.json").read_text() != "from an earlier run\n"
    assert (tmp_path / "notes.txt").exists()  # not a run's file: kept
    written = {p.name for p in tmp_path.iterdir() if p.is_file()}
    assert written - {"notes.txt", "flexgame.log"} <= set(run.OUTPUTS)
