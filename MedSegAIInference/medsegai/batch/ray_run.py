"""The batch on Ray: one actor per worker holds the model; studies go to whichever actor is free.

Actors, not Ray Data: the driver sees each study's record as it finishes (the manifest and the
progress bar need it) and a study that kills its actor fails alone. An actor that dies is
restarted once (``max_restarts``) and its task retried once; Ray's retries are at-least-once,
which the study markers make harmless (a finished study is skipped, a half one was never
published). On a real cluster, every node needs MedSegAI (and the model) installed and must see
the study paths and OUT at the same paths (a shared file system).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, Optional

from ..errors import MedSegAIError
from ..progress import CancelToken
from ..run_request import RunRequest
from .studies import Study
from .study import StudyOutputs, segment_study


class StudyActor:
    def __init__(self, request: dict):
        from ..predictor import Predictor

        self.request = RunRequest.from_dict(request)
        self.predictor = Predictor(request=self.request)
        self.pid = os.getpid()

    def run(self, study: dict, out_root: str, outputs: dict) -> dict:
        record = segment_study(self.predictor, Study(**study), Path(out_root), self.request, StudyOutputs(**outputs))
        return {**record, "worker": f"ray-actor-{self.pid}"}


def run_ray(studies: List[Study], out_root: Path, request: RunRequest, outputs: StudyOutputs, workers: int,
            on_record: Callable[[dict], None], address: Optional[str] = None, cpus_per_worker: float = 1.0,
            gpus_per_worker: float = 0.0, cancel: Optional[CancelToken] = None) -> None:
    try:
        import ray
    except ModuleNotFoundError:
        raise MedSegAIError("--ray needs Ray: pip install 'medsegai[batch]'") from None
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local cluster just for this batch
            ray.init(num_cpus=max(1, int(round(workers * cpus_per_worker))), include_dashboard=False,
                     log_to_driver=False)
        started_here = True
    actor_cls = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=1,
                           max_task_retries=1)(StudyActor)
    actors = [actor_cls.remote(request.to_dict()) for _ in range(workers)]
    idle = list(actors)
    todo = list(studies)
    running = {}
    try:
        while todo or running:
            while idle and todo:
                actor, s = idle.pop(), todo.pop(0)
                running[actor.run.remote(s.to_dict(), str(out_root), outputs.to_dict())] = (actor, s)
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if cancel is not None:
                cancel.raise_if_cancelled()
            for ref in done:
                actor, s = running.pop(ref)
                idle.append(actor)
                try:
                    on_record(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    message = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
                    on_record({"study": s.id, "input": s.path, "status": "failed", "error_type": type(exc).__name__,
                               "error": f"The Ray worker failed: {message}"})
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()
