"""Shared fixtures: the default interconnected system is built once per test session.

The systems are treated as read-only by every test; a test that needs a modified system builds
its own with :func:`markets.system.build_system`.
"""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.system import InterconnectedSystem, build_system


@pytest.fixture(scope="session")
def system() -> InterconnectedSystem:
    """The default system (case14 + case69 at bus 14 + case141 at bus 9), upward TSO need."""
    return build_system()


@pytest.fixture(scope="session")
def system_down() -> InterconnectedSystem:
    """The default system with a downward TSO need."""
    return build_system(direction="down")


@pytest.fixture(scope="session")
def bids_a(system):
    """Truthful case-A bids on the default system, seed 0, full liquidity."""
    return generate_bids(system, BidConfig(case="A"), np.random.default_rng(0))
