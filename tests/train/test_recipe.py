"""The training data order against hand-computed answers, not against another run of the same code:
every epoch reads every sequence once, in a new order (the optimizer and schedule: test_optim.py)."""

from __future__ import annotations

import numpy as np

from geex.data.pack import PackedDataset


def _dataset(n: int, seed: int) -> PackedDataset:
    """The dataset's ordering alone (no files): ``n`` sequences, ``seed``."""
    ds = object.__new__(PackedDataset)
    ds.n, ds.seed, ds.epoch, ds.position = n, seed, 0, 0
    ds._order = ds._permutation(0)
    return ds


def test_every_epoch_reads_every_sequence_once_in_a_new_order():
    n = 40
    ds = _dataset(n, seed=7)
    epochs = [ds.next_indices(n) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(n))  # each sequence once an epoch
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]  # a new order every epoch
    assert epochs[0] != list(range(n))  # shuffled, not file order
    # the order is the seed's: the same seed again gives it, another seed another
    assert [_dataset(n, 7).next_indices(n) for _ in range(1)][0] == epochs[0]
    assert _dataset(n, 8).next_indices(n) != epochs[0]
    # wrapping mid-request: the tail of epoch 0, then the head of epoch 1
    ds = _dataset(n, seed=7)
    ds.next_indices(n - 3)
    assert ds.next_indices(6) == epochs[0][n - 3:] + epochs[1][:3]
    assert np.array_equal(ds._order, np.array(epochs[1]))
