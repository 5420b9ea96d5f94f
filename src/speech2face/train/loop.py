"""The one training loop: every objective (the face decoder, the voice encoder) runs through `fit`.

    s2f train-decoder --data shards/ --out runs/decoder --steps 2000
    s2f train --data shards/ --decoder runs/decoder --out runs/voice --steps 5000
    torchrun --nproc_per_node 4 --no-python s2f train ... --batch-size 32     # either verb; DDP
    torchrun --nnodes 2 --node-rank $NODE --rdzv-endpoint $HOST:29500 --nproc_per_node 8 --no-python s2f train ...

A task (`decoder.DecoderTask`, `voice.VoiceTask`) supplies the network, its data stream, its loss (a dict
of terms with the weighted sum as "total") and its held-out evaluation; the loop owns everything else:
optimiser steps with gradient clipping, bf16 autocast on CUDA, DDP with batch norms over the global batch,
the log / evaluate / checkpoint schedule, metrics.jsonl, `best/`, eval.json, and exact resume.

`--batch-size` is the GLOBAL batch: each of N processes takes batch/N. Only rank 0 logs, evaluates and
writes. A checkpoint (`training_state.pt`, written atomically after `model.safetensors`) holds the model,
optimiser, scheduler, step, best score, RNG state and the task's extras (e.g. a fitted classifier);
`--resume` restores all of it, and the data stream restarts at a new seeded epoch (a stream has no index
to seek; its crops and order stay deterministic).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from .. import distributed
from ..data.dataset import collate
from ..errors import DataError
from ..files import atomic_write, write_json
from ..model_folder import BEST_DIR, EVAL_FILE, METRICS_FILE, STATE_FILE, TRAINING_FILE, WEIGHTS_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSettings:
    """What every training run shares; each objective's settings extend it (and may change defaults)."""

    steps: int = 1000
    batch_size: int = 8  # global: divided among processes
    lr: float = 1e-3
    size: str = "small"  # the network's size: small (CPU), paper, medium (the decoder at 128 px)
    clip: float = 1.0  # gradient norm
    shuffle_buffer: int = 256  # 0: no shuffling, samples interleaved across processes: N processes then see
    #                            exactly the batches of one (tests, debugging; every process reads every shard)
    log_every: int = 20
    checkpoint_every: int = 200
    eval_every: int = 500
    seed: int = 0
    workers: int = 0  # data-loader processes per training process
    device: str = "auto"


class Task(Protocol):
    """One objective. `model` is the network trained and saved (it has `save_pretrained`)."""

    name: str  # the verb, for progress bars
    what: str  # the network, for messages
    model: nn.Module

    def stream(self, rank: int, world_size: int, start_epoch: int) -> IterableDataset: ...

    def optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]: ...

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms on one batch, with their weighted sum as "total"; `model` is `self.model`, or its
        DDP wrapper (call it for the forward pass so that gradients are averaged)."""
        ...

    def evaluate(self, step: int) -> dict[str, Any]:
        """Held-out quality (rank 0), logged as {"step", "eval"}; may write samples into the run."""
        ...

    def score(self, quality: dict[str, Any]) -> float | None:
        """Higher is better; the best model is kept in `best/`. None: no best model."""
        ...

    def extra_state(self) -> dict[str, Any]: ...

    def load_extra_state(self, state: dict[str, Any]) -> None: ...

    def header(self) -> dict[str, Any]:
        """What training.json records beside the settings."""
        ...


def run(build: Callable[[distributed.Context], Task], settings: TrainingSettings, out: str | Path, *,
        resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Join the job (torchrun or one process), build the task on this process's device, and `fit` it."""
    context = distributed.setup(settings.device)
    try:
        if settings.batch_size % context.world_size:
            raise DataError(f"--batch-size {settings.batch_size} must divide among {context.world_size} processes")
        return fit(build(context), settings, Path(out), context, resume=resume, progress=progress)
    finally:
        distributed.teardown()


