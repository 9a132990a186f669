"""Where independent jobs run: this process, a local process pool, or a Ray cluster.

Collection and planning are made of independent episodes. Each worker builds what its jobs
share once (an env, a policy: ``init``), then runs jobs one at a time; the results come back
to the caller, which alone writes files. So a job run again after its worker died replaces
nothing and duplicates nothing, and a run resumes the same way on every backend.

* ``local`` (the default): ``workers`` spawned processes on this machine (1: this process).
* ``ray``: ``workers`` Ray actors on the cluster at ``--ray-address`` (or ``RAY_ADDRESS``),
  else on a Ray instance started here for the run. An actor that dies is restarted and its
  job run again. Ray is an optional extra (``pip install "foresight[ray]"``), imported only
  here and only when chosen; every node needs foresight installed, and reads no file of the
  driver's (what a worker needs, a checkpoint included, travels through Ray's object store
  once per node).

Results are the same on every backend: each job seeds itself from its own index.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from foresight.errors import ConfigError, ForesightError
from foresight.flags import option

#: The backends ``--backend`` takes.
BackendName = Literal["local", "ray"]
#: How often Ray restarts a dead worker, and runs a job again whose worker died.
RAY_RETRIES = 3

INSTALL_RAY = 'pip install "foresight[ray]"'


@dataclass(frozen=True)
class Backend:
    """Where a verb's episodes run (the ``--backend`` and ``--ray-address`` flags).

    Attributes:
        name: ``local`` or ``ray``.
        ray_address: With ``ray``, the cluster to join (``auto``, ``ray://host:10001``, ...);
            None: ``RAY_ADDRESS`` if set, else a Ray instance started on this machine.
    """

    name: str = field(
        default="local",
        metadata=option(
            "where episodes run: local (processes on this machine) or ray (actors on a Ray "
            f"cluster; {INSTALL_RAY})",
            flag="--backend",
        ),
    )
    ray_address: str | None = field(
        default=None,
        metadata=option(
            "with --backend ray: the cluster to join (default: $RAY_ADDRESS, else a Ray "
            "instance started here)"
        ),
    )

    def __post_init__(self) -> None:
        if self.name not in ("local", "ray"):
            raise ConfigError(f"--backend must be local or ray, got {self.name!r}")
        if self.ray_address is not None and self.name != "ray":
            raise ConfigError("--ray-address goes with --backend ray")

    @property
    def remote(self) -> bool:
        """True when jobs may run on other machines (files are then shipped, not shared)."""
        return self.name == "ray"


#: The default: processes on this machine.
LOCAL = Backend()


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ForesightError(f"--backend ray needs Ray: {INSTALL_RAY}") from err
    return ray


def run_jobs(
    backend: Backend,
    init: Callable[..., None],
    init_args: tuple[Any, ...],
    job: Callable[[Any], Any],
    jobs: Iterable[Any],
    workers: int,
    close: Callable[[], None] | None = None,
    gpus: float = 0.0,
) -> Iterator[Any]:
    """Run ``job`` on every item of ``jobs`` in ``workers`` workers; yield results as they end.

    Args:
        backend: Where.
        init: Module-level function each worker calls once, with ``init_args``, before its
            first job (a worker in another process gets ``pooled=True`` as well).
        init_args: Its arguments (picklable).
        job: Module-level function of one item; its result is yielded here.
        jobs: The items.
        workers: Parallel workers (local: processes, 1 runs in this process; ray: actors, at
            most as many as the cluster has CPUs, and GPUs when ``gpus``, so none waits
            forever for room).
        close: Called in this process after its jobs when ``workers`` is 1 locally.
        gpus: GPUs each Ray worker asks for (0 on CPU).
    """
    items = list(jobs)
    if not items:
        return
    if backend.name == "ray":
        yield from _ray_jobs(backend, init, init_args, job, items, workers, gpus)
        return
    if workers <= 1:
        init(*init_args)
        try:
            for item in items:
                yield job(item)
        finally:
            if close is not None:
                close()
        return
    # spawn: each worker creates its own GL context and torch state from scratch (forked
    # contexts break).
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=init, initargs=(*init_args, True)) as pool:
        yield from pool.imap_unordered(job, items, chunksize=1)


class _RayWorker:
    """One Ray actor: ``init`` before its first job, then jobs one at a time.

    The setup travels with every job (a function and an object reference: a few bytes) and
    runs on the first: a restarted actor sets itself up again when its retried job arrives,
    and its constructor holds no object-store argument that Ray would have to keep for it.
    """

    def __init__(self) -> None:
        self.ready = False

    def run(
        self, init: Callable[..., None], init_args: list[Any], job: Callable[[Any], Any], item: Any
    ) -> Any:
        if not self.ready:
            import ray

            # A one-item list: Ray resolves a reference given as an argument itself, but
            # only this first call needs the (possibly large) value.
            init(*ray.get(init_args[0]), True)
            self.ready = True
        return job(item)


@contextlib.contextmanager
def ray_session(backend: Backend) -> Iterator[Any]:
    """Ray, connected for the duration: to the cluster asked for, else a local instance.

    A session this call started is shut down after; one the caller had open is left open.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = backend.ray_address or os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            # Ray's own notes would interleave with the progress bars; its errors still show.
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = address or "a local Ray instance"
        raise ForesightError(
            f"--backend ray could not start or join {where} ({str(err).splitlines()[0]}); "
            "check --ray-address or RAY_ADDRESS"
        ) from err
    try:
        yield ray
    finally:
        ray.shutdown()


def _ray_jobs(
    backend: Backend,
    init: Callable[..., None],
    init_args: tuple[Any, ...],
    job: Callable[[Any], Any],
    items: list[Any],
    workers: int,
    gpus: float,
) -> Iterator[Any]:
    with ray_session(backend) as ray:
        from ray.util import ActorPool

        actor = ray.remote(_RayWorker).options(
            num_cpus=1, num_gpus=gpus, max_restarts=RAY_RETRIES, max_task_retries=RAY_RETRIES
        )
        room = ray.cluster_resources()
        limit = int(room.get("CPU", 1))
        if gpus:
            limit = min(limit, int(room.get("GPU", 0) / gpus))
            if limit < 1:
                raise ForesightError(
                    "the Ray cluster has no GPU for --device cuda; add GPU nodes or plan on cpu"
                )
        # Arguments put once: every actor on a node reads the same copy.
        setup = [ray.put(init_args)]
        actors = [actor.remote() for _ in range(max(1, min(workers, len(items), limit)))]
        try:
            pool = ActorPool(actors)
            yield from pool.map_unordered(
                lambda a, item: a.run.remote(init, setup, job, item), items
            )
        finally:
            for a in actors:
                ray.kill(a)
