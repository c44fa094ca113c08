"""Safe extraction of (gzipped) tar archives.

Every member is checked before anything is written: absolute paths, `..` components, links
(symbolic or hard) that resolve outside the target, and device/FIFO members are refused with a
DataError naming the member. Extraction then also goes through Python's `filter="data"`, which
enforces the same rules (belt and braces) and drops unsafe permission bits. An archive with more
than `max_members` members or more than `max_bytes` of (declared, uncompressed) content is refused
before the member that crosses the limit is written (a tar or gzip bomb, or the wrong file).
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from emcom.data.errors import DataError
from emcom.provenance import remove_leftovers

log = logging.getLogger(__name__)

# Generous for the real BYOL archives (~10 GB, a few thousand shards).
MAX_MEMBERS = 100_000
MAX_BYTES = 64 << 30


def check_member(archive: str | os.PathLike, member: tarfile.TarInfo) -> None:
    """Raises DataError if `member` could write outside the extraction folder or is not a plain
    file, folder or inside-pointing link."""
    where = f"{archive}: unsafe member {member.name!r}"
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{where}: absolute path")
    if ".." in Path(name).parts or ".." in name.replace("\\", "/").split("/"):
        raise DataError(f"{where}: path contains '..'")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise DataError(f"{where}: device or FIFO")
    if member.issym() or member.islnk():
        link = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, link))
        if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise DataError(f"{where}: link to {link!r} points outside the target")
    elif not (member.isfile() or member.isdir()):
        raise DataError(f"{where}: unsupported member type {member.type!r}")


def extract_into(archive: str | os.PathLike, folder: str | os.PathLike,
                 max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES) -> Path:
    """Extracts `archive` into the existing `folder` (one pass over the stream); returns `folder`.

    The caller owns `folder` and removes it on failure; `extract` is the atomic wrapper.
    """
    archive, folder = Path(archive), Path(folder)
    count = size = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                check_member(archive, member)
                size += member.size
                if count + 1 > max_members:
                    raise DataError(f"{archive}: more than {max_members} members (max_members)")
                if size > max_bytes:
                    raise DataError(f"{archive}: member {member.name!r} takes the content over "
                                    f"{max_bytes} bytes (max_bytes)")
                try:
                    tar.extract(member, folder, filter="data")
                except tarfile.FilterError as e:
                    raise DataError(f"{archive}: unsafe member {member.name!r}: {e}") from e
                count += 1
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{archive}: truncated or corrupt archive after {count} members: {e}") from e
    if count == 0:
        raise DataError(f"{archive}: archive is empty")
    log.info("extracted %d members of %s", count, archive)
    return folder


def extract(archive: str | os.PathLike, target: str | os.PathLike,
            max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES) -> Path:
    """Extracts `archive` into `target` (absent or empty) atomically: into a temporary folder next
    to it first, renamed onto `target` only when every member is extracted."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{target}: extraction target exists and is not an empty folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)  # the folder of an extraction killed before its rename
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extract-"))
    try:
        extract_into(archive, tmp, max_members, max_bytes)
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
