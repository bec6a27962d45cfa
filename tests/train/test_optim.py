"""The optimizer and schedule against closed forms and hand-computed answers, never against another
run of the same code: which parameters decay, the schedule's values, what clipping does to known
gradients, a norm that float32 gets wrong, and what one optimizer step changes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from geex.models import llama
from geex.models.codegeex import CodeGeeX, get_config
from geex.train.config import OptimSection, TrainConfig
from geex.train.optim import _total_norm, adamw, clip_gradients, lr_at, optimizer_step, param_groups

CPU = torch.device("cpu")


def _cfg(**optim) -> TrainConfig:
    return TrainConfig(optim=OptimSection(**optim))


@pytest.mark.parametrize("family", ["codegeex", "llama"])
def test_weight_decay_is_on_matrices_only(family):
    """CodeGeeX's recipe: AdamW decay on the weight matrices and embeddings, none on biases and norm
    parameters. The oracle is the parameters' names (the implementation reads shapes): a bias, or a
    parameter of a LayerNorm/RMSNorm module, is not decayed — Llama's final norm included."""
    if family == "codegeex":
        model = CodeGeeX(get_config("codegeex-tiny"))
    else:
        model = llama.get_config("llama-tiny", qkv_bias=True).build()
    norms = {name for name, m in model.named_modules() if isinstance(m, (torch.nn.LayerNorm, llama.RMSNorm))}
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    named = dict(model.named_parameters())
    vectors = {id(p) for name, p in named.items() if name.endswith("bias") or name.rpartition(".")[0] in norms}
    matrices = {id(p) for p in named.values()} - vectors
    assert {id(p) for p in decay["params"]} == matrices and {id(p) for p in no_decay["params"]} == vectors
    assert matrices and vectors
    if family == "llama":
        assert id(model.model.norm.weight) in vectors and id(model.model.embed_tokens.weight) in matrices


def test_warm_up_is_linear_from_the_first_step():
    cfg = _cfg(lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=12)
    assert [lr_at(s, cfg) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_weight_decay_on_every_tensor_of_two_or_more_dimensions():
    """Told by shape for any family: a convolution's 3-D kernel or stacked expert weights decay like
    a matrix; a scalar gain or a bias does not (the oracle: the module's own kinds of parameter)."""
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 4), torch.nn.Linear(3, 2))
    model.register_parameter("experts", torch.nn.Parameter(torch.zeros(2, 3, 3)))
    model.register_parameter("gain", torch.nn.Parameter(torch.ones(())))
    decay, no_decay = param_groups(model, 0.1)
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[1].weight), id(model.experts)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].bias), id(model.gain)}


def test_cosine_decay_by_its_closed_form():
    """After 4 warm-up steps, 8 steps of cosine from 1.0 to 0.1: lr = 0.1 + 0.45 (1 + cos(pi x))
    at x = (step - 4) / 8, then min_lr for ever."""
    cfg = _cfg(lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=12)
    for step, x in [(4, 0.0), (6, 0.25), (8, 0.5), (10, 0.75), (11, 0.875), (12, 1.0)]:
        assert lr_at(step, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * x)), abs=1e-12), step
    assert lr_at(6, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.sqrt(0.5)))  # 0.8682
    assert lr_at(13, cfg) == pytest.approx(0.1) and lr_at(10_000, cfg) == pytest.approx(0.1)
    # a cosine of 7 steps (10 - 3): x = 3/7 at step 6, the floor at step 10
    cfg = _cfg(lr=1.0, min_lr=0.1, warmup_steps=3, max_steps=10)
    assert lr_at(6, cfg) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 3 / 7)), abs=1e-12)
    assert lr_at(10, cfg) == pytest.approx(0.1, abs=1e-12)


