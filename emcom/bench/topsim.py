"""`python -m emcom.bench topsim`: TopSim against the pair-by-pair reference, in one run.

Prints one JSON object. On --messages (2,000) messages: the median seconds over --repeats
interleaved runs of `emcom.metrics.topographic_similarity` and of the reference (a Python loop over
the N(N-1)/2 pairs calling `editdistance.eval` on the messages' rows, as EGG's
`pdist(messages, editdistance)` does, then `pdist(meanings, "cosine")` and
`scipy.stats.spearmanr`), their ratio and the largest difference of the values; `baseline_tolist_s`
times the same loop on Python lists (a faster variant of the reference, converted once). Then the
peak memory and time of TopSim on --memory-messages (16,384: CelebA's test split) messages. The load
average before and after, and the CPU seconds that other processes used meanwhile (from
/proc/stat, less this process's own), tell how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import time
import tracemalloc

import editdistance
import numpy as np
import scipy.spatial.distance
import scipy.stats

from emcom import metrics

log = logging.getLogger(__name__)


def toy_language(num: int, length: int, vocab: int, dim: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A partly compositional language: word t quantises latent factor t of the meaning.

    Meanings are (num, dim) float32 images of `length` latent factors (plus a little noise);
    messages (num, length) int64. A fifth of the words are replaced by random ones so that TopSim
    is clearly positive but below 1.
    """
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(num, length))
    meanings = latent @ rng.normal(size=(length, dim)) + 0.1 * rng.normal(size=(num, dim))
    edges = np.quantile(latent, np.linspace(0, 1, vocab + 1)[1:-1])
    messages = np.digitize(latent, edges).astype(np.int64)
    noisy = rng.random(messages.shape) < 0.2
    messages[noisy] = rng.integers(0, vocab, size=int(noisy.sum()))
    return messages, meanings.astype(np.float32)


def reference_topsim(messages: np.ndarray, meanings: np.ndarray, *, tolist: bool = False
                     ) -> float:
    """The pair-by-pair reference: editdistance per pair, pdist cosine, scipy spearmanr."""
    num, length = messages.shape
    rows = messages.tolist() if tolist else list(messages)
    message_dist = np.empty(num * (num - 1) // 2)
    k = 0
    for i in range(num):
        for j in range(i + 1, num):
            message_dist[k] = editdistance.eval(rows[i], rows[j]) / length
            k += 1
    meaning_dist = scipy.spatial.distance.pdist(meanings.astype(np.float64), "cosine")
    return float(scipy.stats.spearmanr(message_dist, meaning_dist).statistic)


def _timed(fn) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _busy_cpu_s() -> tuple[float, float]:
    """(CPU seconds all processes have used, those of this one); NaN without /proc/stat."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return float("nan"), own.ru_utime + own.ru_stime
    # user nice system idle iowait irq softirq steal ...: idle, iowait and steal are not work.
    busy = sum(ticks[:3]) + sum(ticks[5:7])
    return busy / os.sysconf("SC_CLK_TCK"), own.ru_utime + own.ru_stime


def _peak_memory(messages: np.ndarray, meanings: np.ndarray) -> dict:
    """TopSim on many messages: its seconds, its peak of traced (Python and numpy) allocations, and
    how much it raised the process's peak resident memory (0 if the process was bigger before)."""
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    seconds, value = _timed(lambda: metrics.topographic_similarity(messages, meanings))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_kib
    pairs = len(messages) * (len(messages) - 1) // 2
    return {"memory_messages": len(messages), "memory_pairs": pairs,
            "memory_topsim_s": seconds, "memory_topsim": value,
            "memory_peak_traced_mib": peak / 2 ** 20,
            "memory_peak_bytes_per_pair": peak / pairs,
            "memory_maxrss_growth_mib": grown_kib / 2 ** 10,
            "memory_inputs_mib": (messages.nbytes + meanings.nbytes) / 2 ** 20}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m emcom.bench topsim", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="N (pairs: N(N-1)/2)")
    parser.add_argument("--length", type=int, default=10, help="message length T")
    parser.add_argument("--vocab", type=int, default=20, help="vocabulary size |W|")
    parser.add_argument("--dim", type=int, default=2048, help="meaning dimension D")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each version")
    parser.add_argument("--memory-messages", type=int, default=16384,
                        help="messages of the memory measurement (0: skip it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.messages < 3:
        parser.error("--messages must be at least 3")
    if args.memory_messages and args.memory_messages < 3:
        parser.error("--memory-messages must be 0 or at least 3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    load_before = os.getloadavg()[0]
    busy_before, own_before = _busy_cpu_s()
    wall_start = time.perf_counter()
    messages, meanings = toy_language(args.messages, args.length, args.vocab, args.dim, args.seed)
    runs = {"topsim": [], "baseline": [], "baseline_tolist": []}
    fns = {"topsim": lambda: metrics.topographic_similarity(messages, meanings),
           "baseline": lambda: reference_topsim(messages, meanings),
           "baseline_tolist": lambda: reference_topsim(messages, meanings, tolist=True)}
    for repeat in range(args.repeats):  # interleaved: a change of load hits every version
        log.info("repeat %d/%d on %d messages", repeat + 1, args.repeats, args.messages)
        for name, fn in fns.items():
            runs[name].append(_timed(fn))
    seconds = {name: statistics.median(s for s, _ in timed) for name, timed in runs.items()}
    values = {name: [v for _, v in timed] for name, timed in runs.items()}
    result = {
        "benchmark": "topsim",
        "messages": args.messages, "pairs": args.messages * (args.messages - 1) // 2,
        "length": args.length, "vocab": args.vocab, "dim": args.dim, "repeats": args.repeats,
        "topsim_s": seconds["topsim"],
        "baseline_s": seconds["baseline"],
        "baseline_tolist_s": seconds["baseline_tolist"],
        "speedup": round(seconds["baseline"] / seconds["topsim"], 2),
        "speedup_vs_tolist": round(seconds["baseline_tolist"] / seconds["topsim"], 2),
        "topsim": values["topsim"][-1], "topsim_baseline": values["baseline"][-1],
        "abs_diff": max(abs(a - b) for a in values["topsim"]
                        for b in values["baseline"] + values["baseline_tolist"]),
    }
    if args.memory_messages:
        log.info("TopSim on %d messages for its memory", args.memory_messages)
        big = toy_language(args.memory_messages, args.length, args.vocab, args.dim, args.seed)
        result.update(_peak_memory(*big))
    busy_after, own_after = _busy_cpu_s()
    result.update({
        "wall_s": time.perf_counter() - wall_start,
        "own_cpu_s": own_after - own_before,
        # Other processes slow the multi-threaded matmul more than the single-threaded loop.
        "other_cpu_s": (busy_after - busy_before) - (own_after - own_before),
        "cpus": os.cpu_count(),
        "load_average_1min_before": load_before, "load_average_1min_after": os.getloadavg()[0],
    })
    print(json.dumps(result))
    return 0
