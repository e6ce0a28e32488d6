"""``ray:SPEC``: any evaluator run inside Ray actors, e.g. ``ray:hf:/models/Qwen2.5-Omni-7B`` on GPU workers.

Each of ``ray_replicas`` actors builds the inner evaluator once (weights load once per actor, on the
resources it reserved: ``ray_gpus``, ``ray_cpus``) and answers one request at a time; the run engine's
loop keeps up to ``--concurrency`` requests in flight and this backend sends each to the least busy
actor. Everything else (retries, failure records, the response cache, resume) stays in the engine, and
the evaluator keeps the inner one's name and fingerprint, so samples and cache keys equal a local run.

Options (``--option KEY=VALUE``): ``ray_address`` (``auto``, ``ray://head:10001``; default: the running
instance or a new local one), ``ray_replicas`` (1), ``ray_gpus`` (0), ``ray_cpus`` (1); the rest go to
the inner evaluator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from mtavg.evaluators import Evaluator, Request, Response, register


class _EvaluatorActor:
    """Holds one inner evaluator; Ray runs its methods one at a time."""

    def __init__(self, spec: str, items: list[Any], options: dict[str, Any]) -> None:
        from mtavg.evaluators import make_evaluator

        self.loop = asyncio.new_event_loop()
        self.error: Exception | None = None
        try:
            self.evaluator = make_evaluator(spec, items, **options)
        except Exception as exc:  # noqa: BLE001 - kept for info(): a dead actor would hide the reason
            self.error = exc

    def info(self) -> tuple[str, str, bool, bool, bool]:
        if self.error is not None:
            raise self.error
        ev = self.evaluator
        return (ev.name, ev.fingerprint, ev.cacheable, ev.consumes_media,
                type(ev).yes_probability is not Evaluator.yes_probability)

    def call(self, method: str, request: Request) -> Any:
        return self.loop.run_until_complete(getattr(self.evaluator, method)(request))

    def close(self) -> None:
        self.loop.run_until_complete(self.evaluator.aclose())


class RayEvaluator(Evaluator):
    def __init__(self, spec: str, items: Sequence[Any], options: dict[str, Any]) -> None:
        from mtavg.executors import import_ray

        if not spec:
            raise ValueError("ray: needs the evaluator to run inside Ray, e.g. ray:hf:/path/to/model")
        options = dict(options)
        address = options.pop("ray_address", None)
        replicas = int(options.pop("ray_replicas", 1))
        gpus, cpus = float(options.pop("ray_gpus", 0)), float(options.pop("ray_cpus", 1))
        if replicas < 1:
            raise ValueError(f"ray_replicas must be >= 1, not {replicas}")
        self._ray = ray = import_ray()
        self._started = False
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
            self._started = True
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus)(_EvaluatorActor)
        self._actors = [actor.remote(spec, list(items), options) for _ in range(replicas)]
        try:
            (self.name, self.fingerprint, self.cacheable, self.consumes_media,
             self._yes) = ray.get(self._actors[0].info.remote())
        except Exception as exc:  # the inner evaluator failed to build: say so, in its own words
            from mtavg.executors import _cause

            raise _cause(exc) from None
        self._busy = [0] * replicas

    async def _call(self, method: str, request: Request) -> Any:
        from mtavg.executors import _cause

        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            return await self._actors[i].call.remote(method, request)
        except Exception as exc:  # noqa: BLE001 - the inner backend's typed error, as the engine expects it
            cause = _cause(exc)
            if cause is exc:
                raise
            raise cause from None
        finally:
            self._busy[i] -= 1

    async def respond(self, request: Request) -> Response:
        return await self._call("respond", request)

    async def yes_probability(self, request: Request) -> float:
        if not self._yes:
            raise NotImplementedError(f"{self.name} cannot score yes/no probabilities")
        return await self._call("yes_probability", request)

    async def aclose(self) -> None:
        refs = [a.close.remote() for a in self._actors]
        await asyncio.gather(*refs, return_exceptions=True)
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False


register("ray", lambda name, items, options: RayEvaluator(name, items, options))
