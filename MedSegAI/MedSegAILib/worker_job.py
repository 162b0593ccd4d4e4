"""One segmentation run in the worker process that stays, seen from the Logic: files in, events out.

The input volume goes to a temporary NRRD with its exact geometry; the worker writes a
``.seg.nrrd`` on the same grid; nothing touches the scene until :meth:`WorkerJob.result` is read
by the Logic. The temporary folder is removed by :meth:`cleanup` whatever the outcome.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from medsegai.errors import CancelledError, MedSegAIError
from medsegai.io.image import Image
from medsegai.io.seg_nrrd import read_seg_nrrd
from medsegai.io.segments import SegmentInfo
from medsegai.io.write import write_image
from medsegai.run_request import RunRequest
from medsegai.service import JobHandle, JobSpec, WorkerEvent, WorkerProcess


def default_python() -> str:
    """Slicer's own ``PythonSlicer`` when running inside Slicer, else this interpreter."""
    exe = Path(sys.executable)
    for candidate in (exe.with_name("PythonSlicer"), exe.with_name("PythonSlicer.exe")):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("PythonSlicer")
    return found or sys.executable


@dataclass
class WorkerResult:
    labels: Image
    segments: List[SegmentInfo]
    timings: dict = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    device: str = ""
    warnings: List[str] = field(default_factory=list)  # the result may be unreliable: say so in the panel
    model_reused: bool = False  # the worker had the model loaded already


class WorkerJob:
    def __init__(self, image: Image, run: RunRequest, *, download_models: bool = False,
                 accept_licenses: bool = False, work_root: Optional[str] = None):
        self.image = image
        self.workdir = Path(tempfile.mkdtemp(prefix="MedSegAI-", dir=work_root))
        input_path = self.workdir / "input.nrrd"
        # Written on the GUI thread: uncompressed, as zlib on a full-size CT would freeze the GUI for
        # seconds (Testing/Benchmarks/bench_gui_handoff.py) for a file that lives a few minutes.
        write_image(image, input_path, compress=False)
        self.spec = JobSpec(input_path=str(input_path), output_dir=str(self.workdir / "output"), run=run,
                            download_models=download_models, accept_licenses=accept_licenses).validate()
        self.handle: Optional[JobHandle] = None
        self.log: List[str] = []

    def start(self, worker: WorkerProcess) -> "WorkerJob":
        self.handle = worker.submit(self.spec)
        return self

    def poll(self) -> List[WorkerEvent]:
        events = self.handle.poll()
        for ev in events:
            if ev.kind == "log":
                self.log.append(str(ev.get("message", "")))
        return events

    @property
    def done(self) -> bool:
        return self.handle is not None and self.handle.finished

    @property
    def final_event(self) -> Optional[WorkerEvent]:
        return None if self.handle is None else self.handle.final_event

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def wait(self, timeout: Optional[float] = None, on_event=None) -> WorkerEvent:
        return self.handle.wait(timeout=timeout, on_event=on_event)

    def result(self) -> WorkerResult:
        """The finished run's labels and segments; raises the run's error or CancelledError."""
        final = self.final_event
        if final is None:
            raise RuntimeError("The run has not finished yet.")
        if final.kind == "cancelled":
            raise CancelledError(final.get("message") or "The run was cancelled.")
        if final.kind == "error":
            raise MedSegAIError(final.get("message") or "The segmentation failed.")
        seg_path = (final.get("outputs") or {}).get("seg_nrrd")
        if not seg_path or not Path(seg_path).is_file():
            raise MedSegAIError("The segmentation process finished without writing its result file.")
        labels, segments = read_seg_nrrd(seg_path)
        if not labels.same_grid(self.image):
            raise MedSegAIError("The result does not lie on the input volume's grid; it was not imported.")
        # The worker's list holds every structure the model knows; keep their names and values.
        known = {s["value"]: s for s in final.get("segments") or []}
        if known and not segments:
            segments = [SegmentInfo(int(v), s["name"], tuple(s["color"]), s.get("terminology", ""))
                        for v, s in sorted(known.items())]
        return WorkerResult(labels, segments, final.get("timings") or {}, final.get("notes") or [],
                            final.get("device") or "", final.get("warnings") or [], bool(final.get("model_reused")))

    def cleanup(self) -> None:
        """Remove the job's files; a job still running is cancelled first (the worker stays)."""
        if self.handle is not None and not self.handle.finished:
            self.handle.cancel()
            try:
                self.handle.wait(timeout=5.0)
            except Exception:  # noqa: BLE001 - cleaning up must not raise over the real error
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)
