"""Start-up stays light (issue 11): the command's usage and version load no solver, Hydra or
pandas; a truthful run and building every scheme load neither Pyomo (the clearing LPs are
assembled as arrays) nor the Mesa model nor matplotlib."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pyomo", "matplotlib", "mesa", "scipy.stats", "hydra", "pandas", "highspy", "scipy")


def loaded_after(code: str) -> set[str]:
    """The heavy modules (of :data:`HEAVY`) loaded by a fresh interpreter running ``code``."""
    probe = (f"{code}\nimport sys\n"
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout
    return set(out.split("\n")[-2].split()) if out.strip() else set()


def test_usage_and_version_load_nothing_heavy():
    for args in (["--help"], ["--version"]):
        code = f"from flexgame.experiments.cli import main\nmain({args!r})"
        assert loaded_after(code) == set(), args


def test_truthful_run_loads_no_pyomo_mesa_or_matplotlib(tmp_path):
    code = ("from flexgame.experiments.cli import main\n"
            f"main(['run', 'hydra.run.dir={tmp_path.as_posix()}/run'])")
    loaded = loaded_after(code)
    assert {"hydra", "pandas", "highspy"} <= loaded  # it did run
    assert not loaded & {"pyomo", "mesa", "matplotlib", "scipy.stats"}
    assert (tmp_path / "run" / "metrics.json").exists()


def test_building_every_scheme_loads_no_pyomo():
    code = ("from flexgame.experiments.scenario import Scenario\n"
            "from flexgame.markets.schemes import SCHEMES, ClearingConfig, Scheme\n"
            "s = Scenario.from_case('B', 0)\n"
            "for name in SCHEMES:\n"
            "    Scheme(s.system, s.bids, ClearingConfig(scheme=name)).clear()")
    assert not loaded_after(code) & {"pyomo", "scipy.stats"}
