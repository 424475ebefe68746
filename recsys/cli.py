"""The `eraser` command line: demo, train-checkpoint, unlearn, benchmark and its README table.

User errors (a bad path, an unknown model) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from recsys.checkpoint import CheckpointError
from recsys.commands import add_core_commands, run_core_command
from recsys.data.errors import DataError

EXIT_USAGE = 2


class UsageError(ValueError):
    """A mistake in the command line or its files, reported as one line (exit status 2)."""


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds takes integers like 0,1,2, got {text!r}"
        ) from None


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="compare unlearning methods; writes bench.json and bench.png")
    p.add_argument("--quick", action="store_true", help="1 seed, small sweeps (under 2 min on CPU)")
    p.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="ratings file or directory (default: ml-latest-small)",
    )
    p.add_argument(
        "--threshold", type=float, default=None, help="keep ratings >= this (default: all)"
    )
    p.add_argument("--models", type=_csv, default=("mf", "neumf"), help="comma list of mf,neumf")
    p.add_argument("--scenarios", type=_csv, default=("R", "U", "S"), help="comma list of R,U,S")
    p.add_argument(
        "--seeds", type=_seeds, default=None, help="comma list (default: 0 quick, 0,1,2 full)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: runs/bench, runs/bench-quick, runs/bench-scale)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--config", type=Path, default=None, help="project config TOML")
    p.add_argument("--scale", action="store_true", help="synthetic 10M-interaction MF scale run")
    p.add_argument("--scale-size", type=float, default=1.0, help="fraction of the scale problem")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_bench_table(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-table", help="print a bench.json's table; update the README region")
    p.add_argument(
        "--json", type=Path, nargs="+", required=True, help="bench.json file(s) from `eraser bench`"
    )
    p.add_argument(
        "--readme", type=Path, default=None, help="README whose bench-table region to replace"
    )


# a string: argparse's class is generic only to type checkers, not at run time
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser(
    extra: Callable[[SubParsers], None] | None = None, *, description: str | None = None
) -> argparse.ArgumentParser:
    """The core parser; ``extra`` adds more subcommands (the service CLI's)."""
    parser = argparse.ArgumentParser(prog="eraser", description=description or __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_bench(sub)
    _add_bench_table(sub)
    add_core_commands(sub)
    if extra is not None:
        extra(sub)
    return parser


def write_bench(bench: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write out/bench.json (strict JSON: non-finite numbers as null) and out/bench.png."""
    from recsys.bench.machine import json_safe
    from recsys.bench.plot import plot_bench

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench.json"
    json_path.write_text(json.dumps(json_safe(bench), indent=1, allow_nan=False) + "\n")
    return json_path, plot_bench(bench, out / "bench.png")


def _bench(args: argparse.Namespace) -> int:
    from recsys.bench.runner import DEFAULT_DATASET, BenchError, BenchOptions, run_bench
    from recsys.bench.table import format_table

    options = BenchOptions(
        quick=args.quick,
        dataset=args.dataset or DEFAULT_DATASET,
        models=args.models,
        scenarios=tuple(s.upper() for s in args.scenarios),
        seeds=args.seeds,
        device=args.device,
        config=args.config,
        threshold=args.threshold,
        scale=args.scale,
        scale_size=args.scale_size,
        progress=not args.no_progress,
    )
    default = "bench-scale" if args.scale else "bench-quick" if args.quick else "bench"
    out = args.out or Path("runs") / default
    try:
        bench = run_bench(options)
    except BenchError as exc:
        raise UsageError(str(exc)) from None
    json_path, png_path = write_bench(bench, out)
    print(format_table(bench))
    print(f"wrote {json_path} and {png_path}")
    return 0


def _bench_table(args: argparse.Namespace) -> int:
    from recsys.bench.table import format_table, merge_benches, update_readme
    from recsys.bench.targets import targets_markdown

    for path in args.json:
        if not path.is_file():
            raise UsageError(f"{path}: no such file; run `eraser bench --out DIR` first")
        try:
            one = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(one, dict) or "rows" not in one:
            raise UsageError(f"{path}: not a bench.json (no 'rows')")
    bench = merge_benches(list(args.json))
    print(format_table(bench))
    print(targets_markdown(bench))
    if args.readme is not None:
        if not args.readme.is_file():
            raise UsageError(f"{args.readme}: no such file")
        try:
            update_readme(args.readme, list(args.json))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(f"updated {args.readme}")
    return 0


def dispatch(args: argparse.Namespace) -> int:
    """Run one core command; UsageError for a command the core does not know."""
    if args.command == "bench":
        return _bench(args)
    if args.command == "bench-table":
        return _bench_table(args)
    code = run_core_command(args)
    if code is not None:
        return code
    raise UsageError(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except (UsageError, DataError, CheckpointError) as exc:
        print(f"eraser: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
