"""Atomic file writes and the provenance record every stage writes next to its outputs."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from emcom import hugepages

PACKAGES = (
    "emcom", "jax", "jaxlib", "dm-haiku", "optax", "numpy", "scipy", "pandas", "pyarrow",
    "editdistance", "matplotlib", "protobuf", "crc32c", "snakemake",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that can change a result (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(config: Any = None, **extra: Any) -> dict[str, Any]:
    """The record stored beside a stage's outputs: its config slice, package versions, command,
    and the glibc tunables the process started with (they can change its speed, not its values)."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return {"config": config, "versions": package_versions(), "argv": sys.argv,
            "glibc_tunables": os.environ.get(hugepages.VARIABLE), **extra}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yields a temporary path in the same folder; renames it onto `path` only on success.

    A crash or exception leaves `path` untouched (old content or absent) and removes the temporary
    file, so Snakemake never sees a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            # mkstemp creates 0600; give the output the permissions a plain open() would.
            tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Removes the temporaries (`.<name>.*`: `atomic_path` files, staging, spool and extraction
    folders) that a writer of `path` killed before its rename left beside it; returns them.

    Only for outputs with a single writer at a time (Snakemake's lock guarantees it for a job's).
    """
    path = Path(path)
    removed = sorted(path.parent.glob(f".{glob.escape(path.name)}.*"))
    for leftover in removed:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as indented JSON, atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_provenance(output: str | os.PathLike, config: Any = None, **extra: Any) -> Path:
    """Writes `<output>.provenance.json` beside `output` and returns its path."""
    output = Path(output)
    target = output.with_name(output.name + ".provenance.json")
    write_json(target, provenance(config, **extra))
    return target
