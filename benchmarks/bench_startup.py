"""Start-up, model-building and bid-aggregation benchmarks (issue 11, items 4 and 5; run by
hand, not by CI).

    python benchmarks/bench_startup.py [--repeats 3] [--clearings 60] [--skip cli build ba]

Prints four tables (times are medians over the repeats; ``cpu_s`` is the child's user + sys
CPU time, which a busy shared machine inflates less than the wall time):

1. ``cli``: wall time of the ``flexgame`` command in a fresh process: ``--help``,
   ``--version``, a truthful ``flexgame run`` (default config, into a temporary directory)
   and the D3.3 table (``flexgame table --no-progress``, into a temporary directory);
2. ``build``: per scheme (case B), building the scheme, of which its LPs assembled as arrays
   (:mod:`flexgame.markets.lp_builder`), against building the same LPs from their Pyomo
   formulation with Pyomo's standard-form compiler (what it did before issue 11; the
   scheme's build then is estimated as ``before_ms``), and one clearing of the built scheme;
3. ``table``: the D3.3 table computed in this process (``experiments.table.compute``: build,
   clear and assess every scheme on cases A-D);
4. ``bid_aggregation``: clearings per second of a freshly built bid_aggregation scheme
   whose FSPs change their price one at a time (a random FSP, a random markup of a 15-point
   grid in [0, 1.4]), with the residual-supply-function cache (the default) and without it
   (``cache_size = 0``: every feeder's RSF recomputed at every clearing), with the RSFs'
   steps solved in sensitivity form (the default) or on the feeder layers' LinDistFlow LPs
   (``rsf_lp``), for one-resource FSPs (aggregation none: a change touches one feeder) and
   random pools of 14 resources (22 FSPs: a change touches nearly always both feeders).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from measure import median_time

FLEXGAME = [sys.executable, "-m", "flexgame.experiments.cli"]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command_time(args: list[str], repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) time [s] of ``flexgame args`` in a fresh process."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, start = _child_cpu(), time.perf_counter()
        subprocess.run([*FLEXGAME, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        cpus.append(_child_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def cli_times(repeats: int) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, args, n in [
            ("flexgame --help", ["--help"], 2 * repeats + 1),
            ("flexgame --version", ["--version"], 2 * repeats + 1),
            ("flexgame run (truthful)", ["run", f"hydra.run.dir={tmp}/run"], repeats),
            ("flexgame table", ["table", "--out", f"{tmp}/table", "--no-progress"], repeats),
        ]:
            wall, cpu = command_time(args, n)
            rows.append({"command": label, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})
    return pd.DataFrame(rows)


def _lps(scheme, pyomo: bool) -> None:
    """Build the scheme's LPs again: as arrays (what ``Scheme`` does) or from their Pyomo
    formulation with Pyomo's standard-form compiler (what it did before issue 11)."""
    from flexgame.markets.bid_aggregation import ResidualSupplyStage
    from flexgame.markets.lp import CompiledLP

    for built in scheme.layers():
        if pyomo:
            CompiledLP.from_pyomo(built.layer.pyomo_model())
        else:
            built.layer._build().compile()
    for stage in scheme.stages:
        if isinstance(stage, ResidualSupplyStage):
            if pyomo:
                CompiledLP.from_pyomo(stage.pyomo_milp())
            else:
                stage._build_milp().compile()


def build_times(case: str, repeats: int) -> pd.DataFrame:
    """Per scheme: building it (``scheme_ms``), of which its LPs as arrays (``lps_ms``);
    the same LPs from Pyomo (``pyomo_lps_ms``); the scheme's build before issue 11
    (``before_ms`` = scheme_ms - lps_ms + pyomo_lps_ms); its first clearing."""
    from flexgame.experiments.scenario import Scenario
    from flexgame.markets.schemes import SCHEMES, ClearingConfig, Scheme

    scenario = Scenario.from_case(case, 0)
    system, bids = scenario.system, scenario.bids
    rows = []
    for name in SCHEMES:
        config = ClearingConfig(scheme=name)
        build = median_time(lambda: Scheme(system, bids, config), repeats)
        scheme = Scheme(system, bids, config)
        lps = median_time(lambda: _lps(scheme, pyomo=False), repeats)
        pyomo = median_time(lambda: _lps(scheme, pyomo=True), repeats)
        clear = median_time(lambda: Scheme(system, bids, config).clear(), repeats) - build
        rows.append({"scheme": name, "layers": len(scheme.layers()),
                     "scheme_ms": round(1e3 * build, 1), "lps_ms": round(1e3 * lps, 1),
                     "pyomo_lps_ms": round(1e3 * pyomo, 1),
                     "before_ms": round(1e3 * (build - lps + pyomo), 1),
                     "lp_speed_up": round(pyomo / lps, 1),
                     "first_clear_ms": round(1e3 * clear, 1)})
    return pd.DataFrame(rows)