def fit(task: Task, settings: TrainingSettings, out: Path, context: distributed.Context, *, resume: bool,
        progress: bool) -> dict[str, Any]:
    """Train `task.model` to `settings.steps` (or continue a run with `resume`); returns the final held-out
    evaluation on rank 0 ({"step"} elsewhere), also written to eval.json."""
    model, device = task.model, context.device
    state_path = out / STATE_FILE
    resuming = resume and state_path.is_file()
    if not resuming and (out / WEIGHTS_FILE).exists():
        raise DataError(f"{out} already holds a trained {task.what}; pass --resume or use another --out")
    optimizer, scheduler = task.optimizer()
    step, best = 0, float("-inf")
    if resuming:
        step, best = load_checkpoint(state_path, task, optimizer, scheduler, device)
        log.info("resuming %s at step %d", out, step)
    elif context.main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / TRAINING_FILE, asdict(settings) | {"world_size": context.world_size} | task.header())
    forward = wrap(model, context)
    loader = DataLoader(task.stream(context.rank, context.world_size, step),
                        batch_size=settings.batch_size // context.world_size, num_workers=settings.workers,
                        collate_fn=collate)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    bar = tqdm(total=settings.steps, initial=step, desc=task.name, unit="step",
               disable=not (progress and context.main))
    started, seen, quality = time.perf_counter(), 0, None
    forward.train()
    for batch in loader:
        if step >= settings.steps:
            break
        with autocast:
            losses = task.loss(forward, batch)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        seen += len(next(iter(batch.values()))) * context.world_size
        bar.update(1)
        last = step == settings.steps
        if step % settings.log_every == 0 or last:
            logged = {k: float(distributed.mean_across(v.detach())) for k, v in losses.items()}
            if context.main:
                append_row(out / METRICS_FILE, {"step": step, "loss": logged.pop("total"), **logged,
                                                "lr": optimizer.param_groups[0]["lr"],
                                                "samples_per_s": round(seen / (time.perf_counter() - started), 2)})
                bar.set_postfix(loss=f"{float(losses['total'].detach()):.4f}")
        if context.main and (step % settings.eval_every == 0 or last):
            quality, best = evaluate(task, step, out, best)
        if context.main and (step % settings.checkpoint_every == 0 or last):
            save_checkpoint(out, task, optimizer, scheduler, step, best)
    bar.close()
    if step < settings.steps:
        raise DataError(f"the training stream ended at step {step}")
    if not context.main:
        return {"step": step}
    if quality is None:  # nothing trained (a finished run resumed, or --steps 0): evaluate what is there
        quality, best = evaluate(task, step, out, best)
        if not (out / WEIGHTS_FILE).exists():  # --steps 0: the model as the task built it (a fitted head)
            save_checkpoint(out, task, optimizer, scheduler, step, best)
    result = {"step": step, "held_out": quality, **task.header(),
              "note": "held-out speakers (val split, else test); pool = the whole held-out set"}
    write_json(out / EVAL_FILE, result)
    return result


def wrap(model: nn.Module, context: distributed.Context) -> nn.Module:
    """The model as the forward pass sees it: itself, or DDP with batch norms over the global batch."""
    if not context.distributed:
        return model

    distributed.global_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[context.device.index] if context.device.type == "cuda" else None)


def evaluate(task: Task, step: int, out: Path, best: float) -> tuple[dict[str, Any], float]:
    """Evaluate, log, and keep the best model; returns the quality and the best score so far."""
    quality = task.evaluate(step)
    append_row(out / METRICS_FILE, {"step": step, "eval": quality})
    score = task.score(quality)
    if score is not None and score > best:
        best = score
        task.model.save_pretrained(out / BEST_DIR)  # type: ignore[operator]
    return quality, best


def save_checkpoint(out: Path, task: Task, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None, step: int, best: float) -> None:
    """The model (for use), then the training state (for --resume), each written atomically: a kill between
    the two leaves a consistent state file to resume from."""
    task.model.save_pretrained(out)  # type: ignore[operator]
    state = {"model": task.model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "best": best,
             "rng": torch.get_rng_state(), "extras": task.extra_state()}
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    atomic_write(out / STATE_FILE, lambda temp: torch.save(state, temp))


def load_checkpoint(path: Path, task: Task, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None, device: torch.device,
                    ) -> tuple[int, float]:
    """Restore a training state (no code runs: weights_only); returns (step, best score)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        task.model.load_state_dict(state["model"], strict=True)  # the weights that go with this optimiser state
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        task.load_extra_state(state.get("extras", {}))
        torch.set_rng_state(state["rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        return int(state["step"]), float(state["best"])
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise DataError(f"{path}: cannot resume from this training state ({type(error).__name__}: {error}); "
                        "start a new run with another --out") from error


def append_row(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
