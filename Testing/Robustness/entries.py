"""The entry points a case is run through, each as a user or a caller meets it: the CLI and the
server's client as subprocesses, the Python API in this process, the worker job through the worker
process that Slicer uses, and ``medsegai batch`` as a subprocess. (The Slicer Logic: entry_logic.py.)"""
from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Optional

from .checks import Outcome, last_line, run_child
from .corpus import Case, Inputs

CLI = [sys.executable, "-c", "import sys; from medsegai.cli import main; sys.exit(main())"]
SEGMENT_FLAGS = ["-d", "cpu", "-nt", "1", "-q"]


def _labels_in(folder: Path):
    from medsegai.io.read import read_image

    p = folder / "segmentation.nii.gz"
    return read_image(p, validate=False) if p.exists() else None


def _typed(exc: BaseException, case: Case) -> Outcome:
    from medsegai.errors import MedSegAIError

    # An output location the OS refuses is an OSError naming the path: the Python way, and typed.
    typed = isinstance(exc, MedSegAIError) or (case.group == "output location" and isinstance(exc, OSError))
    text = str(exc) if typed else "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Outcome("error", text, type(exc).__name__ if typed else f"untyped {type(exc).__name__}")


# -- Python API -------------------------------------------------------------------------------------
_API_CHILD = """
import json, sys
import medsegai
from medsegai.errors import MedSegAIError
inp, model, out = sys.argv[1:4]
try:
    r = medsegai.Predictor(model=model, device="cpu", threads=1).predict(inp)
    medsegai.write_outputs(r, out)
    print(json.dumps({"ok": True}))
except (MedSegAIError, OSError) as e:
    print(json.dumps({"ok": False, "type": type(e).__name__, "message": str(e)}))
"""


def api(case: Case, inputs: Inputs, ctx, output: Path) -> Outcome:
    import json

    if inputs.fsize_limit is not None:  # a file-size limit must not hit this process: a child runs it
        rc, out, err, secs, rss = run_child([sys.executable, "-c", _API_CHILD, str(inputs.input), str(inputs.model),
                                             str(output)], ctx.env, ctx.timeout(case), inputs.fsize_limit,
                                            case.memory_limit_mb)
        reply = json.loads(last_line(out) or "{}") if last_line(out).startswith("{") else {}
        if reply.get("ok"):
            return Outcome("ok", seconds=secs, rss_mb=rss, labels=_labels_in(output))
        return Outcome("error", reply.get("message", err), reply.get("type", f"untyped (rc {rc})"), rc, secs, rss)
    started = time.monotonic()
    try:
        labels = _api_call(case, inputs, ctx, output)
        return Outcome("ok", seconds=time.monotonic() - started, labels=labels)
    except BaseException as exc:  # noqa: BLE001 - every escape is judged, none may pass silently
        if isinstance(exc, KeyboardInterrupt):
            raise
        o = _typed(exc, case)
        o.seconds = time.monotonic() - started
        return o


def _api_call(case: Case, inputs: Inputs, ctx, output: Path):
    import medsegai

    if case.kind == "segment":
        result = ctx.predictor(inputs.model).predict(str(inputs.input))
        medsegai.write_outputs(result, output)
        return result.labels
    if case.kind == "convert":
        from medsegai.io.read import read_image

        if str(inputs.input).endswith(".seg.nrrd"):
            from medsegai.io.seg_nrrd import read_seg_nrrd

            read_seg_nrrd(inputs.input)
        else:
            from medsegai.io.dicom_seg_read import read_dicom_seg

            ref = read_image(inputs.reference) if inputs.reference is not None else None
            read_dicom_seg(inputs.input, reference=ref)
        return None
    if case.kind == "models":
        from medsegai.models import import_model

        import_model(inputs.input, "corpus_model", accept_license=True)
        return None
    if case.kind == "interactive":
        from medsegai.interactive.session import InteractiveSession

        with InteractiveSession(engine="classical", device="cpu") as s:
            s.set_image(str(inputs.input))
            before = s.mask.copy()
            kind, value = inputs.reference
            try:
                if kind == "box":
                    s.add_box(value)
                else:
                    s.add_point(value, positive=(kind == "point"))
            finally:
                if not (s.mask == before).all() or s.can_undo:
                    raise AssertionError("a refused prompt changed the mask or the history")
        return None
    raise ValueError(case.kind)


# -- CLI and the server's client (subprocesses) ----------------------------------------------------
def cli_argv(case: Case, inputs: Inputs, output: Path, server=None) -> Optional[list]:
    if inputs.cli:
        argv = list(inputs.cli)
        if case.kind == "convert":
            pass
    elif case.kind == "segment":
        argv = ["segment", "-i", str(inputs.input), "-o", str(output), *SEGMENT_FLAGS]
        if server is None:
            argv += ["--model", str(inputs.model)]
    elif case.kind == "convert":
        argv = ["convert", str(inputs.input), "-o", str(inputs.output)]
        if inputs.reference is not None:
            argv += ["--reference", str(inputs.reference)]
    else:
        return None
    if server is not None:
        argv += ["--server", server.url, "--token", server.token]
    return argv


def cli(case: Case, inputs: Inputs, ctx, output: Path, server=None) -> Outcome:
    argv = cli_argv(case, inputs, output, server)
    rc, out, err, secs, rss = run_child(CLI + argv, ctx.env, ctx.timeout(case), inputs.fsize_limit,
                                        case.memory_limit_mb)
    o = Outcome("ok" if rc == 0 else "error", err, "", rc, secs, rss)
    if rc == 0:
        o.labels = _labels_in(output) if case.kind == "segment" else None
        return o
    line = last_line(err)
    o.error_type = "exit 1" if rc == 1 and line.startswith("medsegai: ") else f"untyped (exit {rc})"
    noise = [ln for ln in err.strip().splitlines()[:-1] if ln.strip() and not ln.startswith("medsegai:")]
    if noise:  # ITK/MetaIO print to the process's stderr themselves, before MedSegAI's one line
        o.info.append(f"{len(noise)} library line(s) before the error: {noise[0][:100]}")
        if any("Traceback" in ln for ln in noise):
            o.notes.append("a traceback before the error line")
    if out.strip():
        o.notes.append(f"stdout not empty: {out.strip()[:80]}")
    return o


def server(case: Case, inputs: Inputs, ctx, output: Path) -> Outcome:
    srv = ctx.server()
    if case.kind == "http":
        return _http(case, inputs, srv)
    if case.kind not in ("segment", "interactive") or inputs.model != ctx.demo_model:
        return Outcome("n/a")
    if case.kind == "segment" and inputs.fsize_limit is None and not str(output).endswith(".dcm"):
        o = _remote_client(case, inputs, srv, output)
    else:  # a file-size limit must not hit this process; interactive: the CLI's --server
        o = cli(case, inputs, ctx, output, server=srv)
    if not srv.alive():
        o.notes.append("the server died")
    return o


def _remote_client(case: Case, inputs: Inputs, srv, output: Path) -> Outcome:
    """``medsegai.remote.RemoteClient`` as a Python caller uses it (what ``segment --server`` runs)."""
    from medsegai.io.read import read_image
    from medsegai.remote import RemoteClient
    from medsegai.run_request import RunRequest

    started = time.monotonic()
    try:
        image = read_image(inputs.input)
        RemoteClient(srv.url, srv.token).run(image, RunRequest(model="medsegai_ct_demo", device="cpu"), output)
        return Outcome("ok", seconds=time.monotonic() - started, labels=_labels_in(output))
    except Exception as exc:  # noqa: BLE001 - judged like every other entry point's errors
        o = _typed(exc, case)
        o.seconds = time.monotonic() - started
        return o


def _http(case: Case, inputs: Inputs, srv) -> Outcome:
    import requests

    started = time.monotonic()
    files_before = srv.files()
    try:
        resp = inputs.http(srv.url, srv.token)
    except requests.RequestException as exc:
        return Outcome("error", f"connection failed: {exc}", "untyped connection", seconds=time.monotonic() - started)
    o = Outcome("error" if resp.status_code >= 400 else "ok", "", "", resp.status_code, time.monotonic() - started)
    try:
        body = resp.json()
        o.message, o.error_type = str(body.get("error", resp.text)), str(body.get("error_type", ""))
    except ValueError:
        o.message, o.error_type = resp.text, "untyped (not JSON)"
    if resp.status_code != inputs.reference:
        o.notes.append(f"HTTP {resp.status_code}, expected {inputs.reference}")
    if "\n" in o.message.strip():
        o.notes.append("the error spans several lines")
    for leak in (str(srv.work), "/work/", "site-packages"):
        if leak in resp.text:
            o.notes.append(f"the reply shows a server path ({leak})")
    if not srv.alive():
        o.notes.append("the server died")
    elif srv.files() - files_before:  # a refused request keeps nothing (earlier jobs' results may stay)
        o.notes.append(f"files left on the server: {sorted(srv.files() - files_before)[:3]}")
    return o


# -- the worker job ----------------------------------------------------------------------------------
def worker(case: Case, inputs: Inputs, ctx, output: Path) -> Outcome:
    from medsegai.run_request import RunRequest
    from medsegai.service import JobSpec

    if case.kind != "segment" or str(output).endswith(".dcm"):
        return Outcome("n/a")
    w = ctx.worker(inputs.fsize_limit)
    started = time.monotonic()
    try:
        spec = JobSpec(str(inputs.input), str(output), RunRequest(model=str(inputs.model), device="cpu", threads=1))
        ev = w.submit(spec).wait(timeout=ctx.timeout(case))
    except BaseException as exc:  # noqa: BLE001 - a spec the job refuses is judged like any other error
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _typed(exc, case)
    o = Outcome("ok" if ev.kind == "result" else "error", str(ev.get("message", "")), str(ev.get("error_type", "")),
                seconds=time.monotonic() - started, rss_mb=ctx.worker_peak_mb(w))
    if ev.kind == "result":
        o.labels = _labels_in(output)
    elif o.message.startswith("Unexpected error"):
        o.error_type = "untyped " + o.error_type
    return o
