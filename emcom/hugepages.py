"""Transparent huge pages for XLA's large CPU buffers, through glibc's `glibc.malloc.hugetlb`.

Why: XLA's CPU runtime takes each call's temporaries (hundreds of MB at the paper's sizes) from
malloc, which maps them fresh from the kernel on every call: about 8,000 page faults per training
step at 10 steps per call, and 4 KiB pages under matrices that the dots stream through. With the
tunable set to 1, glibc asks for transparent huge pages on those mappings (`madvise`, the kernel's
usual THP mode). It changes where buffers live, not what is computed. docs/performance.md has the
measurement (`python -m emcom.bench train --paper`, with and without).

glibc reads its tunables once, at process start, so the variable has to be in the environment of
the processes that train: the Snakefile sets it for every job, and `python -m emcom.bench` starts
itself again with it. A value the user already gives wins: `GLIBC_TUNABLES=glibc.malloc.hugetlb=0`
turns it off. Where glibc is older than 2.35, or THP is `never`, the variable has no effect.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

VARIABLE = "GLIBC_TUNABLES"
TUNABLE = "glibc.malloc.hugetlb"


def with_huge_pages(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` whose GLIBC_TUNABLES asks for huge pages, unless it already sets the
    tunable (to any value)."""
    env = dict(environ)
    if requested(env) is None:
        tunables = [t for t in env.get(VARIABLE, "").split(":") if t]
        env[VARIABLE] = ":".join([*tunables, f"{TUNABLE}=1"])
    return env


def requested(environ: Mapping[str, str] = os.environ) -> str | None:
    """The tunable's value in `environ` (this process's: what glibc read at its start), or None."""
    for t in environ.get(VARIABLE, "").split(":"):
        name, _, value = t.partition("=")
        if name == TUNABLE:
            return value
    return None


def restart_with_huge_pages(module: str, argv: list[str]) -> None:
    """Replaces this process by `python -m module argv` with the tunable set, unless the environment
    already sets it. Call before anything allocates much (before importing jax)."""
    if requested() is None and sys.platform.startswith("linux"):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", module, *argv],
                  with_huge_pages(os.environ))
