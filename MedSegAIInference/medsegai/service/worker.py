"""Worker entry point: ``python -m medsegai.service.worker JOB.json``.

Runs one job and streams events on stdout (see :mod:`.events`). Exit codes: 0 done, 2 a
user-facing error (bad input, bad model, out of memory), 3 cancelled, 1 an unexpected failure.
Outputs are written into a staging folder beside ``output_dir`` and renamed into place only
when complete, so a caller never sees half a result.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Optional

from ..errors import CancelledError, MedSegAIError
from ..progress import CancelToken, ProgressEvent
from .events import encode_event
from .job import JobSpec

EXIT_OK, EXIT_UNEXPECTED, EXIT_ERROR, EXIT_CANCELLED = 0, 1, 2, 3
CANCEL_POLL_S = 0.2


def emit(kind: str, **data) -> None:
    # One write per event so lines from different threads never interleave.
    sys.stdout.write(encode_event(kind, **data) + "\n")
    sys.stdout.flush()


def _watch_cancel_file(path: Path, token: CancelToken, done: threading.Event) -> None:
    while not done.wait(CANCEL_POLL_S):
        if path.exists():
            token.cancel()
            return


def _install_signal_handlers(token: CancelToken) -> None:
    def on_signal(signum, _frame):
        token.cancel()

    for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, on_signal)


def _publish(staging: Path, target: Path) -> None:
    """Move the finished staging folder to ``target`` (which may exist only as an empty folder)."""
    if target.exists():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        else:
            raise MedSegAIError(f"The output folder {target} already holds files; choose an empty or new folder.")
    os.replace(staging, target)


def run_job(spec: JobSpec, token: CancelToken) -> dict:
    import medsegai

    def on_progress(event: ProgressEvent) -> None:
        emit("progress", stage=event.stage, fraction=event.fraction, message=event.message)

    target = Path(spec.output_dir)
    staging = target.with_name(f".{target.name}.part-{os.getpid()}")
    if spec.download_models:
        from ..models.requirements import fetch_missing, models_for_run

        needed = models_for_run(spec.task, spec.quality, spec.model, spec.roi_subset)
        for model_id in fetch_missing(needed, accept_license=spec.accept_licenses, progress=on_progress, cancel=token):
            emit("log", level="info", message=f"Installed model {model_id}")
    try:
        result = medsegai.segment(
            spec.input_path, model=spec.model, task=spec.task, quality=spec.quality,
            roi_subset=spec.roi_subset, device=spec.device, threads=spec.threads,
            uncertainty=spec.uncertainty, uncertainty_passes=spec.uncertainty_passes, progress=on_progress,
            cancel=token,
        )
        if spec.uncertainty and spec.confidence_threshold is not None:
            from ..uncertainty import flag_segments

            flag_segments(result.segment_confidence, spec.confidence_threshold)
        token.raise_if_cancelled()
        emit("progress", stage="write", fraction=0.0, message="Writing outputs")
        outputs = medsegai.write_outputs(result, staging, stem=spec.output_stem)
        token.raise_if_cancelled()
        _publish(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    outputs = {kind: str(target / Path(p).name) for kind, p in outputs.items()}
    present = {s.value for s in result.present_segments()}
    return {
        "outputs": outputs,
        "segments": [
            {"value": s.value, "name": s.name, "color": list(s.color), "terminology": s.terminology,
             "present": s.value in present}
            for s in result.segments
        ],
        "segment_confidence": result.segment_confidence,
        "uncertainty_method": result.uncertainty_method,
        "timings": result.timings,
        "notes": result.notes,
        "device": result.device,
    }


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        emit("error", error_type="UsageError", message="usage: python -m medsegai.service.worker JOB.json")
        return EXIT_ERROR
    token = CancelToken()
    _install_signal_handlers(token)
    done = threading.Event()
    started = time.monotonic()
    try:
        spec = JobSpec.read(argv[0])
        if spec.cancel_file:
            threading.Thread(target=_watch_cancel_file, args=(Path(spec.cancel_file), token, done),
                             daemon=True).start()
        emit("progress", stage="start", fraction=0.0, message="Worker started")
        payload = run_job(spec, token)
        payload["wall_s"] = time.monotonic() - started
        emit("result", **payload)
        return EXIT_OK
    except CancelledError:
        emit("cancelled", message="The run was cancelled.")
        return EXIT_CANCELLED
    except MedSegAIError as e:
        emit("error", error_type=type(e).__name__, message=str(e))
        return EXIT_ERROR
    except MemoryError:
        emit("error", error_type="MemoryError",
             message="The computer ran out of memory. Try quality 'fast' or 'fastest', or a structure subset.")
        return EXIT_ERROR
    except Exception as e:  # the caller shows the message; the traceback goes to the log
        traceback.print_exc(file=sys.stderr)
        emit("error", error_type=type(e).__name__, message=f"Unexpected error: {type(e).__name__}: {e}")
        return EXIT_UNEXPECTED
    finally:
        done.set()


if __name__ == "__main__":
    sys.exit(main())
