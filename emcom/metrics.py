"""Language metrics: topographic similarity and the edit distance between speakers.

Definitions (paper §2.4/§3.2, `docs/evaluation.md`):
- message distance: Levenshtein distance divided by the message length T;
- meaning distance: cosine distance of the inputs, or, for attributes, the mean over attributes
  of the cosine distance of each attribute's one-hot code;
- topographic similarity (TopSim): Spearman correlation of the two over all pairs of examples.

Everything is vectorised in numpy over pairs: a Wagner-Fischer DP whose cells are arrays over a
block of message pairs, blocks of rows of the condensed (upper-triangle, row-major, as
`scipy.spatial.distance.pdist`) pair order processed in turn to bound memory.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Mapping

import numpy as np

log = logging.getLogger(__name__)

# Message pairs per DP block: uint8 cell arrays of this length stay in the CPU cache.
_PAIR_BLOCK = 1 << 15
# Meaning-matrix rows per block of the cosine distances (bounds the (rows, N) similarity block).
_ROW_BLOCK_ELEMENTS = 1 << 19


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


def _pair_blocks(n: int, block: int) -> Iterator[tuple[int, int, int]]:
    """Consecutive row ranges [r0, r1) of the condensed pair order with about `block` pairs each.

    Yields (r0, r1, offset): row i < n-1 owns pairs (i, j > i), stored from condensed `offset` on.
    """
    r0, offset = 0, 0
    while r0 < n - 1:
        r1, pairs = r0, 0
        while r1 < n - 1 and (pairs == 0 or pairs + (n - 1 - r1) <= block):
            pairs += n - 1 - r1
            r1 += 1
        yield r0, r1, offset
        r0, offset = r1, offset + pairs


def _block_indices(n: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the condensed pairs owned by rows [r0, r1): each (pairs,) int64."""
    counts = n - 1 - np.arange(r0, r1)
    rows = np.repeat(np.arange(r0, r1), counts)
    starts = np.cumsum(counts) - counts
    cols = np.arange(counts.sum()) - np.repeat(starts, counts) + rows + 1
    return rows, cols


def edit_distances(messages: Any, *, normalise: bool = True) -> np.ndarray:
    """Pairwise Levenshtein distances of all message pairs, in `pdist`'s condensed order.

    Args:
      messages: (N, T) integer words.
      normalise: divide by T (the paper's normalised distance).
    Returns:
      (N*(N-1)/2,) float64 distances (uint8 raw counts when normalise=False).
    """
    messages = _check_messages(messages)
    raw = _condensed_edit_counts(messages)
    return raw / messages.shape[1] if normalise else raw


