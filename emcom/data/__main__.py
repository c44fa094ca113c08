"""Command line of the data stage.

  python -m emcom.data tfds-to-arrow SRC OUT [--splits train,valid] [--sha256 HEX]
                                            [--max-members N] [--max-bytes N]
  python -m emcom.data synthetic OUT [--num-identities 300 --feature-dim 64 ...]
  python -m emcom.data download URL DEST [--sha256 HEX] [--retries 5]

Exit status 0 on success; 1 with the error message on stderr on bad input (OUT gets nothing).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys

from emcom.data import download, extract, synthetic, tfds
from emcom.data.errors import DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emcom.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("tfds-to-arrow", help="TFDS archive or folder -> Arrow splits")
    convert.add_argument("src", help=".tar.gz archive or extracted TFDS dataset folder")
    convert.add_argument("out", help="output folder (<split>.arrow + manifest.json)")
    convert.add_argument("--splits", help="comma-separated splits to convert (default: all found)")
    convert.add_argument("--sha256", help="archive checksum to record (default: computed)")
    convert.add_argument("--max-members", type=int, default=extract.MAX_MEMBERS,
                         help="refuse archives with more members (default %(default)s)")
    convert.add_argument("--max-bytes", type=int, default=extract.MAX_BYTES,
                         help="refuse archives with more content bytes (default %(default)s)")

    synth = commands.add_parser("synthetic", help="write the embedded synthetic dataset")
    synth.add_argument("out", help="output folder (<split>.arrow + manifest.json)")
    for name, param in inspect.signature(synthetic.write).parameters.items():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            synth.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(param.default),
                               default=param.default, help=f"default {param.default}")

    fetch = commands.add_parser("download", help="resumable, verified HTTP(S) download")
    fetch.add_argument("url")
    fetch.add_argument("dest")
    fetch.add_argument("--sha256", help="expected hex digest (default: compute and record)")
    fetch.add_argument("--retries", type=int, default=5)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "tfds-to-arrow":
            splits = args.splits.split(",") if args.splits else None
            manifest = tfds.convert(args.src, args.out, splits=splits, sha256=args.sha256,
                                    config={"src": args.src, "splits": splits},
                                    max_members=args.max_members, max_bytes=args.max_bytes)
            print(json.dumps(manifest["splits"]))
        elif args.command == "synthetic":
            knobs = {k: v for k, v in vars(args).items() if k not in ("command", "out", "quiet")}
            print(json.dumps(synthetic.write(args.out, **knobs)["splits"]))
        else:
            print(download.fetch(args.url, args.dest, sha256=args.sha256, retries=args.retries))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
