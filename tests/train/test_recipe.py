"""The training recipe against hand-computed answers, not against another run of the same code:
which parameters decay, what clipping does to a known gradient, and that every epoch reads the
sequences in a new order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from geex.data.pack import PackedDataset
from geex.models.codegeex import CodeGeeX, get_config
from geex.train.config import OptimSection, TrainConfig
from geex.train.loop import Trainee, lr_at, param_groups


def test_weight_decay_is_on_matrices_only():
    """CodeGeeX's recipe: AdamW decay on the weight matrices and embeddings, none on biases and
    LayerNorm parameters. The oracle: in CodeGeeX every 1-D parameter is a bias or a LayerNorm's,
    every matrix is a projection or an embedding."""
    model = CodeGeeX(get_config("codegeex-tiny"))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    matrices = {id(p) for p in model.parameters() if p.dim() >= 2}
    vectors = {id(p) for p in model.parameters() if p.dim() == 1}
    assert {id(p) for p in decay["params"]} == matrices and {id(p) for p in no_decay["params"]} == vectors
    assert matrices and vectors


def _trainee(grad_clip: float, weights: list[float], grads: list[float]):
    """A Trainee of one bias-free linear layer with the given gradient, and SGD (lr = the
    schedule's), so one step's update is plain arithmetic."""
    layer = nn.Linear(len(weights), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
    layer.weight.grad = torch.tensor([grads])
    cfg = TrainConfig(optim=OptimSection(grad_clip=grad_clip, warmup_steps=4, lr=0.5))
    trainee = SimpleNamespace(model=layer, device=torch.device("cpu"), cfg=cfg,
                              optimizer=torch.optim.SGD(layer.parameters(), lr=0.0))
    trainee.clip_gradients = lambda max_norm: Trainee.clip_gradients(trainee, max_norm)
    return trainee, layer


def test_clipping_scales_a_known_gradient_to_the_limit():
    """Gradient (30, 40): norm 50. With grad_clip 1 the step moves the weights by lr x (0.6, 0.8);
    with clipping off, by lr x (30, 40). lr at step 0 of a 4-step warm-up: 0.5 / 4."""
    lr = 0.5 / 4
    assert lr_at(0, TrainConfig(optim=OptimSection(warmup_steps=4, lr=0.5))) == lr
    for clip, moved in ((1.0, [0.6, 0.8]), (0.0, [30.0, 40.0]), (100.0, [30.0, 40.0])):
        trainee, layer = _trainee(clip, [1.0, 2.0], [30.0, 40.0])
        norm = Trainee.optimizer_step(trainee, 0)
        assert abs(float(norm) - 50.0) < 1e-9
        want = torch.tensor([[1.0, 2.0]]) - lr * torch.tensor([moved])
        torch.testing.assert_close(layer.weight.detach(), want, rtol=1e-5, atol=1e-6)
        assert layer.weight.grad is None  # cleared for the next accumulation


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
