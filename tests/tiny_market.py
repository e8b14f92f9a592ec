"""A tiny, hand-checkable flexibility market for the strategic tests, and brute-force game
tools (full payoff tables, pure Nash equilibria, regrets, best responses read off the table)
to check games/ and agents/ against.

The system (MATPOWER files written into a temporary folder):

* transmission: a 3-bus triangle, bus 1 the slack with the only generator, loads 40 MW at bus
  2 and 60 MW at bus 3, equal reactances; ratings 100 x base flows (floor 10 MW): the
  transmission grid never binds;
* one radial feeder ``feeder`` (buses 1 - 2 - 3, root 1 of type 3) coupled at transmission
  bus 3, loads 1 MW at bus 2 and 2 MW at bus 3, no reactive load, no DG, r = x = 0.001 p.u.
  on 10 MVA; base flows 3 MW on 1-2 and 2 MW on 2-3;
* uncongested variant: feeder ratings 100 x base flows (nothing binds);
* congested variant: branch 2-3 tightened to |P| <= 1.5 MW (active-power limits, the
  default): the DSO needs 0.5 MW of upward
  flexibility at feeder bus 3 (below 2-3), and only a bid at bus 3 can provide it;
* the TSO need (upward) is a parameter.
"""

from __future__ import annotations

from pathlib import Path

from flexgame.games.normal_form import (
    PURE_TOLERANCE_EUR, NormalForm, payoff_table, pure_equilibria, regrets,
)
from flexgame.games.strategies import Strategy
from flexgame.markets.bids import bid_table, distribution_bid
from flexgame.markets.bids import transmission_bid as tx_bid
from flexgame.markets.system import FeederSpec, InterconnectedSystem, SystemConfig, build_system

# bid rows and tables: the markets helpers, under the names the strategic tests use
__all__ = ["bid_table", "tx_bid", "feeder_bid", "tiny_system", "write_cases", "payoff_table",
           "regrets", "pure_equilibria", "brute_best_response", "brute_round", "FEEDER",
           "COUPLING_BUS", "P_LIMIT_23", "BASE_FLOW_23", "TOL"]

_GEN_TAIL = "\t0" * 11  # Pc1 Pc2 Qc1min Qc1max Qc2min Qc2max ramp_agc ramp_10 ramp_30 ramp_q apf
_BRANCH = "\t{f}\t{t}\t{r}\t{x}\t0\t0\t0\t0\t0\t0\t1\t-360\t360;"

TX_CASE = "\n".join([
    "function mpc = tiny_tx",
    "mpc.version = '2';",
    "mpc.baseMVA = 100;",
    "%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin",
    "mpc.bus = [",
    "\t1\t3\t0\t0\t0\t0\t1\t1\t0\t110\t1\t1.1\t0.9;",
    "\t2\t1\t40\t0\t0\t0\t1\t1\t0\t110\t1\t1.1\t0.9;",
    "\t3\t1\t60\t0\t0\t0\t1\t1\t0\t110\t1\t1.1\t0.9;",
    "];",
    "%% bus Pg Qg Qmax Qmin Vg mBase status Pmax Pmin ...",
    "mpc.gen = [",
    "\t1\t100\t0\t100\t-100\t1\t100\t1\t200\t0" + _GEN_TAIL + ";",
    "];",
    "%% fbus tbus r x b rateA rateB rateC ratio angle status angmin angmax",
    "mpc.branch = [",
    _BRANCH.format(f=1, t=2, r=0.01, x=0.1),
    _BRANCH.format(f=1, t=3, r=0.01, x=0.1),
    _BRANCH.format(f=2, t=3, r=0.01, x=0.1),
    "];",
    "",
])

FEEDER_CASE = "\n".join([
    "function mpc = tiny_feeder",
    "mpc.version = '2';",
    "mpc.baseMVA = 10;",
    "%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin",
    "mpc.bus = [",
    "\t1\t3\t0\t0\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;",
    "\t2\t1\t1\t0\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;",
    "\t3\t1\t2\t0\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;",
    "];",
    "mpc.gen = [",
    "\t1\t0\t0\t10\t-10\t1\t100\t1\t10\t0" + _GEN_TAIL + ";",
    "];",
    "mpc.branch = [",
    _BRANCH.format(f=1, t=2, r=0.001, x=0.001),
    _BRANCH.format(f=2, t=3, r=0.001, x=0.001),
    "];",
    "",
])

FEEDER = "feeder"
COUPLING_BUS = 3
P_LIMIT_23 = 1.5  # MW rating (active-power limit) of feeder branch 2-3 in the congested variant
BASE_FLOW_23 = 2.0  # MW


def write_cases(folder: Path) -> tuple[Path, Path]:
    """Write the transmission and feeder case files; return their paths."""
    folder = Path(folder)
    tx_path, feeder_path = folder / "tiny_tx.m", folder / "tiny_feeder.m"
    tx_path.write_text(TX_CASE)
    feeder_path.write_text(FEEDER_CASE)
    return tx_path, feeder_path


def tiny_system(folder: Path, need_mw: float, congested: bool = False) -> InterconnectedSystem:
    """The tiny system with an upward TSO need of ``need_mw``."""
    tx_path, feeder_path = write_cases(folder)
    extra = {}
    if congested:
        extra = dict(congested_branches={FEEDER: ["2-3"]},
                     congestion_factor=P_LIMIT_23 / BASE_FLOW_23)
    config = SystemConfig(
        transmission_case=str(tx_path),
        feeders=[FeederSpec(str(feeder_path), COUPLING_BUS, name=FEEDER)],
        dg_share=0.0,
        congested_branches_per_feeder=0,
        imbalance_mw=need_mw,
        tx_rating_factor=100.0,
        feeder_rating_factor=100.0,
        **extra,
    )
    return build_system(config, direction="up")


def feeder_bid(fsp: str, bus: int, mw: float, cost: float, direction: str = "up") -> dict:
    """A truthful distribution bid at ``bus`` of the tiny feeder (rows are written before the
    system is built: its coupling bus is known)."""
    return {**distribution_bid(fsp, FEEDER, bus, mw, cost, direction), "tx_bus": COUPLING_BUS}


# --- brute force ---------------------------------------------------------------------------
# The whole game's payoff table, its pure equilibria and regrets come from
# flexgame.games.normal_form (re-exported here); the best responses below read the table with
# the tie rule of games.best_response, an independent oracle for it.

TOL = PURE_TOLERANCE_EUR  # EUR; the tie tolerance of games.best_response


def brute_best_response(game: NormalForm, profile: dict[str, Strategy], player: str,
                        tol: float = TOL) -> Strategy:
    """Best response of ``player`` read off the payoff table (as
    :mod:`flexgame.games.best_response`): ties keep the current strategy, then the lowest."""
    dev = game.deviation_payoffs(profile, player)
    best = max(dev.values())
    if dev[profile[player]] >= best - tol:
        return profile[player]
    return min(s for s, v in dev.items() if v >= best - tol)


def brute_round(game: NormalForm, profile: dict[str, Strategy], order: list[str],
                mode: str) -> dict[str, Strategy]:
    """One IBR round computed from the payoff table: Jacobi = everyone best-responds to
    ``profile``; Gauss-Seidel = players in ``order`` each best-respond to the profile with the
    earlier players' updates applied."""
    new = dict(profile)
    for f in order:
        basis = dict(new) if mode == "gauss_seidel" else dict(profile)
        basis[f] = profile[f]
        new[f] = brute_best_response(game, basis, f)
    return new
