"""Algorithm 1's sampling: a random interleaving of every batch of every dataset, once per epoch.

At each step a dataset is drawn with probability (its remaining batches) / (all remaining batches),
then its next batch is taken and its count decremented (reference_implementation.md §2.4). This is
sampling without replacement over batches: each epoch has exactly sum(b_d) steps and dataset d
appears exactly b_d times. Torch-free (numpy only), so it is cheap to test exhaustively.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence

import numpy as np


def n_batches(n: int, batch_size: int) -> int:
    """Batches of a loader with drop_last=False."""
    return int(math.ceil(n / batch_size))


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """One RNG per (seed, epoch, stream): an epoch's draws do not depend on earlier epochs, so a
    resumed run draws exactly what an uninterrupted one does (stream 0 = interleaving, 1+ = shuffles)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(stream)]))


def draw(remaining: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the dataset to draw next: probability remaining_d / sum(remaining)."""
    cum = np.cumsum(remaining)
    return int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))


def interleave(counts: Mapping[str, int], rng: np.random.Generator) -> List[str]:
    """The epoch's sequence of dataset names, drawn proportionally to the remaining batch counts."""
    names = [k for k in counts]
    remaining = np.array([int(counts[k]) for k in names], dtype=np.int64)
    if (remaining < 0).any():
        raise ValueError(f"negative batch count in {dict(counts)}")
    total = int(remaining.sum())
    order: List[str] = []
    for _ in range(total):
        i = draw(remaining, rng)
        order.append(names[i])
        remaining[i] -= 1
    return order


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator, *, shuffle: bool = True) -> List[np.ndarray]:
    """Row indices of each batch (a random permutation split into batches; the last may be short)."""
    idx = rng.permutation(n) if shuffle else np.arange(n)
    return [idx[a:a + batch_size] for a in range(0, n, batch_size)]


def loss_weights(counts: Mapping[str, int]) -> Dict[str, float]:
    """w_d = min_d' b_d' / b_d (the smallest dataset gets 1)."""
    smallest = min(int(c) for c in counts.values())
    return {k: smallest / int(c) for k, c in counts.items()}


def shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's part of a global batch (contiguous, sizes differ by at most one)."""
    return np.array_split(rows, world)[rank]


def epoch_plan(sizes: Mapping[str, int], batch_size: int, seed: int, epoch: int) -> List[tuple]:
    """[(flag, row indices), ...] for one epoch: shuffled batches per dataset, interleaved."""
    flags: Sequence[str] = list(sizes)
    batches = {f: shuffled_batches(sizes[f], batch_size, epoch_rng(seed, epoch, 1 + i)) for i, f in enumerate(flags)}
    order = interleave({f: len(batches[f]) for f in flags}, epoch_rng(seed, epoch, 0))
    pos = {f: 0 for f in flags}
    plan = []
    for f in order:
        plan.append((f, batches[f][pos[f]]))
        pos[f] += 1
    return plan
