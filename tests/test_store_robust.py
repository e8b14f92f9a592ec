"""Output files follow the umask like a plain open(), and provenance reads the source
checkout's git state without taking its index lock."""

from __future__ import annotations

import os
import subprocess

import pytest

from flexgame.experiments import store


@pytest.fixture
def umask():
    """Set a umask for the test and restore the previous one."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(umask, tmp_path, mask, mode):
    umask(mask)
    path = store.write_text(tmp_path / "a.txt", "x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "plain.txt"]


def test_git_revision_takes_no_optional_locks(monkeypatch):
    calls = []
    real = subprocess.run

    def run(args, **kwargs):
        calls.append(args)
        return real(args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    store.git_revision()
    assert calls and all(args[:2] == ["git", "--no-optional-locks"] for args in calls)
