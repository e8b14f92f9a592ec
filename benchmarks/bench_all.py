"""The strategic engine's benchmarks side by side, in one run on one machine (issue 11; run by
hand, not by CI).

    python benchmarks/bench_all.py [--quick] [--ba-equilibrium] [--out results/benchmarks]

Runs, one after the other in fresh processes (so each peak RSS is its own): the engine
(``bench_engine.py``: memory and time of ``reasoning=ibr case=A`` with 302 FSPs, clearings per
second of the plain and the accelerated best response, speed-up on 1, 2 and all cores), the
start-up, model-building and bid-aggregation rates (``bench_startup.py``: CLI start-up, the
D3.3 table time, bid aggregation's clearings per second) and the scale preset
(``bench_scale.py``: build, clearing, ex-post time and memory against three system sizes);
with ``--ba-equilibrium`` also the wall and CPU time of bid aggregation's equilibrium with
random pools of 14 resources (22 FSPs), ``flexgame run scheme=bid_aggregation
aggregation=random_pools aggregation.pool_size=14 reasoning=equilibrium case=A``, in this
process (``reasoning.n_jobs=1``) and on every core (``reasoning.n_jobs=0``) (about 1.5
minutes on 2 cores). Writes every table, with the machine (cores, CPU, Python) and the commands, into
``<out>/bench_all_<time>.md`` and prints it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _benchmarks(quick: bool) -> list[tuple[str, list[str]]]:
    """(title, command) of each benchmark; ``quick`` shrinks repeats and sizes."""
    py = sys.executable
    engine = ["--repeats", "1", "--br-profiles", "2"] if quick else []
    startup = ["--repeats", "1", "--clearings", "20"] if quick else ["--repeats", "3"]
    scale = ["--sizes", "default", "5", "10"] if quick else ["--sizes", "default", "5", "10",
                                                              "20"]
    return [
        ("engine: memory, best responses, cores", [py, str(HERE / "bench_engine.py"), *engine]),
        ("start-up, model building, bid aggregation",
         [py, str(HERE / "bench_startup.py"), *startup]),
        ("scale preset: cost against system size",
         [py, str(HERE / "bench_scale.py"), *scale, "--schemes", "common", "ml03",
          "bid_aggregation"]),
    ]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str]) -> tuple[str, float, float, int]:
    """(output, wall [s], CPU [s], exit status) of ``command``."""
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent)
    return (done.stdout + (f"\n[stderr]\n{done.stderr[-2000:]}" if done.returncode else ""),
            time.perf_counter() - start, _children_cpu() - cpu, done.returncode)


def _machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{len(os.sched_getaffinity(0))} cores available ({os.cpu_count()} on the machine), "
            f"{cpu}, Python {platform.python_version()}, {platform.platform()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    parser.add_argument("--ba-equilibrium", action="store_true",
                        help="also bid aggregation's equilibrium with random pools (long)")
    parser.add_argument("--out", default="results/benchmarks", help="directory of the report")
    args = parser.parse_args()
    runs = _benchmarks(args.quick)
    if args.ba_equilibrium:
        for jobs, where in ((1, "one process"), (0, "every core")):
            run_dir = tempfile.mkdtemp(prefix="ba_equilibrium_")
            runs.append((f"bid aggregation's equilibrium, random pools of 14 (22 FSPs), {where}",
                         [sys.executable, "-m", "flexgame.experiments.cli", "run",
                          "scheme=bid_aggregation", "aggregation=random_pools",
                          "aggregation.pool_size=14", "reasoning=equilibrium", "case=A",
                          f"reasoning.n_jobs={jobs}", f"hydra.run.dir={run_dir}"]))
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    parts = [f"# flexgame benchmarks, {stamp}", "", f"Machine: {_machine()}", ""]
    for title, command in runs:
        print(f"running: {title} ...", file=sys.stderr, flush=True)
        output, wall, cpu, status = _timed(command)
        shown = " ".join(Path(c).name if c == sys.executable else
                         os.path.relpath(c, HERE.parent) if c.startswith(str(HERE)) else c
                         for c in command)
        parts += [f"## {title}", "", f"`{shown}`: wall {wall:.1f} s, CPU {cpu:.1f} s, "
                  f"exit {status}", "", "```", output.rstrip(), "```", ""]
    report = "\n".join(parts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_all_{stamp}.md"
    path.write_text(report)
    print(report)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
