"""Dispatches `python -m emcom.bench NAME [options]` to `emcom.bench.NAME.main(argv)`."""

import importlib
import sys

from emcom import hugepages

BENCHMARKS = ("train", "population", "seeds", "step_profile", "update_modes", "lstm", "topsim",
              "tfds")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m emcom.bench {{{','.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        return 2
    return importlib.import_module(f"emcom.bench.{argv[0]}").main(argv[1:]) or 0


if __name__ == "__main__":
    hugepages.restart_with_huge_pages("emcom.bench", sys.argv[1:])
    sys.exit(main(sys.argv[1:]))