def test_schedule_edges():
    # no warm-up: the first step is at the peak
    assert lr_at(0, _cfg(lr=0.5, min_lr=0.05, warmup_steps=0, max_steps=10)) == pytest.approx(0.5)
    # warm-up as long as the run: the cosine has no length (divided by 1, not 0): the peak, then the floor
    cfg = _cfg(lr=0.5, min_lr=0.05, warmup_steps=3, max_steps=3)
    assert [lr_at(s, cfg) for s in range(5)] == pytest.approx([0.5 / 3, 1 / 3, 0.5, 0.5, 0.05])


def test_clipping_scales_a_known_gradient_to_the_limit():
    """Gradient (30, 40): norm 50. With grad_clip 1 a plain SGD step moves the weights by
    lr x (0.6, 0.8); with clipping off (0) or a limit above 50, by lr x (30, 40). lr at step 0 of a
    4-step warm-up to 0.5: 0.125."""
    for clip, moved in ((1.0, [0.6, 0.8]), (0.0, [30.0, 40.0]), (100.0, [30.0, 40.0])):
        layer = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.weight.grad = torch.tensor([[30.0, 40.0]])
        sgd = torch.optim.SGD(layer.parameters(), lr=0.0)
        norm = optimizer_step(sgd, layer.parameters(), 0, _cfg(grad_clip=clip, warmup_steps=4, lr=0.5), CPU)
        assert float(norm) == pytest.approx(50.0, abs=1e-9)
        assert sgd.param_groups[0]["lr"] == 0.125
        want = torch.tensor([[1.0, 2.0]]) - 0.125 * torch.tensor([moved])
        torch.testing.assert_close(layer.weight.detach(), want, rtol=1e-5, atol=1e-6)
        assert layer.weight.grad is None  # cleared for the next accumulation


def test_the_norm_is_global_across_parameters():
    """Gradients 3 and 4 on two parameters: one norm of 5 for both, each scaled by 2/5 at limit 2;
    a parameter without a gradient is left alone."""
    a, b, frozen = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([-4.0])
    assert float(clip_gradients([a, b, frozen], 2.0, CPU)) == pytest.approx(5.0)
    torch.testing.assert_close(a.grad, torch.tensor([1.2]))
    torch.testing.assert_close(b.grad, torch.tensor([-1.6]))
    assert frozen.grad is None


def test_no_gradients_measure_zero():
    norm = clip_gradients([nn.Parameter(torch.ones(2))], 1.0, CPU)
    assert norm.shape == () and float(norm) == 0.0


def test_host_norm_is_exact_where_float32_is_not():
    """(3, 4) x 2^66: the norm is 5 x 2^66, though the squares overflow float32; four million entries
    of 1e-3: 2 (float32 accumulation comes out 0.3 % off)."""
    big = 2.0 ** 66
    assert float(_total_norm([torch.tensor([3 * big]), torch.tensor([4 * big])])) == 5 * big
    assert float(_total_norm([torch.full((4_000_000,), 1e-3)])) == pytest.approx(2.0, rel=1e-7)


def test_adamw_has_the_recipe_and_the_right_kernel():
    model = nn.Module()
    model.dense, model.input_layernorm = nn.Linear(3, 3), nn.LayerNorm(3)
    o = OptimSection(lr=2e-3, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.25)
    opt = adamw(model, o, tensor_parallel=1, data_parallel=1)
    assert isinstance(opt, torch.optim.AdamW)
    assert (opt.defaults["lr"], opt.defaults["betas"], opt.defaults["eps"]) == (2e-3, (0.8, 0.9), 1e-6)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.25, 0.0]
    assert [len(g["params"]) for g in opt.param_groups] == [1, 3]  # the weight; bias, LayerNorm's two
    assert opt.defaults["fused"] is True
    tp = adamw(model, o, tensor_parallel=2, data_parallel=2)
    assert not tp.defaults["fused"] and tp.defaults["foreach"] is True
    tp_only = adamw(model, o, tensor_parallel=2, data_parallel=1)
    assert not tp_only.defaults["fused"] and tp_only.defaults["foreach"] is False
