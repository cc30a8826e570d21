"""``python -m experiments [--results DIR] [NAME [args]]``: see :mod:`experiments`."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from experiments import EXPERIMENTS, listing, run

    results = None
    if argv[:1] == ["--results"]:
        if len(argv) < 2:
            print("--results needs a directory", file=sys.stderr)
            return 2
        results, argv = Path(argv[1]), argv[2:]
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(listing())
        return 0
    name, rest = argv[0], argv[1:]
    if name == "index":
        from experiments import common, index

        if results is not None:
            common.RESULTS = results.resolve()
        index.write_index(common.RESULTS)
        return 0
    if name not in {e.name for e in EXPERIMENTS}:
        print(f"unknown experiment {name!r}\n\n{listing()}", file=sys.stderr)
        return 2
    from mesa.errors import MesaError

    try:
        run(name, rest, results)
    except MesaError as e:  # a bad setting or a failed member: one line, no traceback
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # not on import by a spawned worker (``__mp_main__``)
    sys.exit(main(sys.argv[1:]))
