"""Distances over all pairs of examples: messages' edit distances and meanings' cosine distances.

Definitions (paper §2.4/§3.2, `docs/evaluation.md`):
- message distance: Levenshtein distance divided by the message length T;
- meaning distance: cosine distance of the inputs, or, for attributes, the mean over attributes
  of the cosine distance of each attribute's one-hot code.

Pairs are enumerated in blocks of rows of the upper triangle (`scipy.spatial.distance.pdist`'s
condensed order, `pair_blocks`): meaning similarities are one matmul per block, message distances
one `rapidfuzz.process.cdist` (C++ Levenshtein) per block. `emcom.metrics` ranks these blocks
without concatenating them. Paired distances (`levenshtein`) are a numpy Wagner-Fischer DP
vectorised over the pairs.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping

import numpy as np
import rapidfuzz.process
from rapidfuzz.distance import Levenshtein

# Message pairs per DP block: uint8 cell arrays of this length stay in the CPU cache.
_PAIR_BLOCK = 1 << 15
# Pairs per block of rows (bounds the (rows, N) similarity and edit-distance blocks).
_ROW_BLOCK_ELEMENTS = 1 << 21


def check_messages(messages: Any, name: str = "messages", ndim: int = 2) -> np.ndarray:
    """`messages` as an `ndim`-dimensional integer array of 1..254 words per message."""
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
    a = check_messages(a, "a")
    b = check_messages(b, "b")
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
    messages = check_messages(messages)
    blocks = pair_blocks(messages.shape[0], words=as_strings(messages))
    raw = np.concatenate([np.empty(0, np.uint8), *(edits for _, edits in blocks)])
    return raw / messages.shape[1] if normalise else raw


def as_strings(messages: np.ndarray) -> list[str]:
    """(N, T) integer words -> N strings of one character per word.

    rapidfuzz reads a string's buffer as it is; a list of ints it converts element by element, for
    every block again.
    """
    words = np.unique(messages, return_inverse=True)[1].reshape(messages.shape)
    return ["".join(map(chr, row)) for row in words.tolist()]


def _workers() -> int:
    # The CPUs this process may use (a SLURM job's share), not the whole machine's.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pair_blocks(n: int, units: np.ndarray | None = None, words: list[str] | None = None
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


def unit_meanings(meanings: Any, n: int) -> tuple[np.ndarray, int]:
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
    units, num_blocks = unit_meanings(meanings, n)
    return np.concatenate([np.empty(0), *(cosine_distances(sims, num_blocks)
                                          for sims, _ in pair_blocks(n, units))])


def cosine_distances(sims: np.ndarray, num_blocks: int) -> np.ndarray:
    """float32 sums of per-block cosine similarities -> float64 mean cosine distances."""
    # Clip the rounding excess outside [0, 2].
    return np.clip(1.0 - sims.astype(np.float64) / num_blocks, 0.0, 2.0)
