"""What every (case, entry point) row must satisfy, and the measurements it is judged on."""
from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .corpus import Case, Inputs


@dataclass
class Outcome:
    status: str                    # "error" (refused), "ok" (ran), "n/a" (cannot receive this case)
    message: str = ""              # the error a user sees (CLI: the whole stderr)
    error_type: str = ""
    rc: Optional[int] = None
    seconds: float = 0.0
    rss_mb: float = 0.0            # peak resident memory of the run's own process, where measurable
    labels: object = None          # ok runs: the label Image that came back
    notes: List[str] = field(default_factory=list)  # problems only the entry point can see (scene changed...)
    info: List[str] = field(default_factory=list)   # worth knowing, not a failure (C++ library chatter)


def tree_hashes(root: Path) -> Dict[str, str]:
    """SHA256 of every file below ``root`` (symlinks as their target text), by relative path."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[rel + "/"] = "dir"
    return out


def run_child(argv: Sequence[str], env: dict, timeout: float, fsize_limit: Optional[int] = None,
              memory_limit_mb: Optional[int] = None) -> tuple:
    """(rc, stdout, stderr, seconds, peak RSS in MB) of one child process, with its own rusage."""
    def limits():
        if fsize_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
        if memory_limit_mb is not None:
            # address space, generous for torch's mappings: a bomb fails here instead of reaching the OOM killer
            cap = (memory_limit_mb + 6000) << 20
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, text=True,
                                preexec_fn=limits, start_new_session=True)
        killed = False
        while True:  # os.wait4: this child's own peak memory, not the high-water mark of all children
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if not killed and time.monotonic() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if killed:
        stderr += f"\n[corpus] killed after {timeout:.0f} s"
    return proc.returncode, stdout, stderr, seconds, usage.ru_maxrss / 1024


_TRACE = re.compile(r"Traceback \(most recent call last\)|^\s+File \".*\", line \d+", re.M)


def problems(case: Case, entry: str, inputs: Inputs, outcome: Outcome, before: Dict[str, str],
             after: Dict[str, str], output_before: Dict[str, str], output_after: Dict[str, str],
             time_scale: float, reference=None) -> List[str]:
    """Everything wrong with one row; empty: the row passes."""
    found = list(outcome.notes)
    if outcome.status == "n/a":
        return found
    if before != after:
        changed = sorted(set(before) ^ set(after) | {k for k in before if k in after and before[k] != after[k]})
        found.append(f"input files changed: {changed[:4]}")
    for path in inputs.watch:
        if Path(path).exists():
            found.append(f"{path} appeared (code ran or a file escaped)")
    limit = case.time_limit_s * time_scale
    if outcome.seconds > limit:
        found.append(f"took {outcome.seconds:.1f} s (limit {limit:.0f} s)")
    if outcome.rss_mb > case.memory_limit_mb:
        found.append(f"peak memory {outcome.rss_mb:.0f} MB (limit {case.memory_limit_mb} MB)")
    if case.expect == "ok":
        if outcome.status != "ok":
            found.append(f"expected success, got: {last_line(outcome.message)}")
        elif case.verify is not None and outcome.labels is not None:
            wrong = case.verify(outcome.labels, inputs, reference)
            if wrong:
                found.append(f"wrong result: {wrong}")
        elif outcome.labels is None and case.kind == "segment":
            found.append("no labels came back")
        return found
    # expected refusal
    if outcome.status != "error":
        found.append("accepted a bad input (exit 0 / no error)")
        return found
    line = last_line(outcome.message)
    if _TRACE.search(outcome.message):
        found.append("traceback shown")
    if outcome.error_type in ("", "Exception", "RuntimeError", "ValueError", "TypeError", "KeyError",
                              "IndexError", "AttributeError", "AssertionError"):
        found.append(f"untyped error {outcome.error_type or '?'}")
    if case.match and not re.search(case.match, line):
        found.append(f"message does not say {case.match!r}: {line[:160]}")
    if len(line) > 1000:
        found.append(f"message is {len(line)} characters")
    if output_after != output_before:
        new = sorted(set(output_after) - set(output_before))
        found.append(f"partial output: {new[:4] or 'earlier files changed'}")
    return found


def last_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""
