"""The package: one importable namespace ``flexgame`` with a version, nothing else installed at
the top level, and no module importing the project's folders by their bare names."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import flexgame

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("agents", "games", "markets", "experiments", "conf")


def test_version_is_the_distribution_version():
    assert flexgame.__version__ == metadata.version("flexgame")
    out = subprocess.run([sys.executable, "-m", "flexgame.experiments.cli", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"flexgame {flexgame.__version__}"


def test_only_flexgame_is_installed_at_the_top_level():
    """The installed distribution (found where ``flexgame`` was imported from, not an
    ``egg-info`` of the checkout) holds one top-level package."""
    package = Path(flexgame.__file__).resolve().parent
    if package == ROOT:  # an editable install: a finder maps flexgame to the checkout
        dist = metadata.distribution("flexgame")
        assert dist.read_text("top_level.txt").split() == ["flexgame"]
        return
    (dist,) = metadata.distributions(name="flexgame", path=[str(package.parent)])
    assert dist.read_text("top_level.txt").split() == ["flexgame"]
    tops = {Path(str(f)).parts[0] for f in dist.files}
    assert not tops & set(SUBPACKAGES), tops
    assert "flexgame" in tops


def test_no_module_imports_a_subpackage_by_its_bare_name():
    """``import markets`` works from a checkout (the repository root is on sys.path) but not
    from an install; every import must go through ``flexgame``."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in SUBPACKAGES]
    assert offenders == []