def _condensed_edit_counts(messages: np.ndarray) -> np.ndarray:
    """(N, T) -> (N*(N-1)/2,) uint8 raw edit distances."""
    n = messages.shape[0]
    # Words only enter through equality tests: a compact dtype makes the gathers cheaper.
    words = np.unique(messages, return_inverse=True)[1].reshape(messages.shape)
    words = words.astype(np.uint8 if words.max(initial=0) < 256 else np.int32)
    out = np.empty(n * (n - 1) // 2, dtype=np.uint8)
    for r0, r1, offset in _pair_blocks(n, _PAIR_BLOCK):
        rows, cols = _block_indices(n, r0, r1)
        out[offset:offset + rows.size] = _levenshtein_block(words[rows], words[cols])
    return out


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
    """Meanings -> ((N, F) float64 rows whose Gram matrix sums per-attribute cosines, #attributes).

    An (N, F) array is one block; a dict holds one (N, F_a) block per attribute. Each block is
    L2-normalised per row and the blocks are concatenated, so that <x_i, x_j> = sum_a cos_a(i, j).
    """
    blocks = meanings if isinstance(meanings, Mapping) else {"meaning": meanings}
    if not blocks:
        raise ValueError("meanings dict is empty")
    units = []
    for name, block in blocks.items():
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[0] != n:
            raise ValueError(f"meanings[{name!r}] must have shape ({n}, F), got {block.shape}")
        if not np.all(np.isfinite(block)):
            raise ValueError(f"meanings[{name!r}] holds NaN or infinite values")
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError(f"meanings[{name!r}] has all-zero rows: cosine distance undefined")
        units.append(block / norms)
    return np.concatenate(units, axis=1), len(units)


def meaning_distances(meanings: Any, n: int | None = None) -> np.ndarray:
    """Condensed cosine distances (N*(N-1)/2,) float64 of an (N, F) array or a dict of them.

    Rows are normalised in float64, their dot products taken in float32.

    A dict gives the mean over its entries of the per-entry cosine distance.
    """
    if n is None:
        first = next(iter(meanings.values())) if isinstance(meanings, Mapping) else meanings
        n = np.asarray(first).shape[0]
    units, num_blocks = _unit_meanings(meanings, n)
    # The Gram matrix in float32 (the features are float32; 2x faster than float64): distances
    # agree with float64 `pdist` to ~1e-7 and TopSim to ~1e-9 (docs/evaluation.md).
    units = units.astype(np.float32)
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    rows_per_block = max(1, _ROW_BLOCK_ELEMENTS // max(n, 1))
    offset = 0
    for r0 in range(0, n - 1, rows_per_block):
        r1 = min(r0 + rows_per_block, n - 1)
        sims = units[r0:r1] @ units[r0 + 1:].T  # (rows, N - r0 - 1): the upper triangle only
        for k, i in enumerate(range(r0, r1)):
            out[offset:offset + n - 1 - i] = sims[k, k:]
            offset += n - 1 - i
    # 1 - mean cosine similarity; clip the rounding excess outside [0, 2].
    return np.clip(1.0 - out / num_blocks, 0.0, 2.0)


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
    distances = meaning_distances(meanings, n)
    order = np.argsort(distances)
    return np.array([_spearman(_condensed_edit_counts(m), messages.shape[2], distances, order)
                     for m in messages])


def _spearman(counts: np.ndarray, length: int, y: np.ndarray, order: np.ndarray) -> float:
    """Spearman correlation of integer distances counts (P,) in [0, length] and y (P,).

    `order` is y's argsort.
    """
    # Ranks of integer distances from their histogram: the average rank of the ties of value d.
    hist = np.bincount(counts, minlength=length + 1).astype(np.float64)
    mean_rank_of_value = np.cumsum(hist) - (hist - 1) / 2
    ranks_x = mean_rank_of_value - (counts.size + 1) / 2  # centred, per distance value
    sum_xy, sum_yy = _rank_products(y, order, counts, ranks_x)
    # Pearson of the centred ranks is Spearman.
    denom = np.sqrt(float(np.dot(hist, ranks_x ** 2)) * sum_yy)
    if denom == 0:
        log.warning("topographic similarity undefined: constant distances over %d pairs",
                    counts.size)
        return float("nan")
    return sum_xy / denom


def _rank_products(y: np.ndarray, order: np.ndarray, counts: np.ndarray, ranks_x: np.ndarray
                   ) -> tuple[float, float]:
    """(sum_p rx_p ry_p, sum_p ry_p^2) with ry the centred average ranks of y (ties: mean rank).

    Args:
      y: (P,) meaning distances; order: (P,) its argsort.
      counts: (P,) uint8 message distances; rx_p = ranks_x[counts[p]] (already centred ranks).
    Walks y in sorted order chunk by chunk, accumulating per tie group sum(rx) x its mean rank, so
    that besides y only its argsort (8 bytes per pair) is alive, unlike `scipy.stats.rankdata`
    (~50 bytes per pair).
    """
    size = y.size
    centre = (size + 1) / 2
    sum_xy = sum_yy = 0.0
    # The open tie group: its first sorted position, its value and the sum of its rx so far.
    open_start, open_value, open_sum = 0, None, 0.0

    def close(start: np.ndarray, stop: np.ndarray, rx_sum: np.ndarray) -> None:
        nonlocal sum_xy, sum_yy
        rank = (start + 1 + stop) / 2 - centre  # mean of the 1-based ranks start+1 .. stop
        sum_xy += float(np.dot(rx_sum, rank))
        sum_yy += float(np.dot(stop - start, rank * rank))

    chunk = _PAIR_BLOCK * 16
    for c0 in range(0, size, chunk):
        index = order[c0:c0 + chunk]
        values, rx = y[index], ranks_x[counts[index]]
        new = np.empty(values.size, dtype=bool)
        new[0] = open_value is None or values[0] != open_value
        np.not_equal(values[1:], values[:-1], out=new[1:])
        starts = np.flatnonzero(new)  # (G,) chunk positions where a tie group begins
        if starts.size == 0:
            open_sum += float(rx.sum())
        else:
            if starts[0] > 0:  # the open group continues into this chunk
                open_sum += float(rx[:starts[0]].sum())
            if open_value is not None:
                close(np.array([open_start]), np.array([c0 + starts[0]]), np.array([open_sum]))
            group_sums = np.add.reduceat(rx, starts)  # (G,)
            close(c0 + starts[:-1], c0 + starts[1:], group_sums[:-1])
            open_start, open_sum = c0 + int(starts[-1]), float(group_sums[-1])
        open_value = values[-1]
    close(np.array([open_start]), np.array([size]), np.array([open_sum]))
    return sum_xy, sum_yy


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
