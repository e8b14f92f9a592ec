"""Benchmarks of the strategic engine: memory of the profile cache and payments under every
settlement rule (run by hand, not by CI).

    python benchmarks/bench_engine.py [--case A] [--rounds 30] [--scheme ml03] \
        [--profiles 20] [--vcg-profiles 2] [--repeats 5] [--seed 0]

Prints three tables, on the default system with every resource its own FSP (302 FSPs in
case A):

1. Memory of a strategic run like ``flexgame run reasoning=ibr case=A`` (scheme common,
   pay-as-bid, the default strategy grid, iterated best response capped at ``--rounds``
   rounds, 30 as in the run: about 30 s on 2 cores): wall time, clearings, profiles cached;
   bytes per cached profile (its key and compact outcome, and the dict layout they
   replaced, rebuilt from the same outcomes: a tuple of strategies as key, a profit dict per
   FSP, a dense activation array and two dicts per layer); the cache at its default bound;
   the process's peak RSS (``ru_maxrss``) after building the scheme and after the run.
2. Payments of one clearing of ``--scheme`` (random declared prices, 1 to 1.5 times the
   true cost) per rule, median of ``--repeats`` [s]: ``settle()`` (tables: what a payoff
   under uniform, nodal and VCG computed before) vs ``bid_payments`` (arrays).
3. Clearings per second of a :class:`~flexgame.games.payoff.GameEvaluator` on ``--scheme``
   per rule, over the same random profiles (``--profiles``, ``--vcg-profiles`` under VCG,
   which re-clears the scheme without each accepted FSP): payments from arrays vs from
   ``settle()`` tables.
4. Best responses of random players to random profiles, plain (every strategy cleared) vs
   accelerated (read off LP price ranges, :mod:`flexgame.games.deviations`) per scheme:
   best responses, clearings and payoffs per second, and a check that both give the same
   best responses (``--br-schemes``, ``--br-profiles``, ``--br-players``).
5. One ``reasoning=equilibrium`` run on 1, 2, ... worker processes (``--jobs 1 2 0``, 0
   every available core): wall time, clearings, speed-up, and a check that the result equals
   the serial run bit for bit (``--jobs-scheme``, ``--jobs-case``, ``--jobs-aggregation``).

``--tables 4 5`` prints only those tables.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pandas as pd

from flexgame.agents.model import FlexMarketModel
from flexgame.games import payoff
from flexgame.games.best_response import best_response
from flexgame.games.parallel import available_cores, resolve_jobs
from flexgame.games.payoff import CACHE_PROFILES, GameEvaluator
from flexgame.games.reasoning import ReasoningConfig
from flexgame.games.strategies import BidMap, StrategyConfig
from flexgame.markets.bids import TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.schemes import build_scheme
from flexgame.markets.settlement import SETTLEMENTS, bid_payments, settle
from flexgame.markets.system import build_system
from measure import median_time, peak_rss_mb


def deep_size(objects, skip: set[int]) -> int:
    """Bytes of ``objects`` and of everything they reference, each object counted once;
    objects whose id is in ``skip`` (shared with the rest of the program) and types are not
    counted (``skip`` collects the ids counted)."""
    size, stack = 0, list(objects)
    while stack:
        o = stack.pop()
        if id(o) in skip or isinstance(o, type):
            continue
        skip.add(id(o))
        size += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return size


def cache_bytes(evaluator: GameEvaluator) -> tuple[float, float]:
    """Bytes per cached profile of ``evaluator``: (compact key and outcome, the dict layout
    they replaced), the cache's own table included, the FSP names not (shared)."""
    cache = evaluator._cache
    fsps = evaluator.bid_map.fsps
    shared = {id(fsps), *map(id, fsps)}
    compact = deep_size([*cache.keys(), *cache.values()], set(shared)) + sys.getsizeof(cache)
    strategies = evaluator.bid_map.space.strategies
    legacy = {}
    for k, o in cache.items():
        key = tuple(strategies[i] for i in np.frombuffer(k, dtype=evaluator._code_type))
        legacy[key] = SimpleNamespace(
            cost_eur=o.cost_eur, profit=o.profit, unmet_need_mw=o.unmet_need_mw,
            activation_mw=o.activation_mw, payment_eur=o.payment_eur,
            layer_cost_eur=o.layer_cost_eur, layer_accepted_mw=o.layer_accepted_mw)
    shared |= {id(s) for s in strategies} | set(map(id, (x for s in strategies for x in s)))
    dicts = deep_size([*legacy.keys(), *legacy.values()], shared) + sys.getsizeof(legacy)
    return compact / len(cache), dicts / len(cache)


