"""Deviation payoffs on several cores: worker processes, each holding its own built scheme.

The payoffs of different players' deviations (a round of regret matching, a certificate, the
deviations from a mixed profile), and of the strategies of one player (a best response), are
independent clearings. A :class:`WorkerPool` starts ``n_jobs`` processes; each builds the
game once from a :class:`GameRecipe` (the system, the bid table and the settings, never a
solver object) and keeps its own evaluator, with its own profile cache, for the pool's
lifetime. Requests go to workers by a number the caller gives (a player's position, so that
its deviations meet its earlier ones in the same cache; a part of the strategy space), and
the answers come back in order. The result is the serial result: every payoff is a clearing
(or a price-range reading) that does not depend on which process computed it, nor on what
it cleared before (the clearing is independent of the solve history:
:data:`flexgame.markets.lp.DUAL_FEASIBILITY_TOLERANCE`; tests compare runs bit for bit).

Workers are forked from a fresh server process (``forkserver``), not from the caller, whose
solver threads a fork would copy in an unknown state. Under SLURM, the cores a job may use
are its CPU affinity, which ``n_jobs=0`` takes.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flexgame.games.strategies import BidMap, StrategySpace

if TYPE_CHECKING:
    from flexgame.games.payoff import GameEvaluator

Request = tuple[dict, str, Sequence | None]
"""(profile, player, strategies or None for the whole space): the payoffs of ``player``'s
``strategies`` against ``profile``."""

_evaluator: GameEvaluator | None = None
"""The worker process's own evaluator (set by :func:`_start`)."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity: under SLURM, the job's cores)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def resolve_jobs(n_jobs: int) -> int:
    """Worker processes for a setting ``n_jobs``: itself when >= 1, all available cores
    when 0."""
    return available_cores() if n_jobs == 0 else n_jobs


@dataclass(frozen=True)
class GameRecipe:
    """What a worker builds its copy of a game from: the scheme's system, bid table and
    clearing settings, the strategy space, the settlement rule and the evaluator's
    settings."""

    system: Any
    bids: Any
    config: Any
    space: StrategySpace
    settlement: str
    ranging: bool
    cache_profiles: int

    @classmethod
    def of(cls, evaluator: GameEvaluator) -> GameRecipe:
        scheme = evaluator.scheme
        return cls(scheme.system, scheme.bids, scheme.config, evaluator.bid_map.space,
                   evaluator.settlement, evaluator.deviation_payoffs.ranging,
                   evaluator.cache_profiles)


def _start(recipe: GameRecipe) -> None:
    """Worker initializer: build the scheme and the evaluator once."""
    global _evaluator
    from flexgame.games.payoff import GameEvaluator
    from flexgame.markets.schemes import Scheme

    scheme = Scheme(recipe.system, recipe.bids, recipe.config)
    _evaluator = GameEvaluator(scheme, BidMap(recipe.bids, recipe.space), recipe.settlement,
                               ranging=recipe.ranging, cache_profiles=recipe.cache_profiles)


def _payoffs(requests: list[Request]) -> tuple[list[np.ndarray], int]:
    """In a worker: the payoffs of each request, and the clearings it took."""
    before = _evaluator.clearings
    out = [_evaluator.deviation_payoffs.serial(*request) for request in requests]
    return out, _evaluator.clearings - before


def _serve(connection, recipe: GameRecipe) -> None:
    """A worker's loop: build the game, then answer lists of requests until told to stop
    (None); an error is sent back as its traceback."""
    try:
        _start(recipe)
    except Exception:  # the caller raises it on its first request
        failed = traceback.format_exc()
    else:
        failed = None
    while True:
        try:
            requests = connection.recv()
        except EOFError:
            return
        if requests is None:
            return
        if failed is not None:
            connection.send(("error", failed))
            continue
        try:
            connection.send(("ok", _payoffs(requests)))
        except Exception:
            connection.send(("error", traceback.format_exc()))


def chunks(items: Sequence, n: int) -> list[Sequence]:
    """``items`` in at most ``n`` contiguous, non-empty chunks of near-equal length."""
    n = max(1, min(n, len(items)))
    bounds = np.linspace(0, len(items), n + 1).round().astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _stop(connections, processes) -> None:
    """Tell every worker to stop, then make sure it did."""
    for c in connections:
        try:
            c.send(None)
        except OSError:
            pass
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join()
    for c in connections:
        c.close()


class WorkerPool:
    """``n_jobs`` worker processes computing deviation payoffs of ``evaluator``'s game.

    Each request goes to the worker its ``worker`` number names (modulo ``n_jobs``), so a
    caller that sends a player's requests to the same worker finds them in that worker's
    cache next time. Stopped by :meth:`close`, or when the pool is garbage-collected or the
    interpreter exits.

    Attributes:
        n_jobs: worker processes.
        clearings: clearings the workers have run.
    """

    def __init__(self, evaluator: GameEvaluator, n_jobs: int):
        self.n_jobs, self.clearings = n_jobs, 0
        context = multiprocessing.get_context("forkserver")
        recipe = GameRecipe.of(evaluator)
        self._connections, processes = [], []
        for _ in range(n_jobs):
            here, there = context.Pipe()
            process = context.Process(target=_serve, args=(there, recipe), daemon=True)
            process.start()
            there.close()
            self._connections.append(here)
            processes.append(process)
        self._finalizer = weakref.finalize(self, _stop, self._connections, processes)

    def __repr__(self) -> str:
        state = "closed" if not self._finalizer.alive else f"{self.clearings} clearings"
        return f"WorkerPool({self.n_jobs} workers, {state})"

    def payoffs(self, requests: list[Request], workers: Sequence[int]
                ) -> tuple[list[np.ndarray], int]:
        """The payoffs of every request, in order, each computed in worker
        ``workers[i] % n_jobs``, and the clearings that took."""
        if not self._finalizer.alive:
            raise RuntimeError("the worker pool is closed")
        share: dict[int, list[int]] = {}
        for i, w in enumerate(workers):
            share.setdefault(int(w) % self.n_jobs, []).append(i)
        for w, positions in share.items():
            self._connections[w].send([requests[i] for i in positions])
        out: list[np.ndarray | None] = [None] * len(requests)
        cleared = 0
        for w, positions in share.items():
            try:
                status, answer = self._connections[w].recv()
            except EOFError:
                raise RuntimeError(f"payoff worker {w} stopped unexpectedly") from None
            if status != "ok":
                raise RuntimeError(f"payoff worker {w} failed:\n{answer}")
            payoffs, c = answer
            cleared += c
            for i, p in zip(positions, payoffs):
                out[i] = p
        self.clearings += cleared
        return out, cleared

    def close(self) -> None:
        """Stop the workers."""
        self._finalizer()
