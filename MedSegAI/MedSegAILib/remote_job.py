"""A segmentation run on a MedSegAI server, seen from the Logic exactly like a :class:`WorkerJob`.

"Run on: server" in the panel: the volume goes up from memory (no temporary input file), the
server's progress comes back as the same :class:`~medsegai.service.WorkerEvent` objects a local
worker sends, Cancel cancels the remote job, and the result is read, checked against the input's
grid and imported by the same code as a local run (:meth:`WorkerJob.result`), so a dead or slow
server is an error event and the scene stays as it was. The URL and token live in the
application's settings (QSettings, through :class:`RemoteSettings`), never in the scene.
"""
from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from medsegai.errors import CancelledError, MedSegAIError
from medsegai.io.image import Image
from medsegai.progress import CancelToken, ProgressEvent
from medsegai.run_request import RunRequest
from medsegai.service import WorkerEvent

from .worker_job import WorkerJob

# What a local worker calls each output file (medsegai.outputs), so the import code reads either.
_KINDS = {"segmentation.seg.nrrd": "seg_nrrd", "segmentation.nii.gz": "nifti", "segmentation_labels.csv": "labels_csv",
          "segmentation_uncertainty.nii.gz": "uncertainty", "segmentation_confidence.csv": "confidence_csv"}


@dataclass(frozen=True)
class RemoteSettings:
    url: str
    token: Optional[str] = None
    ca_bundle: Optional[str] = None

    PREFIX = "MedSegAI/Remote/"

    @classmethod
    def stored(cls, settings) -> Tuple[bool, "RemoteSettings"]:
        """(whether "Run on: server" is chosen, the server fields as last entered) from a QSettings-like
        object (``value(key, default)``); the fields stay when the user goes back to this computer."""
        def text(key: str) -> str:
            return str(settings.value(cls.PREFIX + key, "") or "").strip()

        on_server = str(settings.value(cls.PREFIX + "RunOn", "local")) == "server"
        return on_server, cls(text("URL"), text("Token") or None, text("CABundle") or None)

    @classmethod
    def from_settings(cls, settings) -> Optional["RemoteSettings"]:
        """The server to run on; None when runs are local."""
        on_server, remote = cls.stored(settings)
        return remote.checked() if on_server else None

    def checked(self) -> "RemoteSettings":
        """This, once the address can be a server's; else a one-line error naming what is wrong."""
        from urllib.parse import urlsplit

        if not self.url:
            raise MedSegAIError("'Run on: server' needs the server's address (the MedSegAI panel, 'Run on').")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MedSegAIError(f"The server address {self.url!r} is not an http:// or https:// URL.")
        return self

    def save(self, settings, run_on_server: bool = True) -> None:
        settings.setValue(self.PREFIX + "RunOn", "server" if run_on_server else "local")
        settings.setValue(self.PREFIX + "URL", self.url)
        settings.setValue(self.PREFIX + "Token", self.token or "")
        settings.setValue(self.PREFIX + "CABundle", self.ca_bundle or "")


class RemoteJob(WorkerJob):
    def __init__(self, image: Image, run: RunRequest, settings: RemoteSettings, *, work_root: Optional[str] = None):
        from medsegai.remote.client import RemoteClient

        self.image = image
        self.run = run
        self.client = RemoteClient(settings.url, settings.token, ca_bundle=settings.ca_bundle)
        self.workdir = Path(tempfile.mkdtemp(prefix="MedSegAI-", dir=work_root))
        self.log: List[str] = []
        self.handle = None
        self._events: "queue.Queue[WorkerEvent]" = queue.Queue()
        self._final: Optional[WorkerEvent] = None
        self._cancel = CancelToken()
        self._thread: Optional[threading.Thread] = None

    def start(self, _worker=None) -> "RemoteJob":
        self._thread = threading.Thread(target=self._run, name="medsegai-remote-job", daemon=True)
        self._thread.start()
        return self

    def _on_progress(self, ev: ProgressEvent) -> None:
        self._events.put(WorkerEvent("progress", {"stage": ev.stage, "fraction": ev.fraction, "message": ev.message}))

    def _run(self) -> None:
        from medsegai.remote.protocol import OutputOptions

        try:
            written, final = self.client.run(self.image, self.run, self.workdir / "output", OutputOptions(masks=False),
                                             progress=self._on_progress, cancel=self._cancel)
            outputs = {_KINDS.get(name, name): str(path) for name, path in written.items()}
            event = WorkerEvent("result", {**final, "outputs": outputs})
        except CancelledError as exc:
            event = WorkerEvent("cancelled", {"message": str(exc)})
        except MedSegAIError as exc:
            event = WorkerEvent("error", {"error_type": type(exc).__name__, "message": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the panel shows it; the scene stays as it was
            event = WorkerEvent("error", {"error_type": type(exc).__name__,
                                          "message": f"The remote run failed unexpectedly: {exc}"})
        self._events.put(event)

    def poll(self) -> List[WorkerEvent]:
        out = []
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                return out
            out.append(ev)
            if ev.final and self._final is None:
                self._final = ev

    @property
    def done(self) -> bool:
        return self._final is not None

    @property
    def final_event(self) -> Optional[WorkerEvent]:
        return self._final

    def cancel(self) -> None:
        self._cancel.cancel()  # the client cancels the server's job at its next event

    def wait(self, timeout: Optional[float] = None, on_event=None) -> WorkerEvent:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for ev in self.poll():
                if on_event is not None:
                    on_event(ev)
            if self._final is not None:
                return self._final
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                deadline = None
            time.sleep(0.05)

    def cleanup(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.cancel()
            self._thread.join(timeout=20.0)
        shutil.rmtree(self.workdir, ignore_errors=True)