def memory(case: str, rounds: int, seed: int) -> pd.DataFrame:
    """Table 1: a 302-FSP iterated best response run's time, clearings and memory."""
    system = build_system(direction=TSO_NEED_DIRECTION[case])
    bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(seed))
    scheme = build_scheme(system, bids, "common")
    model = FlexMarketModel(scheme, reasoning=ReasoningConfig("ibr", max_rounds=rounds),
                            seed=seed)
    built = peak_rss_mb()
    start = time.perf_counter()
    model.run()
    elapsed = time.perf_counter() - start
    after = peak_rss_mb()
    ev = model.evaluator
    compact, dicts = cache_bytes(ev)
    return pd.DataFrame([{
        "FSPs": len(ev.bid_map.fsps), "rounds": model.round, "status": model.status,
        "time [s]": elapsed, "clearings": ev.clearings, "cached": ev.cached,
        "compact [B/profile]": compact, "dict layout [B/profile]": dicts,
        f"cache of {CACHE_PROFILES:,} [MB]": compact * CACHE_PROFILES / 1e6,
        "peak RSS built [MB]": built, "peak RSS after run [MB]": after}])


@contextmanager
def settle_tables():
    """Within the block, a :class:`GameEvaluator` computes payments as it did before the
    array payments: pay-as-bid from the declared cost per bid, the other rules from
    ``settle()``'s tables."""
    def from_tables(scheme, result, rule):
        return (result.declared_cost_by_bid() if rule == "pay_as_bid"
                else settle(scheme, result, rule).bid_payment_eur)

    arrays = payoff.bid_payments
    payoff.bid_payments = from_tables
    try:
        yield
    finally:
        payoff.bid_payments = arrays


def settlement_speed(case: str, scheme_name: str, n_profiles: int, n_vcg: int, repeats: int,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 2 and 3: payments of one clearing per rule, and evaluator clearings per
    second per rule, tables vs arrays."""
    system = build_system(direction=TSO_NEED_DIRECTION[case])
    bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(seed))
    scheme = build_scheme(system, bids, scheme_name)
    rng = np.random.default_rng(seed)
    cost = bids.cost_eur_per_mw.to_numpy(float)
    result = scheme.clear(cost * rng.uniform(1.0, 1.5, len(cost)),
                          bids.quantity_mw.to_numpy(float), None)
    one = []
    for rule in SETTLEMENTS:
        tables = median_time(lambda r=rule: settle(scheme, result, r), repeats)
        arrays = median_time(lambda r=rule: bid_payments(scheme, result, r), repeats)
        one.append({"rule": rule, "settle() tables [s]": tables,
                    "bid_payments arrays [s]": arrays, "speed-up [-]": tables / arrays})
    bid_map = BidMap(bids, StrategyConfig().space())
    strategies = bid_map.space.strategies
    profiles = [{p: strategies[int(rng.integers(len(strategies)))] for p in bid_map.players}
                for _ in range(n_profiles)]
    rates = []
    for rule in SETTLEMENTS:
        draws = profiles[:n_vcg] if rule == "vcg" else profiles
        row = {"rule": rule, "profiles": len(draws)}
        for label, payments in (("tables", settle_tables), ("arrays", _as_is)):
            ev = GameEvaluator(scheme, bid_map, rule)
            with payments():
                start = time.perf_counter()
                for profile in draws:
                    ev.outcome(profile)
                row[f"{label} [clearings/s]"] = ev.clearings / (time.perf_counter() - start)
        row["speed-up [-]"] = row["arrays [clearings/s]"] / row["tables [clearings/s]"]
        rates.append(row)
    return pd.DataFrame(one), pd.DataFrame(rates)


@contextmanager
def _as_is():
    """No change: the evaluator's own (array) payments."""
    yield


def best_response_speed(case: str, schemes: list[str], n_profiles: int, n_players: int,
                        seed: int) -> pd.DataFrame:
    """Table 4: best responses of random players to random profiles on fresh evaluators,
    plain (every strategy cleared) vs accelerated (price ranging), same profiles: time,
    clearings, and whether every best response (strategy and payoff) agrees."""
    system = build_system(direction=TSO_NEED_DIRECTION[case])
    bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(seed))
    space = StrategyConfig().space()
    rows = []
    for name in schemes:
        rng = np.random.default_rng(seed)
        bid_map = BidMap(bids, space)
        strategies = space.strategies
        profiles = [{p: strategies[rng.integers(len(strategies))] for p in bid_map.players}
                    for _ in range(n_profiles)]
        players = [list(rng.choice(bid_map.players, n_players, replace=False))
                   for _ in profiles]
        found, row = {}, {"scheme": name}
        for mode, ranging in (("plain", False), ("accelerated", True)):
            ev = GameEvaluator(build_scheme(system, bids, name), BidMap(bids, space),
                               ranging=ranging)
            start = time.perf_counter()
            found[mode] = [(r.strategy, r.payoff) for prof, ps in zip(profiles, players)
                           for r in (best_response(ev, prof, p) for p in ps)]
            elapsed = time.perf_counter() - start
            n = len(found[mode])
            row[f"{mode} BR/s"] = n / elapsed
            row[f"{mode} clearings/BR"] = ev.clearings / n
            row[f"{mode} clearings/s"] = ev.clearings / elapsed
            row[f"{mode} payoffs/s"] = n * len(strategies) / elapsed
        row["speed-up"] = row["accelerated BR/s"] / row["plain BR/s"]
        row["same best responses"] = found["plain"] == found["accelerated"]
        rows.append(row)
    return pd.DataFrame(rows)


def core_speedup(case: str, scheme_name: str, aggregation: str, jobs: list[int],
                 seed: int) -> pd.DataFrame:
    """Table 5: one ``reasoning=equilibrium`` run on 1, 2, ... worker processes: wall time
    (pool start-up included), clearings (workers' caches are separate, so more clearings
    than serially), speed-up over 1, and whether its equilibrium and rounds equal the serial
    run's bit for bit."""
    system = build_system(direction=TSO_NEED_DIRECTION[case])
    bids = generate_bids(system, BidConfig(case=case, aggregation=aggregation),
                         np.random.default_rng(seed))
    rows, serial = [], None
    for n_jobs in jobs:
        model = FlexMarketModel(build_scheme(system, bids, scheme_name),
                                reasoning=ReasoningConfig("equilibrium", n_jobs=n_jobs),
                                seed=seed)
        start = time.perf_counter()
        model.run()
        elapsed = time.perf_counter() - start
        eq = model.equilibrium
        got = (model.rounds_table(), eq.profiles, eq.probabilities.tolist(), eq.epsilon,
               eq.outcome.cost_eur)
        if serial is None:
            serial = (elapsed, got)
        same = (got[0].equals(serial[1][0]) and got[1:] == serial[1][1:])
        rows.append({"n_jobs": n_jobs, "time [s]": elapsed, "clearings": model.evaluator.clearings,
                     "speed-up": serial[0] / elapsed, "concept": eq.concept,
                     "epsilon [EUR]": eq.epsilon, "same as serial": same})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="A", help="D3.3 case (A: 302 single-resource FSPs)")
    parser.add_argument("--rounds", type=int, default=30, help="cap of the IBR run (table 1)")
    parser.add_argument("--scheme", default="ml03", help="scheme of tables 2 and 3")
    parser.add_argument("--profiles", type=int, default=20, help="profiles cleared (table 3)")
    parser.add_argument("--vcg-profiles", type=int, default=2,
                        help="profiles cleared under VCG (table 3)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per timing (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--br-schemes", nargs="+",
                        default=["common", "fragmented", "ml01", "ml05", "ml03"],
                        help="schemes of table 4")
    parser.add_argument("--br-profiles", type=int, default=3, help="profiles (table 4)")
    parser.add_argument("--br-players", type=int, default=10,
                        help="players responding per profile (table 4)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="worker processes of table 5 (0: every available core)")
    parser.add_argument("--jobs-scheme", default="fragmented", help="scheme of table 5")
    parser.add_argument("--jobs-case", default="B", help="case of table 5")
    parser.add_argument("--jobs-aggregation", default="random_pools",
                        help="aggregation of table 5")
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                        help="which tables to print")
    args = parser.parse_args()
    pd.set_option("display.float_format", lambda v: f"{v:.4g}")
    pd.set_option("display.width", 200)

    if 1 in args.tables:
        print(f"1. Memory: reasoning=ibr case={args.case} (aggregation none, scheme common, "
              f"max_rounds={args.rounds})")
        print(memory(args.case, args.rounds, args.seed).to_string(index=False))
    if 2 in args.tables or 3 in args.tables:
        one, rates = settlement_speed(args.case, args.scheme, args.profiles,
                                      args.vcg_profiles, args.repeats, args.seed)
        print(f"\n2. Payments of one clearing of {args.scheme}, case {args.case}, median of "
              f"{args.repeats} [s]")
        print(one.to_string(index=False))
        print(f"\n3. GameEvaluator clearings per second, {args.scheme}, case {args.case}")
        print(rates.to_string(index=False))
    if 4 in args.tables:
        print(f"\n4. Best responses, plain vs accelerated (price ranging), case {args.case}, "
              f"{args.br_profiles} random profiles x {args.br_players} players")
        print(best_response_speed(args.case, args.br_schemes, args.br_profiles,
                                  args.br_players, args.seed).to_string(index=False))
    if 5 in args.tables:
        jobs = [resolve_jobs(j) for j in args.jobs]
        print(f"\n5. Cores: reasoning=equilibrium, {args.jobs_scheme}, case {args.jobs_case}, "
              f"{args.jobs_aggregation}, n_jobs {jobs} ({available_cores()} available)")
        print(core_speedup(args.jobs_case, args.jobs_scheme, args.jobs_aggregation, jobs,
                           args.seed).to_string(index=False))


if __name__ == "__main__":
    main()
