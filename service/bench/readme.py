"""`python -m service.bench.readme --readme README.md`: regenerate the README's service
benchmark tables from the committed benchmark outputs (benchmarks/api-load.json,
benchmarks/pipeline.json), between their ``<!-- NAME:start -->`` / ``<!-- NAME:end -->``
markers. A test checks the README matches, so a new benchmark result cannot go unquoted."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.bench import api, pipeline

BENCHMARKS = Path("benchmarks")
REGIONS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "api-load": ("api-load.json", api.format_report),
    "pipeline": ("pipeline.json", pipeline.format_report),
}


def render(name: str, benchmarks: Path = BENCHMARKS) -> str:
    file, fmt = REGIONS[name]
    return fmt(json.loads((benchmarks / file).read_text()))


def update(text: str, benchmarks: Path = BENCHMARKS) -> str:
    """``text`` with every region replaced by its rendering; ValueError for a missing one."""
    for name in REGIONS:
        pattern = re.compile(rf"(<!-- {name}:start -->\n)(.*?)(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- {name}:start --> ... <!-- {name}:end --> region")
        body = render(name, benchmarks)

        def replace(m: re.Match[str], body: str = body) -> str:
            return m.group(1) + body + "\n" + m.group(3)

        text = pattern.sub(replace, text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m service.bench.readme", description=__doc__)
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--benchmarks", type=Path, default=BENCHMARKS)
    args = p.parse_args(argv)
    args.readme.write_text(update(args.readme.read_text(), args.benchmarks))
    print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
