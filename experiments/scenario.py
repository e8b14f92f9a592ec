"""A scenario: the interconnected system and the bids of a D3.3 case, drawn from one seed.

:class:`Scenario` is what a market is cleared on and what a game is played on. Build it from
a D3.3 case in one call (``Scenario.from_case("B", seed=0)``: the system's TSO need points the
way the case says, ALEXANDER D3.3 §4.2) or from a run's settings
(:meth:`Scenario.from_settings`). All randomness comes from ``np.random.default_rng(seed)``:
the same settings and seed give the same scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets.bids import BidConfig, generate_bids, validate_bids
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.system import InterconnectedSystem, SystemConfig, build_system


@dataclass
class Scenario:
    """A system and a bid table (rows are bid ids).

    Attributes:
        system: the interconnected system in its base state.
        bids: the bid table (``flexgame.markets.bids.BID_COLUMNS``).
        bid_config: the settings the bids were drawn with (None for a hand-made table).
        seed: the seed they were drawn with (None for a hand-made table).
    """

    system: InterconnectedSystem
    bids: pd.DataFrame
    bid_config: BidConfig | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        validate_bids(self.bids)

    @classmethod
    def from_case(cls, case: str = "A", seed: int = 0, *, system: SystemConfig | None = None,
                  **bid_options) -> "Scenario":
        """The default system (or ``system``) with its TSO need in the case's direction, and
        the case's bids drawn with ``seed``; ``bid_options`` are fields of
        :class:`~flexgame.markets.bids.BidConfig` (``liquidity=0.5``,
        ``aggregation="random_pools"``, ...)."""
        return cls.from_settings(system or SystemConfig(), BidConfig(case=case, **bid_options),
                                 seed)

    @classmethod
    def from_settings(cls, system: SystemConfig, bids: BidConfig, seed: int) -> "Scenario":
        """Build the system (need in the direction of ``bids.case``) and draw the bids.

        Raises:
            FlexgameInputError: an invalid setting, naming it.
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise FlexgameInputError(f"seed={seed!r} must be an integer >= 0")
        bids.validate()
        built = build_system(system, direction=bids.direction)
        return cls(built, generate_bids(built, bids, np.random.default_rng(seed)), bids,
                   int(seed))

    @property
    def case(self) -> str | None:
        return self.bid_config.case if self.bid_config else None

    def __repr__(self) -> str:
        need = self.system.tso_need_mw
        origin = f"case {self.case}, seed {self.seed}, " if self.bid_config else ""
        return (f"Scenario({origin}{len(self.bids)} bids of {self.bids.fsp.nunique()} FSPs, "
                f"{len(self.system.feeders)} feeders, TSO need {abs(need):.2f} MW "
                f"{'up' if need >= 0 else 'down'})")
