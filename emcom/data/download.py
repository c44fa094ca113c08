"""Resumable, verified HTTP(S) downloads with `requests`.

`fetch(url, dest)` streams into `<dest>.part`, resumes it with an HTTP Range request after an
interruption (retrying with exponential backoff), verifies the sha256 and only then renames it
to `dest` and records the checksum in `<dest>.sha256` (`sha256sum` format). `dest` therefore
exists only when complete and verified, which is what Snakemake takes an output's existence to mean.
Without a pinned sha256 "verified" means: the server gave the file's length and the file has it,
and it starts like an archive of the kind its name says (gzip or tar magic), so a connection closed
half way without a length, or an HTML error page served with status 200, is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path

import requests
import urllib3

from emcom.data.errors import DataError
from emcom.provenance import atomic_path

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Retry(Exception):
    """A transient failure: try again after backoff."""


def _total_size(response: requests.Response, offset: int) -> int | None:
    """The full size of the remote file from Content-Range / Content-Length, if given."""
    content_range = response.headers.get("Content-Range", "")
    match = re.match(r"bytes \d+-\d+/(\d+)", content_range)
    if match:
        return int(match[1])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def read_checksum(path: str | os.PathLike) -> str:
    """The hex digest of a `<file>.sha256` written by `fetch` (DataError naming it otherwise)."""
    path = Path(path)
    try:
        digest = path.read_text().split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError) as e:
        raise DataError(f"{path}: unreadable checksum file ({type(e).__name__}: {e})") from e
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DataError(f"{path}: {digest[:80]!r} is not a hex sha256")
    return digest


def _attempt(session: requests.Session, url: str, part: Path, timeout: float) -> int | None:
    """One request: appends to `part` from its current size until the file is complete; returns
    the file's full size when the server told it."""
    offset = part.stat().st_size if part.exists() else 0
    # identity: byte offsets must be those of the file, not of a compressed transfer encoding.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and offset:
                # Nothing left after our offset: .part is complete (verified later) or too long.
                match = re.match(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
                if match and int(match[1]) != offset:
                    part.unlink()
                    raise _Retry(f"{part} longer than the remote file; restarting")
                return int(match[1]) if match else None
            if response.status_code in _RETRYABLE_STATUS:
                raise _Retry(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise DataError(f"{url}: HTTP {response.status_code} {response.reason}")
            if response.status_code == 206:
                if not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                    raise _Retry(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
                mode = "ab"
            else:  # 200: the server ignored the Range header, start over
                offset, mode = 0, "wb"
            total = _total_size(response, offset)
            log.info("downloading %s from byte %d of %s", url, offset, total or "unknown")
            written, last_log = offset, time.monotonic()
            with open(part, mode) as f:
                # read1 returns what has arrived, so an interruption loses no received bytes.
                while chunk := response.raw.read1(_CHUNK):
                    f.write(chunk)
                    written += len(chunk)
                    if time.monotonic() - last_log > 10:
                        log.info("%s: %d / %s bytes", part.name, written, total or "?")
                        last_log = time.monotonic()
            if total is not None and written != total:
                raise _Retry(f"connection closed at byte {written} of {total}")
            return total
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
        raise _Retry(f"{type(e).__name__}: {e}") from e


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, retries: int = 5,
          backoff: float = 1.0, timeout: float = 60.0) -> str:
    """Downloads `url` to `dest`, resuming `<dest>.part`; returns the verified sha256 (hex).

    Args:
      url: http(s) URL.
      dest: final path; written only after the checksum is verified.
      sha256: expected hex digest; when None, the digest is computed and recorded, not checked.
      retries: further attempts after a transient failure (connection error, 5xx, short body).
      backoff: seconds before the first retry, doubled after each.
      timeout: seconds for connecting and between received bytes.
    Raises:
      DataError on a checksum mismatch (the unverifiable `.part` is removed, `dest` is not
      written), a client error (4xx), or when the retries are exhausted (`.part` is kept so a
      later call resumes it).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is None:
            try:
                _check_magic(dest, dest, url)
            except DataError as e:
                raise DataError(f"{e}; it is left from an earlier download: remove it to "
                                "download again") from None
        actual = sha256_file(dest)
        if expected in (None, actual):
            log.info("%s already present (sha256 %s)", dest, actual)
            _record(dest, actual)
            return actual
        raise DataError(f"{dest}: exists with sha256 {actual}, expected {expected}; remove it "
                        f"to download again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        for attempt in range(retries + 1):
            try:
                total = _attempt(session, url, part, timeout)
                break
            except _Retry as e:
                if attempt == retries:
                    kept = (f"partial data kept in {part} for resuming"
                            if part.exists() and part.stat().st_size else "no partial data kept")
                    raise DataError(f"{url}: download failed after {retries + 1} attempts "
                                    f"({e}); {kept}") from e
                delay = backoff * 2 ** attempt
                log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", url, e, delay,
                            attempt + 2, retries + 1)
                time.sleep(delay)
    if expected is None:
        _check_unpinned(url, part, dest, total)
    actual = sha256_file(part)
    if expected is not None and actual != expected:
        part.unlink()
        raise DataError(f"{url}: sha256 mismatch for {dest}: got {actual}, expected {expected} "
                        f"(download discarded)")
    os.replace(part, dest)
    _record(dest, actual)
    log.info("downloaded %s (sha256 %s%s)", dest, actual, "" if expected else ", not pinned")
    return actual


def _check_unpinned(url: str, part: Path, dest: Path, total: int | None) -> None:
    """Without a sha256, the length the server gave and the archive magic are all there is to
    check; a file failing them is discarded (DataError), so a rerun downloads it afresh."""
    problem = None
    if total is None:
        problem = (f"{url}: the server sent no length, so {dest} cannot be checked without a "
                   "sha256 (pin the dataset's sha256, or pass --sha256)")
    elif part.stat().st_size != total:
        problem = f"{url}: got {part.stat().st_size} bytes of {total} for {dest}"
    else:
        try:
            _check_magic(part, dest, url)
        except DataError as e:
            problem = str(e)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DataError(f"{problem}; nothing written")


# Leading bytes of the archive kinds, by file name ending.
_GZIP, _TAR = b"\x1f\x8b", b"ustar"


def _check_magic(file: Path, dest: Path, url: str) -> None:
    """DataError unless `file` starts like the archive `dest`'s name says (gzip or tar)."""
    with open(file, "rb") as f:
        head = f.read(512)
    is_gzip, is_tar = head[:2] == _GZIP, head[257:262] == _TAR
    name = dest.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".gz")):
        ok, kind = is_gzip, "a gzip archive"
    elif name.endswith(".tar"):
        ok, kind = is_tar, "a tar archive"
    else:
        ok, kind = is_gzip or is_tar, "a gzip or tar archive"
    if not ok:
        raise DataError(f"{url}: {dest} is not {kind} (starts with {head[:16]!r}; an HTML error "
                        "page?)")


def _record(dest: Path, digest: str) -> None:
    """Writes `<dest>.sha256` in `sha256sum -c` format (atomically)."""
    with atomic_path(dest.with_name(dest.name + ".sha256")) as tmp:
        tmp.write_text(f"{digest}  {dest.name}\n")
