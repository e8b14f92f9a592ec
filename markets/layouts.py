"""The TSO-DSO coordination schemes as data: each one a declared sequence of stages
(ALEXANDER D3.3 ch. 4).

A stage is one step of a scheme's pipeline: a market cleared by one operator (or one market
per feeder, each by its DSO), declared by which bids it may accept, which grid constraints it
clears against and whether the feeder's interface flow is held; or bid aggregation's
residual-supply stage. :class:`flexgame.markets.schemes.Scheme` builds every stage once and
clears them in order; each stage clears against the grid state and the bid quantities the
earlier ones leave (uncleared distribution bids are forwarded). Adding a scheme means adding
one :class:`SchemeLayout` to :data:`SCHEMES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from flexgame.markets.errors import FlexgameInputError


class Offers(Enum):
    """Which bids a stage's market may accept."""

    ALL = "all bids"
    TRANSMISSION = "transmission bids"
    OWN_FEEDER = "the feeder's own bids"


class Grid(Enum):
    """Whose LinDistFlow constraints a stage's market includes."""

    NONE = "no feeder"
    ALL_FEEDERS = "all feeders"
    OWN_FEEDER = "its own feeder"


class Interface(Enum):
    """When a feeder market holds its interface flow (its net activation is held at 0, so it
    does not change what the feeder draws from the transmission grid)."""

    FREE = "never"
    HELD = "always"
    HELD_IF_FIXED = "with interface=fixed"


@dataclass(frozen=True)
class Stage:
    """One step of a scheme.

    Attributes:
        name: layer name; a stage per feeder names its layers ``<name>:<feeder>``.
        operator: ``joint``, ``TSO`` or ``DSO``; a stage per feeder is cleared by
            ``DSO:<feeder>``.
        offers: which bids its market may accept.
        balance: it meets the TSO need (balance row).
        ptdf: it respects the transmission line limits (PTDF).
        grid: whose LinDistFlow constraints (feeder voltage and line limits, and the
            interface limit of a feeder that has one) it respects.
        interface: when a feeder market holds its interface flow.
        per_feeder: one market per feeder (in the system's feeder order) instead of one.
        prequalified: the forwarded distribution bids are capped by prequalification at the
            state before this stage (ALEXANDER D3.3 §4.1.1, §4.3.4, §4.3.5).
        residual_supply: bid aggregation's stage (D3.3 §3.4): per feeder, the market of the
            other fields is solved for every interface-flow step, and a MILP picks one step
            per feeder together with the transmission bids against the TSO need and the PTDF
            limits (:mod:`flexgame.markets.bid_aggregation`).
        dso_blocking: after the stage's market clears, the DSOs block the activated bid that
            contributes most to the worst feeder violation and the market clears again, until
            safe or nothing is left to block (FLEXGRID D5.1 §4.4,
            :mod:`flexgame.markets.dso_blocking`).
        idlfm: before its DSO markets clear (each with its interface held), the TSO and the
            DSOs agree on the interface flows by ADMM, exchanging only interface prices and
            flows; the DSO markets then clear at the agreed flows (FLEXGRID D5.1 §2.4
            I-DLFM, :mod:`flexgame.markets.idlfm`).
    """

    name: str
    operator: str
    offers: Offers
    balance: bool = False
    ptdf: bool = False
    grid: Grid = Grid.NONE
    interface: Interface = Interface.FREE
    per_feeder: bool = False
    prequalified: bool = False
    residual_supply: bool = False
    dso_blocking: bool = False
    idlfm: bool = False

    def __post_init__(self) -> None:
        own = self.offers is Offers.OWN_FEEDER or self.grid is Grid.OWN_FEEDER
        if (own or self.interface is not Interface.FREE or self.residual_supply) \
                and not self.per_feeder:
            raise FlexgameInputError(f"stage {self.name!r}: a feeder's own bids, grid, "
                                     "interface or residual supply need per_feeder=True")
        if self.per_feeder and self.operator != "DSO":
            raise FlexgameInputError(f"stage {self.name!r}: a market per feeder is cleared by "
                                     f"its DSO, not {self.operator!r}")
        if self.idlfm and self.interface is not Interface.HELD:
            raise FlexgameInputError(f"stage {self.name!r}: I-DLFM's DSO markets clear at the "
                                     "agreed interface flows: they need interface=HELD")

    @property
    def options(self) -> tuple[str, ...]:
        """The clearing options (:class:`flexgame.markets.schemes.ClearingConfig` fields)
        that change this stage."""
        out = ()
        if self.interface is Interface.HELD_IF_FIXED:
            out += ("interface", "dso_model")
        if self.prequalified:
            out += ("prequalification", "envelope_weighting")
        if self.residual_supply:
            out += ("delta_mw",)
        if self.idlfm:
            out += ("rho", "tolerance_mw", "max_iterations")
        return out


