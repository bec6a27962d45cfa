"""One process or many (torchrun): the process group, and FSDP2 sharding of a CodeGeeX model.

Every layer (and the top query layer) is its own FSDP2 unit, then the root (embeddings): weights are
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

from geex.errors import UserError


@dataclass(frozen=True)
class Topology:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str) -> Topology:
    """The process group from torchrun's environment (none for one process); CUDA ranks each take
    their LOCAL_RANK's GPU and talk NCCL, CPU ranks gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("run.device cuda: no CUDA device is available here")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"run.device must be cpu or cuda, got {device!r}")
    if world == 1:
        return Topology(0, 1, torch.device(device))
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local}: only {torch.cuda.device_count()} GPUs here")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl", device_id=dev, timeout=datetime.timedelta(minutes=30))
    else:
        dev = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=datetime.timedelta(minutes=30))
    return Topology(rank, world, dev)


def teardown(topo: Topology) -> None:
    if topo.distributed and dist.is_initialized():
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


def shard(model: nn.Module, topo: Topology, bf16: bool, reshard_after_forward: bool = True) -> nn.Module:
    """FSDP2 over all processes (one mesh dimension: data parallel, fully sharded)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(topo.device.type, (topo.world,))
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
    for block in units(model):
        fully_shard(block, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward)
    return model


def units(model: nn.Module) -> list[nn.Module]:
    """The blocks that are each sharded, compiled and checkpointed alone: the layers and the top
    query layer."""
    return [*model.transformer.layers, model.transformer.topQueryLayer]
