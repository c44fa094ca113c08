"""Language metrics: topographic similarity and the edit distance between speakers.

Definitions (paper §2.4/§3.2, `docs/evaluation.md`):
- message distance: Levenshtein distance divided by the message length T;
- meaning distance: cosine distance of the inputs, or, for attributes, the mean over attributes
  of the cosine distance of each attribute's one-hot code;
- topographic similarity (TopSim): Spearman correlation of the two over all pairs of examples.

Pairs are enumerated in blocks of rows of the upper triangle (`scipy.spatial.distance.pdist`'s
condensed order): meaning similarities are one matmul per block, message distances one
`rapidfuzz.process.cdist` (C++ Levenshtein) per block. TopSim never holds all pairs: the message
distances take only the T + 1 values 0..T, so their ranks come from a histogram, and the meaning
distances are ranked exactly window by window of their values (`_WINDOW_PAIRS` pairs at once).
Paired distances (`levenshtein`) are a numpy Wagner-Fischer DP vectorised over the pairs.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Mapping

import numpy as np
import rapidfuzz.process
from rapidfuzz.distance import Levenshtein

log = logging.getLogger(__name__)

# Message pairs per DP block: uint8 cell arrays of this length stay in the CPU cache.
_PAIR_BLOCK = 1 << 15
# Pairs per block of rows (bounds the (rows, N) similarity and edit-distance blocks).
_ROW_BLOCK_ELEMENTS = 1 << 21
# TopSim's memory: pairs whose (meaning, message) distance codes are held at once, 8 bytes each.
# More pairs than this cost one more pass over all pairs per window of this many.
_WINDOW_PAIRS = 1 << 25
# Sorted codes turned into rank sums at once: the temporaries stay in the CPU cache.
_CHUNK = 1 << 16
# Meaning-distance bins that windows are made of: float64 bits >> 44 (sign, exponent and 8
# mantissa bits), so equal distances share a bin; distances lie in [0, 2], i.e. bins 0..0x40000.
_BIN_SHIFT = 44
_BINS = 0x40001


def _check_messages(messages: Any, name: str = "messages", ndim: int = 2) -> np.ndarray:
    messages = np.asarray(messages)
    if messages.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {messages.shape}")
    if not np.issubdtype(messages.dtype, np.integer):
        raise ValueError(f"{name} must be integer words, got dtype {messages.dtype}")
    if messages.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one word per message")
    if messages.shape[-1] > 254:
        raise ValueError(f"{name}: messages longer than 254 words are not supported (uint8 DP)")
    return messages


def levenshtein(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Levenshtein distances between paired fixed-length messages, vectorised over the pairs.

    Args:
      a: (P, T) integer words.
      b: (P, U) integer words.
    Returns:
      (P,) int64 edit distances (unit cost insertions, deletions and substitutions).
    """
    a = _check_messages(a, "a")
    b = _check_messages(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must hold the same number of messages: {a.shape} vs {b.shape}")
    out = np.empty(a.shape[0], dtype=np.int64)
    for start in range(0, a.shape[0], _PAIR_BLOCK):
        stop = start + _PAIR_BLOCK
        out[start:stop] = _levenshtein_block(a[start:stop], b[start:stop])
    return out


def _levenshtein_block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wagner-Fischer DP for one block; (P, T), (P, U) -> (P,) uint8 distances."""
    num, t_len = a.shape
    u_len = b.shape[1]
    # Pair axis last and contiguous, every buffer preallocated: each DP cell is a few in-place
    # ufunc calls over a cache-sized vector.
    a_t = np.ascontiguousarray(a.T)  # (T, P)
    b_t = np.ascontiguousarray(b.T)  # (U, P)
    prev = np.repeat(np.arange(u_len + 1, dtype=np.uint8)[:, None], num, axis=1)  # (U+1, P)
    cur = np.empty_like(prev)
    differ = np.empty(num, dtype=bool)
    substitute = np.empty(num, dtype=np.uint8)
    for i in range(1, t_len + 1):
        cur[0] = i
        for j in range(1, u_len + 1):
            np.minimum(prev[j], cur[j - 1], out=cur[j])
            cur[j] += 1  # deletion or insertion
            np.not_equal(a_t[i - 1], b_t[j - 1], out=differ)
            np.add(prev[j - 1], differ, out=substitute)  # substitution or match
            np.minimum(cur[j], substitute, out=cur[j])
        prev, cur = cur, prev
    return prev[u_len].copy()


def edit_distances(messages: Any, *, normalise: bool = True) -> np.ndarray:
    """Pairwise Levenshtein distances of all message pairs, in `pdist`'s condensed order.

    Args:
      messages: (N, T) integer words.
      normalise: divide by T (the paper's normalised distance).
    Returns:
      (N*(N-1)/2,) float64 distances (uint8 raw counts when normalise=False).
    """
    messages = _check_messages(messages)
    blocks = _pair_blocks(messages.shape[0], words=_as_strings(messages))
    raw = np.concatenate([np.empty(0, np.uint8), *(edits for _, edits in blocks)])
    return raw / messages.shape[1] if normalise else raw


def _as_strings(messages: np.ndarray) -> list[str]:
    """(N, T) integer words -> N strings of one character per word.

    rapidfuzz reads a string's buffer as it is; a list of ints it converts element by element, for
    every block again.
    """
    words = np.unique(messages, return_inverse=True)[1].reshape(messages.shape)
    return ["".join(map(chr, row)) for row in words.tolist()]


def _workers() -> int:
    # The CPUs this process may use (a SLURM job's share), not the whole machine's.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pair_blocks(n: int, units: np.ndarray | None = None, words: list[str] | None = None
                 ) -> Iterator[tuple[np.ndarray | None, np.ndarray | None]]:
    """The pairs i < j of n examples, block of rows by block of rows, in `pdist`'s condensed order.

    Yields per block (similarities, edit distances) of its pairs: the float32 dot products of the
    rows of `units` and the uint8 Levenshtein distances of `words` (None for what is not given).
    """
    rows = max(1, _ROW_BLOCK_ELEMENTS // max(n, 1))
    for r0 in range(0, n - 1, rows):
        r1 = min(r0 + rows, n - 1)
        upper = np.arange(r0 + 1, n) > np.arange(r0, r1)[:, None]  # (rows, N - r0 - 1): j > i
        sims = edits = None
        if units is not None:
            sims = (units[r0:r1] @ units[r0 + 1:].T)[upper]
        if words is not None:
            edits = rapidfuzz.process.cdist(words[r0:r1], words[r0 + 1:],
                                            scorer=Levenshtein.distance, dtype=np.uint8,
                                            workers=_workers())[upper]
        yield sims, edits


def one_hot_attributes(codes: Any, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Integer-coded attributes (N, A) -> {name: (N, K_a) one-hot float32}, K_a = max code + 1.

    Binary attributes (CelebA's 40) become 2-way one-hots, so that the per-attribute cosine
    distance is 0 for equal values and 1 otherwise.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"attribute codes must be an (N, A) integer array, got {codes.dtype} "
                         f"{codes.shape}")
    if codes.size and codes.min() < 0:
        raise ValueError("attribute codes must be non-negative")
    names = list(names) if names is not None else [str(a) for a in range(codes.shape[1])]
    if len(names) != codes.shape[1]:
        raise ValueError(f"{len(names)} attribute names for {codes.shape[1]} attribute columns")
    out = {}
    for name, column in zip(names, codes.T):
        depth = max(int(column.max(initial=0)) + 1, 2)
        out[name] = np.eye(depth, dtype=np.float32)[column]
    return out


def _unit_meanings(meanings: Any, n: int) -> tuple[np.ndarray, int]:
    """Meanings -> ((N, F) float32 rows whose Gram matrix sums per-attribute cosines, #attributes).

    An (N, F) array is one block; a dict holds one (N, F_a) block per attribute. Each block is
    L2-normalised per row in float64 and the blocks are concatenated, so that
    <x_i, x_j> = sum_a cos_a(i, j). The Gram matrix is taken in float32 (the features are float32;
    2x faster than float64): distances agree with float64 `pdist` to ~1e-7 and TopSim to ~1e-9
    (docs/evaluation.md).
    """
    blocks = meanings if isinstance(meanings, Mapping) else {"meaning": meanings}
    if not blocks:
        raise ValueError("meanings dict is empty")
    units = []
    for name, block in blocks.items():
        block = np.asarray(block)
        if block.ndim == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[0] != n:
            raise ValueError(f"meanings[{name!r}] must have shape ({n}, F), got {block.shape}")
        unit = np.empty(block.shape, dtype=np.float32)
        # A few rows at a time, so that no float64 copy of all N rows exists (~1 GB at N = 16k).
        rows = max(1, _ROW_BLOCK_ELEMENTS // max(block.shape[1], 1))
        for r0 in range(0, n, rows):
            part = block[r0:r0 + rows].astype(np.float64)
            if not np.all(np.isfinite(part)):
                raise ValueError(f"meanings[{name!r}] holds NaN or infinite values")
            norms = np.linalg.norm(part, axis=1, keepdims=True)
            if np.any(norms == 0):
                raise ValueError(f"meanings[{name!r}] has all-zero rows: cosine distance undefined")
            unit[r0:r0 + rows] = part / norms
        units.append(unit)
    return (np.concatenate(units, axis=1) if len(units) > 1 else units[0]), len(units)


def meaning_distances(meanings: Any, n: int | None = None) -> np.ndarray:
    """Condensed cosine distances (N*(N-1)/2,) float64 of an (N, F) array or a dict of them.

    Rows are normalised in float64, their dot products taken in float32.

    A dict gives the mean over its entries of the per-entry cosine distance.
    """
    if n is None:
        first = next(iter(meanings.values())) if isinstance(meanings, Mapping) else meanings
        n = np.asarray(first).shape[0]
    units, num_blocks = _unit_meanings(meanings, n)
    return np.concatenate([np.empty(0), *(_cosine_distances(sims, num_blocks)
                                          for sims, _ in _pair_blocks(n, units))])


def _cosine_distances(sims: np.ndarray, num_blocks: int) -> np.ndarray:
    """float32 sums of per-block cosine similarities -> float64 mean cosine distances."""
    # Clip the rounding excess outside [0, 2].
    return np.clip(1.0 - sims.astype(np.float64) / num_blocks, 0.0, 2.0)


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
        attributes of the per-attribute cosine distance; see `one_hot_attributes`).
      max_messages: evaluate on a random subset of this many examples (None: all N).
      rng: generator or seed for the subset (only used when subsampling).
    Returns:
      TopSim in [-1, 1]; NaN when either distance is constant over the pairs (undefined).
    """
    messages = _check_messages(messages)
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
    messages = _check_messages(messages, ndim=3)
    n = messages.shape[1]
    if n < 3:
        raise ValueError(f"topographic similarity needs at least 3 messages, got {n}")
    units, num_blocks = _unit_meanings(meanings, n)
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
    for sims, _ in _pair_blocks(n, units):
        hist += np.bincount(_bins(_cosine_distances(sims, num_blocks)), minlength=_BINS)
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
    words = _as_strings(messages)
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
    for sims, edits in _pair_blocks(units.shape[0], units, words):
        if select:
            bins = _bins(_cosine_distances(sims, num_blocks))
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
        y = _cosine_distances(_flip((chunk >> np.uint64(8)).astype(np.uint32)).view(np.float32),
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
    messages = _check_messages(messages, ndim=3)
    num_speakers, n, t_len = messages.shape
    if num_speakers < 2:
        raise ValueError(f"speaker edit distance needs at least 2 speakers, got {num_speakers}")
    first, second = np.triu_indices(num_speakers, k=1)
    a = messages[first].reshape(-1, t_len)  # (pairs * N, T)
    b = messages[second].reshape(-1, t_len)
    return float(levenshtein(a, b).mean() / t_len)
