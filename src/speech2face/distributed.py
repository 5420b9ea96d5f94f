"""Distributed training helpers: torchrun environment, a batch norm over the global batch, averaging.

Under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK in the environment) `setup` joins the process group
(NCCL on CUDA, gloo on CPU); otherwise it is a single process and every helper is a no-op.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .devices import pick_device

# GlobalBatchNorm needs a differentiable all-reduce; torch's public one warns of a private successor
warnings.filterwarnings("ignore", message=".*nn.functional.all_reduce is deprecated", category=FutureWarning)


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """This process's place in the job; joins the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Context(rank, world_size, local_rank, chosen)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (itself when alone); no gradient."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the GLOBAL batch (all processes), on CPU and CUDA
    alike (torch's SyncBatchNorm refuses CPU tensors). Same parameters and buffers as BatchNorm, so
    checkpoints move freely between 1 and N processes; alone it is a plain BatchNorm."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # differentiable (its successor is private API); imported here, under is_available(): builds of torch
        # without distributed support cannot import it
        from torch.distributed.nn.functional import all_reduce

        axes = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        xf = x if x.dtype == torch.float64 else x.float()  # statistics in at least float32
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=xf.dtype)
        totals = all_reduce(torch.cat([xf.sum(axes), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = xf - mean.view(shape)  # two passes: E[(x - mean)^2], not E[x^2] - mean^2 (cancellation)
        var = all_reduce(centred.pow(2).sum(axes)) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), momentum)
                self.num_batches_tracked += 1
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d in `module` by a GlobalBatchNorm holding the same tensors."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats)
            reference = child.running_mean if child.running_mean is not None else child.weight
            replacement.to(reference)  # device and float dtype first: load_state_dict keeps them
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            global_batchnorm(child)
    return module

