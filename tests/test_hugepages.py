"""emcom.hugepages: the GLIBC_TUNABLES merge (a user's setting wins) and the restart of a module
with it; tests/test_workflow.py checks that the pipeline's jobs start with it."""

from __future__ import annotations

import sys

import pytest

from emcom import hugepages

ON = "glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("given, expected", [
    (None, ON),
    ("", ON),
    ("glibc.malloc.arena_max=2", f"glibc.malloc.arena_max=2:{ON}"),
    ("glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0"),  # the user's choice wins
    ("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2",
     "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"),
])
def test_with_huge_pages_adds_the_tunable_unless_set(given, expected):
    environ = {"PATH": "/bin"} if given is None else {"PATH": "/bin", "GLIBC_TUNABLES": given}
    before = dict(environ)
    env = hugepages.with_huge_pages(environ)
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": expected}
    assert environ == before  # a copy: the caller's mapping is not changed


@pytest.mark.parametrize("tunables, value", [
    (None, None), ("glibc.malloc.arena_max=2", None), (ON, "1"),
    ("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0", "0"),
])
def test_requested_reads_the_tunable(tunables, value):
    environ = {} if tunables is None else {"GLIBC_TUNABLES": tunables}
    assert hugepages.requested(environ) == value


def test_restart_execs_the_module_with_the_tunable(monkeypatch):
    calls = []
    monkeypatch.setattr(hugepages.os, "execve", lambda *args: calls.append(args))
    monkeypatch.setattr(hugepages.sys, "platform", "linux")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    hugepages.restart_with_huge_pages("emcom.bench", ["train", "--paper"])
    [(executable, argv, env)] = calls
    assert executable == sys.executable
    assert argv == [sys.executable, "-m", "emcom.bench", "train", "--paper"]
    assert env["GLIBC_TUNABLES"] == ON

    calls.clear()  # started with it (or with the user's own value): no second start
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")
    hugepages.restart_with_huge_pages("emcom.bench", ["train"])
    assert calls == []