@dataclass(frozen=True)
class SchemeLayout:
    """A coordination scheme: its stages in clearing order.

    Attributes:
        name: the scheme's name.
        description: what it does, in one line.
        stages: its stages in clearing order.
    """

    name: str
    description: str
    stages: tuple[Stage, ...]

    @property
    def options(self) -> tuple[str, ...]:
        """The clearing options this scheme has, from its stages."""
        return tuple(dict.fromkeys(o for s in self.stages for o in s.options))


def _tso(offers: Offers = Offers.ALL, **declared) -> Stage:
    """The TSO market: the TSO need against the transmission line limits."""
    return Stage("tso", "TSO", offers, balance=True, ptdf=True, **declared)


def _dso(interface: Interface, name: str = "dso", **declared) -> Stage:
    """One market per feeder, cleared by its DSO from its own bids for its own limits."""
    return Stage(name, "DSO", Offers.OWN_FEEDER, grid=Grid.OWN_FEEDER, interface=interface,
                 per_feeder=True, **declared)


SCHEMES: dict[str, SchemeLayout] = {layout.name: layout for layout in (
    SchemeLayout("common", "one market of the TSO and DSOs: all bids, all limits", (
        Stage("common", "joint", Offers.ALL, balance=True, ptdf=True, grid=Grid.ALL_FEEDERS),
    )),
    SchemeLayout("fragmented", "DSO markets first, then a TSO market of transmission bids", (
        _dso(Interface.HELD_IF_FIXED),
        _tso(Offers.TRANSMISSION),
    )),
    SchemeLayout("ml01", "DSO markets first; uncleared bids forwarded to a TSO market blind "
                         "to the feeders", (
        _dso(Interface.HELD_IF_FIXED),
        _tso(),
    )),
    SchemeLayout("ml02", "as ml01, then corrective DSO markets with the interface held", (
        _dso(Interface.HELD_IF_FIXED),
        _tso(),
        _dso(Interface.HELD, name="corrective"),
    )),
    SchemeLayout("ml03", "as ml01, the forwarded bids prequalified by the DSOs", (
        _dso(Interface.HELD_IF_FIXED),
        _tso(prequalified=True),
    )),
    SchemeLayout("ml04", "as ml01, the TSO market sees the feeders' limits", (
        _dso(Interface.HELD_IF_FIXED),
        _tso(grid=Grid.ALL_FEEDERS),
    )),
    SchemeLayout("ml05", "TSO market first, blind to the feeders; then DSO markets with the "
                         "interface held", (
        _tso(),
        _dso(Interface.HELD),
    )),
    SchemeLayout("ml06", "as ml05, the distribution bids prequalified by the DSOs first", (
        _tso(prequalified=True),
        _dso(Interface.HELD),
    )),
    SchemeLayout("bid_aggregation", "DSOs offer residual supply functions of their feeders; "
                                    "then the TSO market of transmission bids", (
        _dso(Interface.HELD, name="rsf", residual_supply=True),
        _tso(Offers.TRANSMISSION),
    )),
    SchemeLayout("dso_blocking", "TSO market of all bids, blind to the feeders; the DSOs then "
                                 "block the bids that violate their limits, one at a time, "
                                 "and the TSO market clears again (FLEXGRID D5.1 §4.4)", (
        _tso(dso_blocking=True),
    )),
    SchemeLayout("idlfm", "TSO and DSOs agree on the interface flows by exchanging only "
                          "interface prices and flows (ADMM); the DSO markets clear at the "
                          "agreed flows, then the TSO market of transmission bids (FLEXGRID "
                          "D5.1 §2.4, I-DLFM)", (
        _dso(Interface.HELD, idlfm=True),
        _tso(Offers.TRANSMISSION),
    )),
)}
"""Every coordination scheme by name, in the order of ALEXANDER D3.3's tables, then FLEXGRID
D5.1's DSO blocking after clearing and its interactive market (I-DLFM)."""
