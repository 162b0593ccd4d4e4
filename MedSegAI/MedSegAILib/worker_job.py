"""One segmentation run in a worker process, seen from the Logic: files in, events out.

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
from medsegai.service import JobSpec, WorkerEvent, WorkerProcess


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


class WorkerJob:
    def __init__(self, image: Image, *, task: Optional[str], model: Optional[str], quality: str,
                 subset: Optional[List[str]], device: str, python: Optional[str] = None,
                 work_root: Optional[str] = None, env: Optional[dict] = None):
        self.image = image
        self.workdir = Path(tempfile.mkdtemp(prefix="MedSegAI-", dir=work_root))
        input_path = self.workdir / "input.nrrd"
        # Written on the GUI thread: uncompressed, as zlib on a full-size CT would freeze the GUI for
        # seconds (Testing/Benchmarks/bench_gui_handoff.py) for a file that lives a few minutes.
        write_image(image, input_path, compress=False)
        self.spec = JobSpec(
            input_path=str(input_path), output_dir=str(self.workdir / "output"), model=model, task=task,
            quality=quality, roi_subset=subset, device=device, cancel_file=str(self.workdir / "cancel"),
        )
        self.process = WorkerProcess(self.spec, self.workdir / "job.json", python=python or default_python(),
                                     env=env)
        self.log: List[str] = []

    def start(self) -> "WorkerJob":
        self.process.start()
        return self

    def poll(self) -> List[WorkerEvent]:
        events = self.process.poll()
        for ev in events:
            if ev.kind == "log":
                self.log.append(str(ev.get("message", "")))
        return events

    @property
    def done(self) -> bool:
        return self.process.finished

    def cancel(self) -> None:
        self.process.cancel()

    def result(self) -> WorkerResult:
        """The finished run's labels and segments; raises the run's error or CancelledError."""
        final = self.process.final_event
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
                            final.get("device") or "")

    def cleanup(self) -> None:
        if self.process.running:
            self.process.cancel(grace_s=0.0)
            self.process.poll()
        shutil.rmtree(self.workdir, ignore_errors=True)
