"""Where per-clip work runs: this machine's processes (default) or a Ray cluster.

An executor maps a picklable, module-level function over items and yields results as they finish
(unordered: results carry their own ids). A call that raises — or whose worker dies — becomes
``on_error(item, exc)``'s record when the caller gives one, so one bad item never ends the batch.

Ray runs plain tasks, not Ray Data ``map_batches``: a task per clip streams each record back the
moment it finishes, so the caller appends it to its resumable jsonl at once (a later resume then
recomputes nothing that finished); ``max_retries`` re-runs a task whose worker or node died. Ray Data
would add block-level batching (a record is only seen once its block is done) and Arrow conversion of
the per-clip metric dicts, whose keys differ from clip to clip, for no gain at one-clip granularity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

ErrorHandler = Callable[[Any, BaseException], Any]


class ExecutorUnavailable(RuntimeError):
    """The chosen executor cannot run here (e.g. Ray is not installed)."""


@dataclass(frozen=True)
class Resources:
    """What one task needs; the local executor runs one task per process and ignores these."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Iterable[T], *, resources: Resources | None = None,
            on_error: ErrorHandler | None = None) -> Iterator[R]:
        """``fn`` over ``items``; results as they finish, in any order."""
        ...

    def close(self) -> None:
        ...


def _call(fn: Callable[[T], R], item: T, on_error: ErrorHandler | None) -> R:
    try:
        return fn(item)
    except Exception as exc:
        if on_error is None:
            raise
        return on_error(item, exc)


class LocalExecutor:
    """A process pool of ``jobs`` workers; ``jobs <= 1`` runs inline (no pickling, easy to debug)."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def map(self, fn: Callable[[T], R], items: Iterable[T], *, resources: Resources | None = None,
            on_error: ErrorHandler | None = None) -> Iterator[R]:
        if self.jobs <= 1:
            for item in items:
                yield _call(fn, item, on_error)
            return
        # A bounded window of futures keeps memory flat on long clip lists. A worker that dies (a decoder
        # crash) breaks the whole pool: the items in flight become error records and a fresh pool goes on.
        window = 4 * self.jobs
        pending: dict[Future, Any] = {}
        source = iter(items)
        pool = ProcessPoolExecutor(max_workers=self.jobs)
        try:
            while True:
                for item in source:
                    pending[pool.submit(fn, item)] = item
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    item = pending.pop(fut)
                    exc = fut.exception()
                    broken = broken or isinstance(exc, BrokenProcessPool)
                    if exc is None:
                        yield fut.result()
                    elif on_error is None:
                        raise exc
                    else:
                        yield on_error(item, exc)
                if broken:
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = ProcessPoolExecutor(max_workers=self.jobs)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        return None


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorUnavailable(
            "the ray executor needs Ray: pip install 'mtavg-bench[ray]' (or 'ray[data]>=2.9')") from exc
    return ray


class RayExecutor:
    """Ray tasks, one per item, with per-task CPUs/GPUs and ``max_retries`` for lost workers/nodes.

    ``address``: None starts (or reuses) a local Ray instance; ``"auto"`` joins the running cluster;
    ``"ray://host:10001"`` connects a Ray client. A Ray instance this executor started is shut down by
    ``close``; one that was already running (e.g. a test's ``ray.init``) is left alone.
    """

    def __init__(self, address: str | None = None, num_cpus_per_task: float = 1.0,
                 num_gpus_per_task: float = 0.0, max_retries: int = 3, max_in_flight: int | None = None) -> None:
        self.address = address
        self.resources = Resources(num_cpus_per_task, num_gpus_per_task)
        self.max_retries = max_retries
        self.max_in_flight = max_in_flight
        self._started = False

    def _ray(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            local: dict[str, Any] = {}
            if self.address is None:  # a fresh local instance: on loopback, with the driver's import path
                local["_node_ip_address"] = "127.0.0.1"
                path = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
                if path:  # a source checkout (PYTHONPATH=src) imports in the workers too
                    local["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **local)
            self._started = True
        return ray

    def map(self, fn: Callable[[T], R], items: Iterable[T], *, resources: Resources | None = None,
            on_error: ErrorHandler | None = None) -> Iterator[R]:
        ray = self._ray()
        res = resources or self.resources
        # retry_exceptions=False: an exception raised by fn is the item's result, not worth re-running;
        # max_retries covers system failures (a worker process or a node lost mid-task).
        task = ray.remote(fn).options(num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                      max_retries=self.max_retries, retry_exceptions=False)
        window = self.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        pending: dict[Any, Any] = {}
        source = iter(items)
        while True:
            for item in source:
                pending[task.remote(item)] = item
                if len(pending) >= window:
                    break
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # RayTaskError (fn raised) or WorkerCrashedError after retries
                    if on_error is None:
                        raise
                    result = on_error(item, _cause(exc))
                yield result

    def close(self) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False


def _cause(exc: BaseException) -> BaseException:
    """The user's exception inside a RayTaskError, so error records read the same as the local path's."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def make_executor(kind: str = "local", *, jobs: int = 1, address: str | None = None,
                  num_cpus_per_task: float = 1.0, num_gpus_per_task: float = 0.0) -> Executor:
    """``local`` (process pool of ``jobs``) or ``ray`` (tasks on the cluster at ``address``)."""
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "ray":
        import_ray()  # fail now, with the install hint, not after discovery
        return RayExecutor(address, num_cpus_per_task=num_cpus_per_task, num_gpus_per_task=num_gpus_per_task)
    raise ValueError(f"unknown executor {kind!r}; choose local or ray")
