"""Process-group helpers: the same code runs alone or under torchrun.

Usage:
    ctx = DistContext.from_env()      # reads WORLD_SIZE / RANK set by torchrun
    if ctx.is_main: write_checkpoint(...)
    ctx.barrier()

Under torchrun the group uses gloo on CPU and nccl when every rank has a GPU.
Rank 0 alone writes files; the others wait at a barrier and then read them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @staticmethod
    def from_env() -> "DistContext":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        cuda = torch.cuda.is_available()
        if world <= 1:
            return DistContext(device=torch.device("cuda" if cuda else "cpu"))
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(local)
        device = torch.device(f"cuda:{local}" if cuda else "cpu")
        return DistContext(rank=rank, world_size=world, device=device)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
