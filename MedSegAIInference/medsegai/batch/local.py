"""Local workers: this process for one worker, else N spawned processes, each loading the model once."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..progress import CancelToken
from ..run_request import RunRequest
from .studies import Study
from .study import StudyOutputs, segment_study

_state: Dict[str, object] = {}


def _watch_parent(parent: int) -> None:
    # A worker whose driver was killed (kill -9) stops too, instead of running on as an orphan.
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(1.0)


def _init_worker(request: dict, parent: int) -> None:
    from ..predictor import Predictor

    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    req = RunRequest.from_dict(request)
    _state["request"] = req
    _state["predictor"] = Predictor(request=req)


def _run_in_worker(study: dict, out_root: str, outputs: dict) -> dict:
    return segment_study(_state["predictor"], Study(**study), Path(out_root), _state["request"],
                         StudyOutputs(**outputs))


def run_local(studies: List[Study], out_root: Path, request: RunRequest, outputs: StudyOutputs, workers: int,
              on_record: Callable[[dict], None], cancel: Optional[CancelToken] = None) -> None:
    if workers <= 1:
        from ..predictor import Predictor

        predictor = Predictor(request=request, cancel=cancel)
        for study in studies:
            if cancel is not None:
                cancel.raise_if_cancelled()
            on_record(segment_study(predictor, study, out_root, request, outputs, cancel=cancel))
        return
    import multiprocessing

    # spawn, not fork: torch's threads and locks do not survive a fork.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(request.to_dict(), os.getpid())) as pool:
        todo = list(studies)
        running = {}
        try:
            while todo or running:
                while todo and len(running) < workers * 2:  # a little ahead, so no worker waits
                    s = todo.pop(0)
                    running[pool.submit(_run_in_worker, s.to_dict(), str(out_root), outputs.to_dict())] = s
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                if cancel is not None:
                    cancel.raise_if_cancelled()
                for fut in done:
                    s = running.pop(fut)
                    try:
                        on_record(fut.result())
                    except Exception as exc:  # noqa: BLE001 - a dead worker fails its study, not the batch
                        on_record({"study": s.id, "input": s.path, "status": "failed", "error_type": type(exc).__name__,
                                   "error": f"The worker process failed: {exc}"})
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise
