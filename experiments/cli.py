"""The ``flexgame`` command.

    flexgame run [overrides]     one simulation (a Hydra app: scheme=ml03 case=B seed=3 ...)
    flexgame table [options]     the D3.3 table: every scheme on cases A-D, truthful bids
    flexgame summary [overrides] the test system and its base state

A :class:`markets.errors.FlexgameInputError` (a wrong config value, an unknown option) prints
one line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources

from experiments.scenario import CONFIG_MODULE
from markets.bids import CASES
from markets.errors import FlexgameInputError, require_choice
from markets.schemes import SCHEMES

PROG = "flexgame"
GROUPS = ("system", "case", "scheme", "settlement", "aggregation", "reasoning")
"""Config groups users select by name (``scheme=ml03``)."""

USAGE = f"""\
usage: {PROG} <command> [arguments]

Agent-based game-theory simulator of TSO-DSO flexibility markets.

commands:
  run [overrides]      one simulation; Hydra overrides such as
                         {PROG} run scheme=ml03 case=B seed=3 settlement=nodal liquidity=0.5
                       groups: scheme, case, settlement, aggregation, reasoning, system;
                       values: seed, liquidity; Hydra's own (hydra.run.dir=DIR, --cfg job).
                       Outputs go to results/runs/<time>_<scheme>_<case>_s<seed>/.
                       '{PROG} run --help' shows every group and option.
  table [options]      the D3.3 table: every scheme on cases A-D with truthful bids,
                       printed and saved (CSV, PNG/SVG figure, report.md) to results/d33_table/
                       '{PROG} table --help' for options.
  summary [overrides]  the test system (default: IEEE 14-bus + case69 + case141) and its
                       base state.

Errors in the input print one line and exit with status 2.
"""


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (``conf/<group>/*.yaml``, except ``_*`` bases)."""
    folder = resources.files(CONFIG_MODULE) / group
    return sorted(p.name[:-5] for p in folder.iterdir()
                  if p.name.endswith(".yaml") and not p.name.startswith("_"))


def check_group_overrides(overrides: list[str]) -> None:
    """Refuse ``group=option`` overrides naming an option that does not exist, listing the
    allowed ones (Hydra's own message is a stack of search paths)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import OverrideParseException

    candidates = [a for a in overrides if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(candidates)
    except OverrideParseException:
        return  # Hydra reports syntax errors itself
    for override in parsed:
        group = override.key_or_group
        if group not in GROUPS or override.is_delete():
            continue
        if override.value_type == ValueType.ELEMENT:
            values = [override.get_value_element_as_str()]
        elif override.value_type in (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP):
            values = list(override.sweep_string_iterator())
        else:
            continue
        for value in values:
            require_choice(group, value, group_options(group))


def _run(overrides: list[str]) -> None:
    """``flexgame run``: the Hydra app; Hydra sees only the overrides."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from experiments.run import format_metrics, run_experiment

    check_group_overrides(overrides)
    failures: list[FlexgameInputError] = []

    @hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="config", version_base="1.3")
    def app(cfg) -> None:
        out_dir = HydraConfig.get().runtime.output_dir
        try:
            metrics = run_experiment(cfg, out_dir)
        except FlexgameInputError as error:  # reported by main() without a traceback
            failures.append(error)
            return
        print(format_metrics(metrics))
        print(f"outputs: {out_dir}")

    argv = sys.argv
    sys.argv = [f"{PROG} run", *overrides]
    try:
        app()
    finally:
        sys.argv = argv
    if failures:
        raise failures[0]


def _table_parser() -> argparse.ArgumentParser:
    from experiments.table import DEFAULT_OUT

    parser = argparse.ArgumentParser(
        prog=f"{PROG} table",
        description="The D3.3 table: every coordination scheme on the D3.3 cases with truthful "
                    "bids on the default system. Prints it and writes CSV (long and wide), a "
                    "figure (PNG, SVG) and report.md.")
    parser.add_argument("--cases", nargs="+", default=list(CASES), metavar="CASE",
                        help=f"cases (default: {' '.join(CASES)})")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), metavar="SCHEME",
                        help=f"schemes (default: all: {' '.join(SCHEMES)})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bids (default: 0)")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help=f"output directory (default: {DEFAULT_OUT})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _table(args: list[str]) -> None:
    from experiments.table import format_table, run_table

    opts = _table_parser().parse_args(args)
    if opts.seed < 0:
        raise FlexgameInputError(f"--seed={opts.seed} must be an integer >= 0")
    table, files = run_table(opts.cases, opts.schemes, opts.seed, opts.out,
                             progress=not opts.no_progress)
    print(format_table(table))
    print()
    for path in files.values():
        print(f"wrote {path}")


def _summary(overrides: list[str]) -> None:
    if any(a in ("-h", "--help") for a in overrides):
        print(f"usage: {PROG} summary [overrides]\n\nPrints the test system and its base "
              "state; overrides as for 'run' (e.g. case=D system.dg_share=0.5).")
        return
    from experiments.scenario import build_system_for, load_config

    check_group_overrides(overrides)
    print(build_system_for(load_config(overrides)).summary())


COMMANDS = {"run": _run, "table": _table, "summary": _summary}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``flexgame`` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        stream = sys.stdout if args else sys.stderr
        print(USAGE, file=stream, end="")
        if not args:
            raise SystemExit(2)
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(USAGE, file=sys.stderr, end="")
        print(f"{PROG}: error: unknown command {command!r}; choose one of: "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    try:
        COMMANDS[command](rest)
    except FlexgameInputError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
