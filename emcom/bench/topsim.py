"""`python -m emcom.bench topsim`: vectorised TopSim against a pair-by-pair loop, in one run.

Prints one JSON object: the seconds of `emcom.metrics.topographic_similarity` (best of --repeats)
and of the reference computation (a Python loop over the N(N-1)/2 pairs calling
`editdistance.eval` on the messages' rows, as EGG's `pdist(messages, editdistance)` does, then
`pdist(meanings, "cosine")` and `scipy.stats.spearmanr`), their ratio, both values and their
difference. `baseline_tolist_s` times the same loop on Python lists (a faster variant of the
reference, converted once), so the speed-up is also stated against the best loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

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


def _best_time(fn, repeats: int) -> tuple[float, float]:
    """(best seconds over `repeats` calls, the value of the last call)."""
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m emcom.bench topsim", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="N (pairs: N(N-1)/2)")
    parser.add_argument("--length", type=int, default=10, help="message length T")
    parser.add_argument("--vocab", type=int, default=20, help="vocabulary size |W|")
    parser.add_argument("--dim", type=int, default=2048, help="meaning dimension D")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the fast version")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="timed runs of the loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.messages < 3:
        parser.error("--messages must be at least 3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    messages, meanings = toy_language(args.messages, args.length, args.vocab, args.dim, args.seed)
    log.info("timing the vectorised TopSim on %d messages", args.messages)
    fast_s, fast = _best_time(lambda: metrics.topographic_similarity(messages, meanings),
                              args.repeats)
    log.info("timing the pair-by-pair reference (%d pairs)",
             args.messages * (args.messages - 1) // 2)
    base_s, base = _best_time(lambda: reference_topsim(messages, meanings), args.baseline_repeats)
    list_s, base_list = _best_time(lambda: reference_topsim(messages, meanings, tolist=True),
                                   args.baseline_repeats)
    result = {
        "benchmark": "topsim",
        "messages": args.messages, "pairs": args.messages * (args.messages - 1) // 2,
        "length": args.length, "vocab": args.vocab, "dim": args.dim,
        "vectorised_s": fast_s,
        "baseline_s": base_s,
        "baseline_tolist_s": list_s,
        "speedup": round(base_s / fast_s, 2),
        "speedup_vs_tolist": round(list_s / fast_s, 2),
        "topsim": fast, "topsim_baseline": base,
        "abs_diff": abs(fast - base), "abs_diff_tolist": abs(fast - base_list),
        # Other processes slow the multi-threaded matmul more than the single-threaded loop.
        "load_average_1min": os.getloadavg()[0],
    }
    print(json.dumps(result))
    return 0
