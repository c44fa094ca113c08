"""How busy the machine was around a benchmark, so that a reader can judge a noisy measurement.

    before = load.snapshot()
    ...                                   # the measurement
    print(json.dumps({..., **load.since(before)}))

`since` gives the 1-minute load average before and after, the wall time, and the CPU time that
other processes used meanwhile: the machine's busy time from /proc/stat (Linux; NaN elsewhere)
minus this process's own CPU time (its threads and waited-for children, `os.times`).
`other_cpu_cores` is that time over the wall time: 1.0 means one core was taken away on average.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple


class Snapshot(NamedTuple):
    wall: float     # perf_counter seconds
    load1: float    # 1-minute load average
    busy_s: float   # CPU seconds all processes spent busy since boot (NaN without /proc/stat)
    own_s: float    # CPU seconds of this process and its waited-for children


def _busy_seconds() -> float:
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    # inside user/nice, and idle + iowait is the time no process ran.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def snapshot() -> Snapshot:
    t = os.times()
    return Snapshot(time.perf_counter(), os.getloadavg()[0], _busy_seconds(),
                    t.user + t.system + t.children_user + t.children_system)


def since(before: Snapshot) -> dict[str, float]:
    """The load figures from `before` to now (rounded to 0.01)."""
    now = snapshot()
    wall = now.wall - before.wall
    other = (now.busy_s - before.busy_s) - (now.own_s - before.own_s)
    figures = {"load_before": before.load1, "load_after": now.load1, "wall_s": wall,
               "cpu_count": os.cpu_count() or 0, "other_cpu_s": other,
               "other_cpu_cores": other / wall if wall > 0 else float("nan")}
    return {k: round(v, 2) for k, v in figures.items()}
