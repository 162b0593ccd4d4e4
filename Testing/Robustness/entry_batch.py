"""``medsegai batch`` as an entry point: the cases that share the bundled model run as the studies of
one batch (a bad study must not stop the others); cases with their own model or output run alone."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

from .checks import Outcome, last_line, run_child
from .corpus import Case, Inputs
from .entries import CLI, SEGMENT_FLAGS


def _study_link(studies: Path, name: str, target: Path) -> str:
    """A link named after the case (the study id) to the case's own input, so its hash is what is checked."""
    suffix = "".join(s for s in target.suffixes[-2:]) if target.is_file() else ""
    studies.mkdir(parents=True, exist_ok=True)
    (studies / f"{name}{suffix}").symlink_to(target, target_is_directory=target.is_dir())
    return name


def _run(ctx, studies: Path, out: Path, model: Path, timeout: float, fsize=None, memory_mb=None) -> tuple:
    argv = CLI + ["batch", "-i", str(studies), "-o", str(out), "--model", str(model), *SEGMENT_FLAGS]
    return run_child(argv, ctx.env, timeout, fsize, memory_mb)


def _outcomes(out: Path, ids: List[str], rc: int, err: str, secs: float, rss: float) -> Dict[str, Outcome]:
    from medsegai.io.read import read_image

    manifest = out / "medsegai_batch.json"
    studies = json.loads(manifest.read_text())["studies"] if manifest.exists() else {}
    results = {}
    for sid in ids:
        entry = studies.get(sid)
        if entry is None:  # the whole batch stopped first (its model or output): one line, exit 1
            typed = rc == 1 and last_line(err).startswith("medsegai: ")
            results[sid] = Outcome("error", err, "exit 1" if typed else f"untyped (exit {rc})", rc, secs, rss)
        elif entry.get("status") in ("done", "skipped"):
            labels_file = out / sid / "segmentation.nii.gz"
            results[sid] = Outcome("ok", rc=rc, seconds=secs, rss_mb=rss,
                                   labels=read_image(labels_file, validate=False) if labels_file.exists() else None)
        else:
            results[sid] = Outcome("error", str(entry.get("error", "")), "batch study failed", rc, secs, rss)
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
    for o in results.values():
        if hidden:
            o.notes.append(f"staging left in the batch output: {hidden[:3]}")
        if rc not in (0, 1):
            o.notes.append(f"batch exit code {rc}")
    return results


def shared_batch(rows: List[Tuple[Case, Inputs]], ctx) -> Dict[str, Tuple[Outcome, Path]]:
    """One batch over every case that fits it; {case name: (outcome, that study's output folder)}."""
    root = ctx.root / "batch_shared"
    studies, out = root / "studies", root / "out"
    ids = [_study_link(studies, c.name, i.input) for c, i in rows]
    timeout = sum(ctx.timeout(c) for c, _ in rows)
    rc, _out, err, secs, rss = _run(ctx, studies, out, ctx.demo_model, timeout)
    results = _outcomes(out, ids, rc, err, secs / max(1, len(rows)), rss)
    for c, _ in rows:
        if c.expect == "error" and rc != 1:
            results[c.name].notes.append(f"the batch exit code was {rc}, not 1, with a failed study")
    return {name: (o, out / name) for name, o in results.items()}


def alone(case: Case, inputs: Inputs, ctx, output: Path) -> Outcome:
    """One case as a batch of one (its own model folder, output location or file-size limit)."""
    if case.kind != "segment" or str(output).endswith(".dcm"):
        return Outcome("n/a")
    studies = ctx.root / "batch_alone" / case.name
    sid = _study_link(studies, case.name, inputs.input)
    rc, _out, err, secs, rss = _run(ctx, studies, output, inputs.model, ctx.timeout(case), inputs.fsize_limit,
                                    case.memory_limit_mb)
    o = _outcomes(output, [sid], rc, err, secs, rss)[sid]
    if o.status == "error" and not o.message:
        o.message = err
    return o