def table_time(repeats: int) -> pd.DataFrame:
    from flexgame.experiments.table import compute

    compute(progress=False)  # imports, caches of the case files
    cpu = time.process_time()
    wall = median_time(lambda: compute(progress=False), repeats)
    from flexgame.markets.bids import CASES
    from flexgame.markets.schemes import SCHEMES

    runs = len(SCHEMES) * len(CASES)
    return pd.DataFrame([{"what": f"D3.3 table computed in process ({runs} runs)",
                          "wall_s": round(wall, 3),
                          "cpu_s": round((time.process_time() - cpu) / repeats, 3)}])


def clearing_rate(aggregation: str, n: int, cache: bool, reduced: bool = True,
                  seed: int = 0) -> tuple:
    """(clearings per second of wall time, per second of CPU time, RSFs computed, RSFs
    reused) of a fresh bid_aggregation scheme over ``n`` single-FSP price changes; with
    ``reduced`` False its residual supply functions are solved on the feeder layers' own
    LinDistFlow LPs instead of in sensitivity form
    (:class:`~flexgame.markets.reduced_layer.ReducedFeederLayer`)."""
    from flexgame.experiments.scenario import Scenario
    from flexgame.markets.bid_aggregation import ResidualSupplyStage
    from flexgame.markets.schemes import ClearingConfig, Scheme

    options = dict(aggregation=aggregation)
    if aggregation == "random_pools":
        options["pool_size"] = 14
    scenario = Scenario.from_case("A", seed, **options)
    bids = scenario.bids
    scheme = Scheme(scenario.system, bids, ClearingConfig(scheme="bid_aggregation"))
    (stage,) = [s for s in scheme.stages if isinstance(s, ResidualSupplyStage)]
    if not cache:
        stage.cache_size = 0
    if not reduced:
        stage.reduced = [None] * len(stage.layers)
    rng = np.random.default_rng(seed)
    base = bids.price_eur_per_mw.to_numpy(float)
    owner = bids.fsp.to_numpy()
    fsps = np.unique(owner)
    markups = np.linspace(0.0, 1.4, 15)
    price = base.copy()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        own = owner == rng.choice(fsps)
        price = price.copy()
        price[own] = base[own] * (1.0 + rng.choice(markups))
        scheme.clear(price=price)
    return (n / (time.perf_counter() - start), n / (time.process_time() - cpu),
            stage.rsf_computed, stage.rsf_reused)


def bid_aggregation_rates(n: int) -> pd.DataFrame:
    rows = []
    for aggregation in ("none", "random_pools"):
        for cache, reduced in ((False, False), (True, False), (False, True), (True, True)):
            rate, cpu_rate, computed, reused = clearing_rate(aggregation, n, cache, reduced)
            rows.append({"aggregation": aggregation, "rsf_cache": cache,
                         "rsf_lp": "sensitivity form" if reduced else "LinDistFlow",
                         "clearings_per_s": round(rate, 1),
                         "clearings_per_cpu_s": round(cpu_rate, 1),
                         "rsf_computed": computed, "rsf_reused": reused})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clearings", type=int, default=60,
                    help="clearings per bid-aggregation measurement")
    ap.add_argument("--case", default="B", help="case of the per-scheme build times")
    ap.add_argument("--skip", nargs="*", default=[], choices=["cli", "build", "table", "ba"])
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    if "cli" not in args.skip:
        print("1. the flexgame command in a fresh process [s]")
        print(cli_times(args.repeats).to_string(index=False), "\n")
    if "build" not in args.skip:
        print(f"2. building each scheme (case {args.case}) [ms]")
        print(build_times(args.case, args.repeats).to_string(index=False), "\n")
    if "table" not in args.skip:
        print("3. the D3.3 table in process [s]")
        print(table_time(args.repeats).to_string(index=False), "\n")
    if "ba" not in args.skip:
        print("4. bid_aggregation, single-FSP price changes (case A)")
        print(bid_aggregation_rates(args.clearings).to_string(index=False))


if __name__ == "__main__":
    main()
