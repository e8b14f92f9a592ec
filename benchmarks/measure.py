"""What the benchmarks measure with: the median wall time of repeated calls and the peak
memory of the process. Imported by the ``bench_*.py`` scripts, which run from this folder
(``python benchmarks/bench_x.py``)."""

from __future__ import annotations

import resource
import statistics
import time


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` [s]."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far [MiB] (``ru_maxrss`` is in KiB on
    Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
