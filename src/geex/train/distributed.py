"""One process or many (torchrun): the process group, and FSDP2 sharding of a model of any family
that declares a ``TrainingSpec`` (CodeGeeX, Llama).

Every block (a layer; CodeGeeX's top query layer) is its own FSDP2 unit, then the root (embeddings): weights are
gathered a layer at a time, overlapping the next layer's gather with this layer's compute. With
bf16, weights are gathered in bf16 and gradients reduced in fp32 (the optimizer keeps fp32 shards).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from geex.devices import resolve_device
from geex.errors import UserError
from geex.train.families import spec_for


@dataclass(frozen=True)
class Topology:
    """``world`` processes as a (data-parallel x tensor-parallel) grid, rank = dp_rank * tp + tp_rank:
    the ``tp`` processes of a group hold parts of every layer and read the same data."""

    rank: int
    world: int
    device: torch.device
    tp: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def dp_rank(self) -> int:
        return self.rank // self.tp

    @property
    def dp_world(self) -> int:
        return self.world // self.tp


def setup(device: str, tp: int = 1, cpu_offload: bool = False) -> Topology:
    """The process group from torchrun's environment (none for one process); CUDA ranks each take
    their LOCAL_RANK's GPU and talk NCCL, CPU ranks gloo. ``tp``: processes a tensor-parallel group.
    ``cpu_offload``: CUDA ranks also get gloo, for collectives on tensors kept in host memory (the
    gradient norm)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if tp < 1 or world % tp:
        raise UserError(f"run.tensor_parallel {tp} must divide the {world} processes")
    device = resolve_device(device, "run.device")
    if world == 1:
        return Topology(0, 1, torch.device(device))
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local}: only {torch.cuda.device_count()} GPUs here")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("cuda:nccl,cpu:gloo" if cpu_offload else "nccl", device_id=dev,
                                    timeout=datetime.timedelta(minutes=30))
    else:
        dev = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=datetime.timedelta(minutes=30))
    return Topology(rank, world, dev, tp)


def teardown(topo: Topology, synchronize: bool = False) -> None:
    """Destroy the process group. ``synchronize`` (after a run that succeeded): first wait for every
    rank, so none tears down its gloo connections while another still writes logs or plots; that
    race aborted the early rank ("terminate called without an active exception") on a busy CPU."""
    if topo.distributed and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def barrier(topo: Topology) -> None:
    if topo.distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, topo: Topology) -> torch.Tensor:
    if topo.distributed:
        dist.all_reduce(values)
    return values


def all_reduce_max(value: float, topo: Topology) -> float:
    if not topo.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=topo.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def make_mesh(topo: Topology):
    """The device mesh: one dimension ("dp") or, with tensor parallelism, ("dp", "tp")."""
    from torch.distributed.device_mesh import init_device_mesh

    if topo.tp == 1:
        return init_device_mesh(topo.device.type, (topo.world,), mesh_dim_names=("dp",))
    return init_device_mesh(topo.device.type, (topo.dp_world, topo.tp), mesh_dim_names=("dp", "tp"))


def tensor_parallel(model: nn.Module, mesh) -> None:
    """Megatron's split of every block over the "tp" mesh dimension, as the model family's plan says
    (``TrainingSpec.tensor_parallel_plan``: projections into heads by output columns, whole heads to
    each process; out of them by input rows, one all-reduce each). Embeddings, norms and the tied
    head stay replicated."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    spec = spec_for(model.config)
    tp = mesh["tp"].size()
    for what, count in spec.tensor_parallel_divides(model.config).items():
        if count % tp:
            raise UserError(f"run.tensor_parallel {tp} must divide the model's {count} {what}")
    styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
    applied: set[str] = set()
    for block in units(model):  # a plan names modules of every kind of block (CodeGeeX's top layer differs)
        plan = {name: styles[style]() for name, style in spec.tensor_parallel_plan.items() if _has(block, name)}
        parallelize_module(block, mesh["tp"], plan)
        applied |= plan.keys()
    if unused := set(spec.tensor_parallel_plan) - applied:
        raise ValueError(f"tensor-parallel plan names modules no block has: {sorted(unused)}")


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def shard(model: nn.Module, mesh, bf16: bool, reshard_after_forward: bool = True,
          cpu_offload: bool = False) -> nn.Module:
    """FSDP2 over the "dp" mesh dimension (data parallel, fully sharded). The root (embeddings, whose
    tied head the backward needs first) and the last unit keep their gathered weights from the
    forward to the backward, as FSDP2's default and torchtitan do: a layer's memory for two gathers
    less a micro-batch."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    dp = mesh["dp"] if mesh.ndim > 1 else mesh
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
    offload = CPUOffloadPolicy(pin_memory=dp.device_type == "cuda") if cpu_offload else OffloadPolicy()
    blocks = units(model)
    for i, block in enumerate(blocks):
        fully_shard(block, mesh=dp, mp_policy=mp, offload_policy=offload,
                    reshard_after_forward=reshard_after_forward and i < len(blocks) - 1)
    fully_shard(model, mesh=dp, mp_policy=mp, offload_policy=offload, reshard_after_forward=False)
    return model


def units(model: nn.Module) -> list[nn.Module]:
    """The blocks that are each sharded, compiled and checkpointed alone, in forward order (the
    model family's ``TrainingSpec.unit_names``: CodeGeeX's layers and its top query layer)."""
    return [model.get_submodule(name) for name in spec_for(model.config).unit_names(model.config)]
