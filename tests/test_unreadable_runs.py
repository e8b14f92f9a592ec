"""A run counts only when its files can be trusted: ``metrics.json`` parses as a JSON object
and ``config.yaml`` parses (safely) and matches. A sweep re-runs any other job; the report
lists such runs (with the failed ones) and reports the rest."""

from __future__ import annotations

import shutil

import pytest

from flexgame.experiments import sweep
from flexgame.experiments.config import canonical, load_config, settings
from flexgame.experiments.report import make_report
from flexgame.experiments.run import run_experiment

OVERRIDES = ["scheme=common"]


def _truncate(text: str) -> str:
    return text[: len(text) // 2]


BROKEN = {
    "truncated_metrics": (sweep.METRICS, _truncate),
    "metrics_not_an_object": (sweep.METRICS, lambda text: "[1, 2]\n"),
    "empty_metrics": (sweep.METRICS, lambda text: ""),
    "missing_config": (sweep.CONFIG, None),
    "config_not_a_mapping": (sweep.CONFIG, lambda text: "- scheme\n- case\n"),
    "config_with_a_python_tag": (sweep.CONFIG, lambda text: text.replace(
        "seed: 0", "seed: !!python/object/apply:os.system ['touch {pwned}']")),
    "bad_yaml": (sweep.CONFIG, lambda text: text + "\n  : : [\n"),
}
"""Ways a run directory can be damaged: (file, new text from the old; None: deleted)."""


def damage(run_dir, name: str) -> None:
    """Apply :data:`BROKEN`'s ``name`` to a copy of a finished run."""
    file, edit = BROKEN[name]
    path = run_dir / file
    if edit is None:
        path.unlink()
    else:
        pwned = run_dir.parent / "PWNED"
        path.write_text(edit(path.read_text()).replace("{pwned}", str(pwned)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished truthful run and its job config (canonical form)."""
    root = tmp_path_factory.mktemp("finished")
    cfg = load_config(OVERRIDES)
    run_experiment(cfg, root / "good")
    return root / "good", canonical(settings(cfg, check_overrides=False))


@pytest.fixture
def damaged(finished, tmp_path):
    """``damaged(name)``: a copy of the finished run, damaged as :data:`BROKEN` says."""
    good, _ = finished

    def make(name: str):
        run_dir = tmp_path / name
        shutil.copytree(good, run_dir)
        damage(run_dir, name)
        return run_dir

    return make


def test_a_finished_run_is_complete(finished):
    good, config = finished
    assert sweep.is_complete(good, config)
    assert not sweep.is_complete(good, {**config, "seed": 1})


@pytest.mark.parametrize("name", BROKEN)
def test_a_damaged_run_is_not_complete(damaged, finished, tmp_path, name):
    run_dir = damaged(name)
    assert not sweep.is_complete(run_dir, finished[1])
    assert not (tmp_path / "PWNED").exists()  # a foreign tag is never constructed


@pytest.mark.parametrize("name", ["truncated_metrics", "metrics_not_an_object"])
def test_a_sweep_job_reruns_a_damaged_run(damaged, name):
    run_dir = damaged(name)
    assert sweep.run_job(load_config(OVERRIDES), run_dir) == "done"
    assert sweep.read_metrics(run_dir)["total_cost"] > 0


def test_report_lists_damaged_runs_and_reports_the_others(finished, tmp_path):
    good, _ = finished
    shutil.copytree(good, tmp_path / "good")
    for name in BROKEN:
        shutil.copytree(good, tmp_path / name)
        damage(tmp_path / name, name)
    (tmp_path / "killed").mkdir()  # a run killed after writing its config
    shutil.copy(good / sweep.CONFIG, tmp_path / "killed" / sweep.CONFIG)
    report = make_report(tmp_path)
    assert report.runs == 1 and report.failed == len(BROKEN) + 1
    text = report.report.read_text()
    section = text[text.index("## Failed or unreadable runs"):text.index("## Files")]
    for name in [*BROKEN, "killed"]:
        assert f"`{name}`" in section
    assert "`good`" not in section
    assert "metrics.json" in section and "config.yaml" in section
    assert not (tmp_path / "PWNED").exists()
