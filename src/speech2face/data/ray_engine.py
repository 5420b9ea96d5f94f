"""`prepare --engine ray`: the same shards, each one a Ray task (pip install 'speech2face[scale]').

Nothing about the work changes: `prepare.plan` decides the shards (names, segments, splits) before any task
starts, and each task is `prepare.process_shard`, which writes its tar, failures and stats atomically. Ray
adds what a static `--shard-id/--num-shards` split lacks: dynamic scheduling (a free CPU anywhere in the
cluster takes the next shard), retries (a task whose worker dies, from a kill, a lost node or the OOM
killer, runs again up to RETRIES times; a half-done attempt leaves only a temp file, so nothing is lost or
written twice), and GPUs (with `--device auto` or `cuda`, each task asks Ray for a share of one where the
cluster has GPUs, and the face encoder runs there). The videos and OUT must be on storage every node sees
(NFS, Lustre, a FUSE bucket).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Protocol, TypeVar

from ..errors import DataError

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")  # where prepare and download run: this machine, or a Ray cluster
RETRIES = 3  # attempts after the first, for a task whose worker process died
DEFAULT_GPUS_PER_TASK = 0.25  # with a CUDA device: four shard tasks share a GPU (the encoder needs little)
CONNECT_SECONDS = 5.0
OBJECT_STORE_BYTES = 256 * 2**20  # a local instance: tasks return only small stats dicts


class Named(Protocol):
    name: str


JobT = TypeVar("JobT", bound=Named)
ResultT = TypeVar("ResultT")


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise DataError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[ModuleType]:
    """Ray, running: the instance already started in this process, else the cluster at `address` ('auto':
    the one this node belongs to; HOST:PORT; ray://HOST:10001), else a new local instance with `cpus`
    CPUs (shut down on leaving)."""
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _start(ray, address, cpus)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def run_on_ray(work: Callable[..., ResultT], jobs: Sequence[JobT], *arguments: Any,
               gpus_per_task: float | None = 0.0) -> Iterator[tuple[JobT, ResultT]]:
    """Run `work(job, *arguments)` for every job as a Ray task of one CPU, inside a `ray_session` (prepare:
    `process_shard(job, settings, out, threads=1)`; download: `fetch_video(job, out, settings, turns)`);
    yields (job, its result) as each task finishes. `gpus_per_task` None: DEFAULT_GPUS_PER_TASK where the
    cluster has GPUs, else none. DataError, after every other job is done, if some job failed even after
    its retries (a rerun resumes them)."""
    ray = _import_ray()
    if gpus_per_task is None:
        gpus_per_task = DEFAULT_GPUS_PER_TASK if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        log.info("%s of a GPU per task", gpus_per_task)
    task = ray.remote(work).options(num_cpus=1, num_gpus=gpus_per_task, max_retries=RETRIES,
                                    retry_exceptions=False, name=work.__name__)
    pending = {task.remote(job, *arguments): job for job in jobs}
    failed: list[str] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except ray.exceptions.RayError as error:
            cause = str(error).strip().splitlines()
            failed.append(f"{job.name} ({cause[-1] if cause else type(error).__name__})")
            log.error("%s failed on Ray: %s", job.name, error)
            continue
        yield job, result
    if failed:
        raise DataError(f"{len(failed)} task(s) failed on Ray: {'; '.join(failed)[:400]} (a task whose worker "
                        f"dies is retried {RETRIES} times; run the same command again to redo the rest)")


def ray_actor(cls: type, *arguments: Any) -> Any:
    """An instance of `cls` living in its own Ray process, shared by every task it is passed to (calls on it
    return object refs: `ray.get(actor.method.remote(...))`); inside a `ray_session`."""
    return _import_ray().remote(cls).options(num_cpus=0).remote(*arguments)


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as error:
        raise DataError("--engine ray needs Ray: pip install 'speech2face[scale]'") from error
    return ray


def _start(ray: ModuleType, address: str | None, cpus: int | None) -> None:
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     object_store_memory=OBJECT_STORE_BYTES)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise DataError(f"could not start or reach {where}: {str(error).strip().splitlines()[0][:200]}") from error


def _check_reachable(address: str) -> None:
    """A one-line DataError in seconds when nothing listens at HOST:PORT (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise DataError(f"--address must be auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise DataError(f"no Ray cluster answers at {address}: {error.strerror or error} "
                        "(start one with `ray start --head`, or give its address)") from error
