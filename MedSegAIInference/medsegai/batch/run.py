"""The batch driver: find the studies, skip the finished ones, run the rest, record, summarise."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Dict, List, Optional

from ..progress import CancelToken
from ..run_request import RunRequest
from .manifest import Manifest
from .studies import Study, discover, select_part
from .study import StudyOutputs, done_marker, options_sha256, sweep_staging


@dataclass
class BatchOptions:
    workers: int = 1
    ray: bool = False
    ray_address: Optional[str] = None  # None with ray=True: a local cluster for this batch
    gpus_per_worker: float = 0.0
    num_parts: int = 1
    part_id: int = 0
    outputs: StudyOutputs = StudyOutputs()


class _Progress:
    """One line per study on stderr: ``[3/10] liver_007 done 2.1 s``."""

    def __init__(self, total: int, stream: Optional[IO[str]]):
        self.total, self.n, self.stream = total, 0, stream

    def __call__(self, record: Dict[str, Any]) -> None:
        self.n += 1
        if self.stream is None:
            return
        extra = f" ({record.get('error')})" if record["status"] == "failed" else ""
        print(f"[{self.n}/{self.total}] {record['study']} {record['status']} {record.get('seconds', 0.0):.1f} s{extra}",
              file=self.stream, flush=True)


def run_batch(source, out_root, request: RunRequest, options: Optional[BatchOptions] = None, *,
              echo_jsonl: Optional[IO[str]] = None, progress: Optional[IO[str]] = sys.stderr,
              cancel: Optional[CancelToken] = None) -> Dict[str, Any]:
    """Run a batch; returns the summary {"done", "skipped", "failed" (lists of study ids), "seconds", ...}."""
    options = options or BatchOptions()
    request = request.validate()
    out_root = Path(out_root)
    studies = select_part(discover(source), options.num_parts, options.part_id)
    if request.model and not request.task:
        from ..inference.pipeline import locate_model

        locate_model(request.model, None)  # a missing model fails once here, not once per study
    out_root.mkdir(parents=True, exist_ok=True)
    swept = sweep_staging(out_root)
    opts_hash = options_sha256(request, options.outputs)
    manifest = Manifest(out_root, {"run": request.to_dict(), "outputs": options.outputs.to_dict(),
                                   "options_sha256": opts_hash}, echo_jsonl)
    started = time.perf_counter()
    summary: Dict[str, Any] = {"done": [], "skipped": [], "failed": [], "errors": {}}
    todo: List[Study] = []
    for s in studies:
        if done_marker(out_root, s, opts_hash) is not None:
            summary["skipped"].append(s.id)
            manifest.studies.setdefault(s.id, {}).update({"status": "done", "input": s.path})
        else:
            todo.append(s)
    manifest.event("start", studies=len(studies), to_run=len(todo), already_done=len(summary["skipped"]),
                   swept_staging=swept, workers=options.workers, ray=options.ray, part=options.part_id,
                   parts=options.num_parts)
    manifest.save()
    show = _Progress(len(todo), progress)

    def on_record(record: Dict[str, Any]) -> None:
        status = "done" if record["status"] in ("done", "skipped") else "failed"
        summary["done" if record["status"] == "done" else "skipped" if record["status"] == "skipped"
                else "failed"].append(record["study"])
        if status == "failed":
            summary["errors"][record["study"]] = record.get("error", "")
        manifest.record(record)
        show(record)

    threads = _threads_per_worker(request, options.workers)
    worker_request = replace(request, threads=threads)
    try:
        if not todo:
            pass
        elif options.ray:
            from .ray_run import run_ray

            run_ray(todo, out_root, worker_request, options.outputs, options.workers, on_record,
                    address=options.ray_address, cpus_per_worker=float(threads),
                    gpus_per_worker=options.gpus_per_worker, cancel=cancel)
        else:
            from .local import run_local

            run_local(todo, out_root, worker_request, options.outputs, options.workers, on_record, cancel=cancel)
    finally:
        summary["seconds"] = time.perf_counter() - started
        summary["studies"] = len(studies)
        manifest.event("end", done=len(summary["done"]), skipped=len(summary["skipped"]),
                       failed=len(summary["failed"]), seconds=round(summary["seconds"], 3))
        manifest.close()
    return summary


def _threads_per_worker(request: RunRequest, workers: int) -> int:
    if request.threads:
        return request.threads
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def summary_table(summary: Dict[str, Any]) -> str:
    ran = len(summary["done"])
    rate = ran / summary["seconds"] * 60 if ran and summary["seconds"] > 0 else 0.0
    lines = ["status    studies", f"done      {ran}", f"skipped   {len(summary['skipped'])}  (already done)",
             f"failed    {len(summary['failed'])}",
             f"time      {summary['seconds']:.1f} s" + (f"  ({rate:.1f} studies/min)" if ran else "")]
    for sid, err in summary["errors"].items():
        lines.append(f"failed: {sid}: {err}")
    return "\n".join(lines)
