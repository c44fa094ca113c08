"""Helpers for the data-stage tests: a loopback HTTP server with Range support, fixture paths,
and writers of small (good or deliberately broken) TFDS folders."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from emcom.data.example import encode_example
from emcom.data.tfrecord import write_records

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "tfds"
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures/tfds")
DATASETS = ("byol_celeb_a2", "byol_imagenet2012")


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from `server.root`, honouring `Range: bytes=N-`; records what it saw.

    `server.drop_after` (bytes): while > 0, the next full-body response sends only that many
    bytes of the body and closes the connection (then resets to 0), simulating an interruption.
    """

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append(dict(self.headers))
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, status = 0, 200
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if match and server.ranges:
            start, status = int(match[1]), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(status)
        self.send_header("Content-Length", str(len(data) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        body = data[start:]
        if server.drop_after:
            body, server.drop_after = body[:server.drop_after], 0
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve(root: Path, drop_after: int = 0, ranges: bool = True) -> Iterator[http.server.HTTPServer]:
    """A ThreadingHTTPServer on 127.0.0.1 (free port) serving `root`; `.url` is its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    server.root, server.drop_after, server.ranges, server.requests = Path(root), drop_after, ranges, []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def make_records(n: int, dim: int = 4, seed: int = 0, start_id: int = 0) -> list[dict]:
    """n ImageNet-like feature dicts: logit (dim,) float32, label, image_id."""
    rng = np.random.default_rng(seed)
    return [{"logit": rng.random(dim, dtype=np.float32), "label": [int(rng.integers(0, 5))],
             "image_id": [start_id + i]} for i in range(n)]


def write_tfds(folder: Path, splits: dict[str, list[list[dict]]], name: str = "toy") -> Path:
    """Writes `folder/<name>-<split>.tfrecord-<i>-of-<n>`: one shard per inner list of records."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, shards in splits.items():
        for i, records in enumerate(shards):
            write_records(folder / f"{name}-{split}.tfrecord-{i:05d}-of-{len(shards):05d}",
                          [encode_example(r) for r in records])
    return folder


def files_under(path: Path) -> list[str]:
    """All files and folders below `path` (empty list when absent), for leftover checks."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []
