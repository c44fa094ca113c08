"""Language metrics: topographic similarity and the edit distance between speakers.

Topographic similarity (TopSim, paper §2.4/§3.2, `docs/evaluation.md`): the Spearman correlation
of the message and meaning distances of `emcom.distances` over all pairs of examples.

TopSim never holds all pairs: it reads them block by block (`distances.pair_blocks`). The message
distances take only the T + 1 values 0..T, so their ranks come from a histogram, and the meaning
distances are ranked exactly window by window of their values (`_WINDOW_PAIRS` pairs at once).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

from emcom.distances import (as_strings, check_messages, cosine_distances, levenshtein,
                             pair_blocks, unit_meanings)

log = logging.getLogger(__name__)

# TopSim's memory: pairs whose (meaning, message) distance codes are held at once, 8 bytes each.
# More pairs than this cost one more pass over all pairs per window of this many.
_WINDOW_PAIRS = 1 << 25
# Sorted codes turned into rank sums at once: the temporaries stay in the CPU cache.
_CHUNK = 1 << 16
# Meaning-distance bins that windows are made of: float64 bits >> 44 (sign, exponent and 8
# mantissa bits), so equal distances share a bin; distances lie in [0, 2], i.e. bins 0..0x40000.
_BIN_SHIFT = 44
_BINS = 0x40001


def _flip(bits: np.ndarray) -> np.ndarray:
    """float32 bits <-> uint32 keys whose unsigned order is the floats' descending order.

    Its own inverse: negative floats keep their bits, non-negative ones have all but the sign
    bit flipped.
    """
    return bits ^ (((bits >> 31) - np.uint32(1)) & np.uint32(0x7FFFFFFF))


def topographic_similarity(messages: Any, meanings: Any, *, max_messages: int | None = None,
                           rng: np.random.Generator | int | None = None) -> float:
    """Spearman correlation between message edit distances and meaning cosine distances.

    Args:
      messages: (N, T) integer words.
      meanings: (N, F) array (cosine distance), or a dict {attribute: (N, F_a)} (mean over
        attributes of the per-attribute cosine distance; see `distances.one_hot_attributes`).
      max_messages: evaluate on a random subset of this many examples (None: all N).
      rng: generator or seed for the subset (only used when subsampling).
    Returns:
      TopSim in [-1, 1]; NaN when either distance is constant over the pairs (undefined).
    """
    messages = check_messages(messages)
    n = messages.shape[0]
    if max_messages is not None and max_messages < n:
        if max_messages < 3:
            raise ValueError(f"max_messages must be at least 3, got {max_messages}")
        index = np.sort(np.random.default_rng(rng).choice(n, size=max_messages, replace=False))
        messages = messages[index]
        meanings = ({k: np.asarray(v)[index] for k, v in meanings.items()}
                    if isinstance(meanings, Mapping) else np.asarray(meanings)[index])
    return float(topographic_similarities(messages[None], meanings)[0])


def topographic_similarities(messages: Any, meanings: Any) -> np.ndarray:
    """TopSim of several speakers' messages for the same inputs; the meaning side is shared.

    Args:
      messages: (S, N, T) integer words of S speakers.
      meanings: as in `topographic_similarity`, for the N inputs.
    Returns:
      (S,) float64 TopSim per speaker (NaN where a distance is constant).
    """
    messages = check_messages(messages, ndim=3)
    n = messages.shape[1]
    if n < 3:
        raise ValueError(f"topographic similarity needs at least 3 messages, got {n}")
    units, num_blocks = unit_meanings(meanings, n)
    windows = _windows(units, num_blocks)
    return np.array([_topsim(m, units, num_blocks, windows) for m in messages])


def _windows(units: np.ndarray, num_blocks: int) -> list[tuple[int, int, int]]:
    """(first bin, end bin, pairs) of consecutive meaning-distance bins, ascending, each window
    of at most `_WINDOW_PAIRS` pairs unless it is a single bin."""
    n = units.shape[0]
    size = n * (n - 1) // 2
    if size <= _WINDOW_PAIRS:
        return [(0, _BINS, size)]  # no counting pass
    hist = np.zeros(_BINS, dtype=np.int64)
    for sims, _ in pair_blocks(n, units):
        hist += np.bincount(_bins(cosine_distances(sims, num_blocks)), minlength=_BINS)
    windows, lo, count = [], 0, 0
    for b in np.flatnonzero(hist):
        if count and count + hist[b] > _WINDOW_PAIRS:
            windows.append((lo, b, count))
            lo, count = b, 0
        count += int(hist[b])
    return windows + [(lo, _BINS, count)]


def _bins(distances: np.ndarray) -> np.ndarray:
    return distances.view(np.uint64) >> np.uint64(_BIN_SHIFT)


def _topsim(messages: np.ndarray, units: np.ndarray, num_blocks: int,
            windows: list[tuple[int, int, int]]) -> float:
    """Spearman correlation of one speaker's edit distances with the meaning distances.

    Pearson of the centred ranks: the T + 1 edit distances' ranks come from their histogram;
    the meaning ranks from sorting each window's pairs, so that only the sums of the meaning ranks
    per edit distance are kept.
    """
    n, length = messages.shape
    words = as_strings(messages)
    centre = (n * (n - 1) // 2 + 1) / 2
    hist = np.zeros(length + 1)  # pairs per edit distance
    rank_sums = np.zeros(length + 1)  # their sum of centred meaning ranks
    sum_yy, below = 0.0, 0
    for window in windows:  # the codes of one window die before the next one's are made
        counts, sums, squares = _window_sums(_sorted_codes(units, num_blocks, words, window,
                                                           len(windows) > 1),
                                             num_blocks, length, below - centre)
        hist += counts
        rank_sums += sums
        sum_yy += squares
        below += window[2]
    ranks_x = np.cumsum(hist) - (hist - 1) / 2 - centre  # mean rank of each edit distance's ties
    denom = np.sqrt(float(np.dot(hist, ranks_x ** 2)) * sum_yy)
    if denom == 0:
        log.warning("topographic similarity undefined: constant distances over %d pairs",
                    int(hist.sum()))
        return float("nan")
    return float(np.dot(rank_sums, ranks_x)) / denom


def _sorted_codes(units: np.ndarray, num_blocks: int, words: list[str],
                  window: tuple[int, int, int], select: bool) -> np.ndarray:
    """The window's pairs as sorted uint64 codes, flipped similarity << 8 | edit distance: one
    sort orders them by meaning distance and keeps their edit distances (~4x faster than an
    argsort). `select`: keep only the pairs whose meaning distance is in the window's bins."""
    lo, hi, count = window
    codes, filled = np.empty(count, dtype=np.uint64), 0
    for sims, edits in pair_blocks(units.shape[0], units, words):
        if select:
            bins = _bins(cosine_distances(sims, num_blocks))
            keep = (bins >= lo) & (bins < hi)
            sims, edits = sims[keep], edits[keep]
        block = codes[filled:filled + sims.size]
        np.left_shift(_flip(sims.view(np.uint32)), 8, out=block, dtype=np.uint64)
        block |= edits
        filled += sims.size
    if filled != count:
        raise RuntimeError("the meaning distances changed between passes over the pairs")
    codes.sort()
    return codes


def _window_sums(codes: np.ndarray, num_blocks: int, length: int, offset: float
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Sorted codes (flipped similarity << 8 | edit distance) of one window -> per edit distance
    (pairs, sum of their centred meaning ranks), and the sum of squared centred meaning ranks.

    Pairs of equal meaning distance share their mean rank, `offset` + the mean of their 1-based
    positions in `codes`. A tie group may span chunks (never windows): the open group's pairs per
    edit distance are carried to the next chunk until it closes.
    """
    hist, rank_sums, sum_yy = np.zeros(length + 1), np.zeros(length + 1), 0.0
    open_start, open_counts, last = 0, np.zeros(length + 1), None
    for c0 in range(0, codes.size, _CHUNK):
        chunk = codes[c0:c0 + _CHUNK]
        y = cosine_distances(_flip((chunk >> np.uint64(8)).astype(np.uint32)).view(np.float32),
                              num_blocks)
        edits = (chunk & np.uint64(0xFF)).astype(np.intp)
        hist += np.bincount(edits, minlength=length + 1)
        # Ties of the distance, not of the similarity: distinct similarities may round or clip
        # to the same distance.
        begins = c0 + 1 + np.flatnonzero(y[1:] != y[:-1])  # where tie groups begin
        if last is not None and y[0] != last:
            begins = np.concatenate([[c0], begins])
        if begins.size:  # groups close: the open one and all begun here but the last
            starts = np.concatenate([[open_start], begins])
            rank = offset + (starts[:-1] + starts[1:] + 1) / 2
            inside = np.diff(np.concatenate([[c0], begins]))  # their pairs in this chunk
            rank_sums += rank[0] * open_counts + np.bincount(
                edits[:begins[-1] - c0], weights=np.repeat(rank, inside), minlength=length + 1)
            sum_yy += float((np.diff(starts) * rank ** 2).sum())
            open_start, open_counts = int(begins[-1]), 0
        open_counts = open_counts + np.bincount(edits[max(open_start - c0, 0):],
                                                minlength=length + 1)
        last = y[-1]
    rank = offset + (open_start + codes.size + 1) / 2
    rank_sums += rank * open_counts
    sum_yy += (codes.size - open_start) * rank ** 2
    return hist, rank_sums, sum_yy


def speaker_edit_distance(messages: Any) -> float:
    """Mean normalised edit distance between the messages of every pair of speakers per input.

    Args:
      messages: (S, N, T) integer words of S >= 2 speakers for the same N inputs.
    Returns:
      the mean over the S(S-1)/2 speaker pairs and the N inputs of Levenshtein / T.
    """
    messages = check_messages(messages, ndim=3)
    num_speakers, n, t_len = messages.shape
    if num_speakers < 2:
        raise ValueError(f"speaker edit distance needs at least 2 speakers, got {num_speakers}")
    first, second = np.triu_indices(num_speakers, k=1)
    a = messages[first].reshape(-1, t_len)  # (pairs * N, T)
    b = messages[second].reshape(-1, t_len)
    return float(levenshtein(a, b).mean() / t_len)
