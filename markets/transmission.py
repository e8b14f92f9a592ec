"""DC transmission network: PTDF matrix, line flows and line limits.

Sign conventions: a bus injection is positive when power enters the network (generation
minus load, MW); a line flow is positive from its ``from`` bus to its ``to`` bus (MW).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from flexgame.markets.case_loading import MatpowerCase
from flexgame.markets.errors import FlexgameInputError


def dc_susceptances(case: MatpowerCase) -> np.ndarray:
    """Series susceptance of each line in the DC model, b = 1 / (x * tap) [p.u.]."""
    tap = case.branch.TAP.to_numpy().copy()
    tap[tap == 0] = 1.0
    x = case.branch.BR_X.to_numpy()
    if np.any(x == 0):
        raise FlexgameInputError(f"case {case.source}: a branch has zero reactance BR_X")
    return 1.0 / (x * tap)


def incidence_matrix(case: MatpowerCase) -> sp.csr_matrix:
    """Line-bus incidence C (lines x buses): +1 at the from bus, -1 at the to bus."""
    index = {b: i for i, b in enumerate(case.bus.BUS_I)}
    f = case.branch.F_BUS.map(index).to_numpy()
    t = case.branch.T_BUS.map(index).to_numpy()
    m = len(f)
    rows = np.r_[np.arange(m), np.arange(m)]
    data = np.r_[np.ones(m), -np.ones(m)]
    return sp.csr_matrix((data, (rows, np.r_[f, t])), shape=(m, len(index)))


def ptdf_matrix(case: MatpowerCase) -> np.ndarray:
    """Power transfer distribution factors (lines x buses) with the case's reference bus as
    slack: flow = PTDF @ injection, for injections balanced at the slack.

    Built from the DC susceptance matrix B = C^T diag(b) C with the slack row/column removed
    (Wood & Wollenberg, Power Generation, Operation and Control, ch. 7).
    """
    b = dc_susceptances(case)
    c = incidence_matrix(case)
    bf = sp.diags(b) @ c
    bbus = (c.T @ bf).tocsc()
    slack = int(np.flatnonzero(case.bus.BUS_I.to_numpy() == case.reference_bus)[0])
    keep = np.array([i for i in range(bbus.shape[0]) if i != slack])
    reduced = bbus[keep][:, keep].tocsc()
    ptdf = np.zeros(c.shape)
    ptdf[:, keep] = spla.splu(reduced).solve(bf[:, keep].toarray().T).T
    return ptdf


@dataclass(frozen=True)
class TransmissionNetwork:
    """The DC transmission grid of a MATPOWER case.

    Attributes:
        case: the loaded case.
        buses: external bus numbers, in PTDF column order.
        ptdf: lines x buses [MW flow per MW injected at the bus, withdrawn at the slack].
        rating_mw: line limits [MW] (|flow| <= rating).
    """

    case: MatpowerCase
    buses: np.ndarray
    ptdf: np.ndarray
    rating_mw: np.ndarray

    def __repr__(self) -> str:
        return (f"TransmissionNetwork({self.case.name}: {len(self.buses)} buses, {self.n_lines} "
                f"lines, slack bus {self.case.reference_bus}, ratings "
                f"{self.rating_mw.min():.1f}-{self.rating_mw.max():.1f} MW)")

    @property
    def n_lines(self) -> int:
        return self.ptdf.shape[0]

    def bus_index(self, bus: int) -> int:
        """Position of external bus number ``bus`` (PTDF column)."""
        hits = np.flatnonzero(self.buses == bus)
        if len(hits) == 0:
            raise FlexgameInputError(
                f"transmission bus {bus} does not exist in {self.case.name}; "
                f"buses are {self.buses.min()}..{self.buses.max()}"
            )
        return int(hits[0])

    def line_names(self) -> list[str]:
        br = self.case.branch
        return [f"{f}-{t}" for f, t in zip(br.F_BUS, br.T_BUS)]

    def flows(self, injection_mw: np.ndarray) -> np.ndarray:
        """Line flows [MW] for bus injections [MW]; any imbalance is taken by the slack."""
        return self.ptdf @ injection_mw


def base_injections(case: MatpowerCase) -> np.ndarray:
    """Bus injections of the case's own dispatch [MW]: PG - PD, slack balancing the DC
    model (losses ignored)."""
    buses = case.bus.BUS_I.to_numpy()
    inj = -case.bus.PD.to_numpy().copy()
    for bus, pg in zip(case.gen.GEN_BUS, case.gen.PG):
        inj[np.flatnonzero(buses == bus)[0]] += pg
    slack = np.flatnonzero(buses == case.reference_bus)[0]
    inj[slack] -= inj.sum()
    return inj


def build_transmission(case: MatpowerCase, rating_factor: float = 1.5,
                       min_rating_mw: float = 10.0,
                       ratings_mw: dict[str, float] | None = None) -> TransmissionNetwork:
    """Transmission network with line ratings set to ``rating_factor`` x |base-case DC flow|
    (floored at ``min_rating_mw``), since case14 carries no ratings; case ratings (RATE_A > 0)
    are used where present; ``ratings_mw`` overrides single lines by name ``"from-to"`` (parallel
    circuits, as in case118, share a name: the rating applies to each of them).
    """
    if rating_factor <= 0:
        raise FlexgameInputError(f"rating_factor={rating_factor} must be > 0")
    if min_rating_mw < 0:
        raise FlexgameInputError(f"min_rating_mw={min_rating_mw} must be >= 0")
    ptdf = ptdf_matrix(case)
    base_flow = ptdf @ base_injections(case)
    rating = np.maximum(rating_factor * np.abs(base_flow), min_rating_mw)
    rate_a = case.branch.RATE_A.to_numpy()
    rating = np.where(rate_a > 0, rate_a, rating)
    net = TransmissionNetwork(case, case.bus.BUS_I.to_numpy(), ptdf, rating)
    names = net.line_names()
    for name, value in (ratings_mw or {}).items():
        if name not in names:
            raise FlexgameInputError(
                f"transmission line {name!r} does not exist; lines are {', '.join(names)}"
            )
        if value <= 0:
            raise FlexgameInputError(f"rating of line {name!r} = {value} must be > 0 MW")
        rating[[k for k, n in enumerate(names) if n == name]] = value
    return net
