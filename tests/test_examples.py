"""The examples run as a user would run them, and stay short."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _code_lines(path: Path) -> int:
    """Lines of user code: no blank lines, comments or the module docstring."""
    tree = ast.parse(path.read_text())
    doc = tree.body[0] if tree.body and isinstance(tree.body[0], ast.Expr) else None
    skip = set(range(doc.lineno, doc.end_lineno + 1)) if doc else set()
    return sum(1 for i, line in enumerate(path.read_text().splitlines(), 1)
               if i not in skip and line.strip() and not line.strip().startswith("#"))


def test_notebook_tour_runs_with_one_import_in_ten_lines(tmp_path):
    script = EXAMPLES / "notebook_tour.py"
    imports = [n for n in ast.walk(ast.parse(script.read_text()))
               if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [a.name for n in imports for a in n.names if a.name != "sys"] == ["flexgame"]
    assert _code_lines(script) <= 10
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "tour.png")],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.startswith("Scenario(case B, seed 0")
    assert "Clearing(common" in out and "Clearing(ml03" in out and "StrategicOutcome(" in out
    assert (tmp_path / "tour.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
