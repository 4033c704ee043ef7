"""Algorithm 1's interleaving sampler, loss weights and batch sharding (numpy only)."""
from collections import Counter

import numpy as np
import pytest

from big.mmpt import sampler

# train batches per dataset at batch 64 (reference_implementation.md §2.4)
THESIS_BATCHES = {"pathmnist": 1407, "chestmnist": 1227, "dermamnist": 110, "octmnist": 1524, "pneumoniamnist": 74,
                  "retinamnist": 17, "breastmnist": 9, "bloodmnist": 187, "tissuemnist": 2586, "organamnist": 541,
                  "organcmnist": 203, "organsmnist": 218}


def test_every_batch_of_every_dataset_once_per_epoch():
    sizes = {"a": 1000, "b": 130, "c": 64, "d": 1}
    plan = sampler.epoch_plan(sizes, 64, seed=1, epoch=0)
    assert len(plan) == sum(sampler.n_batches(n, 64) for n in sizes.values()) == 16 + 3 + 1 + 1
    for flag, n in sizes.items():
        rows = [r for f, r in plan if f == flag]
        assert len(rows) == sampler.n_batches(n, 64)
        allrows = np.concatenate(rows)
        assert sorted(allrows.tolist()) == list(range(n))  # each sample exactly once
        assert all(len(r) == 64 for r in rows[:-1]) and 1 <= len(rows[-1]) <= 64


def test_thesis_epoch_length_and_proportions():
    rng = sampler.epoch_rng(9930641, 0)
    order = sampler.interleave(THESIS_BATCHES, rng)
    assert len(order) == 8103
    assert Counter(order) == Counter(THESIS_BATCHES)
    # dataset d is drawn with probability remaining_d / remaining (here at the start: b_d / 8103)
    names = list(THESIS_BATCHES)
    remaining = np.array([THESIS_BATCHES[f] for f in names])
    rng = np.random.default_rng(3)
    n = 40000
    hits = Counter(sampler.draw(remaining, rng) for _ in range(n))
    for i, flag in enumerate(names):
        p = remaining[i] / remaining.sum()
        assert abs(hits[i] / n - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-4, flag
    # an exhausted dataset is never drawn
    remaining[names.index("tissuemnist")] = 0
    assert all(names[sampler.draw(remaining, rng)] != "tissuemnist" for _ in range(5000))


def test_positions_are_spread_uniformly():
    """Without replacement over batches, each dataset's batches are spread evenly over the epoch
    (expected mean position = the middle of the epoch for every dataset), unlike i.i.d. draws."""
    counts = {"big": 400, "small": 10}
    pos_small = []
    for s in range(100):
        order = sampler.interleave(counts, np.random.default_rng(s))
        pos_small += [i for i, f in enumerate(order) if f == "small"]
    mean = np.mean(pos_small) / (sum(counts.values()) - 1)
    assert abs(mean - 0.5) < 0.04


def test_epochs_differ_and_are_reproducible():
    sizes = {"a": 300, "b": 200}
    p0 = sampler.epoch_plan(sizes, 32, seed=5, epoch=0)
    p0b = sampler.epoch_plan(sizes, 32, seed=5, epoch=0)
    p1 = sampler.epoch_plan(sizes, 32, seed=5, epoch=1)
    assert [f for f, _ in p0] == [f for f, _ in p0b]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(p0, p0b))
    assert [f for f, _ in p0] != [f for f, _ in p1]


def test_loss_weights_match_the_thesis_table():
    w = sampler.loss_weights(THESIS_BATCHES)
    assert w["breastmnist"] == 1.0
    assert w["tissuemnist"] == pytest.approx(0.0035, abs=5e-5)
    assert w["retinamnist"] == pytest.approx(0.5294, abs=5e-5)
    assert all(abs(w[f] * b - 9) < 1e-9 for f, b in THESIS_BATCHES.items())


@pytest.mark.parametrize("n,world", [(64, 2), (63, 2), (5, 4), (64, 3)])
def test_shards_cover_the_global_batch(n, world):
    rows = np.arange(100, 100 + n)
    parts = [sampler.shard(rows, r, world) for r in range(world)]
    assert np.array_equal(np.concatenate(parts), rows)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_negative_counts_rejected():
    with pytest.raises(ValueError):
        sampler.interleave({"a": -1}, np.random.default_rng(0))
