"""Build the corpus, run every case through every entry point that can receive it, judge each row,
print the table (case x entry point)."""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .checks import Outcome, last_line, problems, tree_hashes
from .corpus import DEMO_MODEL, ENTRIES, REPO, Case, Inputs, all_cases

SELF_ADDRESS_SPACE = 14 << 30  # a memory bomb that slips through fails here, not in the OOM killer


def child_env(home: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "MedSegAIInference"), env.get("PYTHONPATH", "")) if p)
    env["MEDSEGAI_HOME"] = str(home)  # imports and caches stay in the corpus's own folder
    env.pop("TOTALSEG_WEIGHTS_PATH", None)
    env.pop("MEDSEGAI_TOKEN", None)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


class Context:
    """Everything the entry points share: the temp root, the child environment, the long-lived
    processes (worker, Logic, server) started on first use and stopped at the end."""

    def __init__(self, root: Path, time_scale: float):
        self.root, self.time_scale = root, time_scale
        self.env = child_env(root / "home")
        os.environ["MEDSEGAI_HOME"] = self.env["MEDSEGAI_HOME"]
        os.environ.pop("TOTALSEG_WEIGHTS_PATH", None)
        self.demo_model = DEMO_MODEL
        self._predictors: Dict[str, object] = {}
        self._workers: Dict[Optional[int], object] = {}
        self._logic = None
        self._server = None
        self._reference = None

    def timeout(self, case: Case) -> float:
        return 3 * case.time_limit_s * self.time_scale

    def predictor(self, model: Path):
        import medsegai

        key = str(model)
        if key not in self._predictors:
            self._predictors[key] = medsegai.Predictor(model=key, device="cpu", threads=1)
        return self._predictors[key]

    def reference(self):
        """Labels of the axis-aligned real CT crop: what the geometry cases must reproduce."""
        if self._reference is None:
            from medsegai.io.image import Image

            from .cases_images import base_ct

            self._reference = self.predictor(self.demo_model).predict(Image.from_sitk(base_ct())).labels
        return self._reference

    def worker(self, fsize_limit: Optional[int]):
        from medsegai.service import WorkerProcess

        if fsize_limit not in self._workers:
            python = sys.executable
            if fsize_limit is not None:  # the worker's own file-size limit: a full disk, for it alone
                python = str(self.root / f"python-fsize-{fsize_limit}")
                Path(python).write_text(f"#!/bin/sh\nulimit -f {max(1, fsize_limit // 1024)}\nexec {sys.executable} \"$@\"\n")
                os.chmod(python, 0o755)
            self._workers[fsize_limit] = WorkerProcess(python=python, env=self.env)
        return self._workers[fsize_limit]

    @staticmethod
    def worker_peak_mb(w) -> float:
        try:
            with open(f"/proc/{w.pid}/status") as fh:
                return next(int(ln.split()[1]) / 1024 for ln in fh if ln.startswith("VmHWM:"))
        except (OSError, StopIteration, TypeError):
            return 0.0

    def logic(self):
        if self._logic is None:
            from .entry_logic import LogicStand

            self._logic = LogicStand(self.root / "logic_work", self.env)
        return self._logic

    def server(self):
        if self._server is None:
            self._server = CorpusServer(self.root / "server", self.env)
        return self._server

    def close(self) -> None:
        from .cases_outputs import unmount_all

        unmount_all()
        for w in self._workers.values():
            w.shutdown()
        if self._logic is not None:
            self._logic.shutdown()
        if self._server is not None:
            self._server.stop()


class CorpusServer:
    """``medsegai serve`` on a free 127.0.0.1 port with a token and a 4 MB upload limit (the tests' Server)."""

    def __init__(self, folder: Path, env: dict):
        sys.path.insert(0, str(REPO / "Testing/Python"))
        from server_support import Server

        from .cases_server import MAX_UPLOAD_MB

        folder.mkdir(parents=True, exist_ok=True)
        os.environ["MEDSEGAI_HOME"] = env["MEDSEGAI_HOME"]
        self._srv = Server(folder, "--max-upload-mb", str(MAX_UPLOAD_MB)).wait_ready()
        self.url, self.token, self.work = self._srv.url, self._srv.token, self._srv.work

    def alive(self) -> bool:
        import requests

        try:
            return self._srv.proc.poll() is None and requests.get(self.url + "/healthz", timeout=10).ok
        except requests.RequestException:
            return False

    def files(self) -> set:
        return {p.relative_to(self.work).as_posix() for p in self.work.rglob("*") if p.is_file()}

    def stop(self) -> None:
        self._srv.stop()


@dataclass
class Row:
    case: Case
    entry: str
    outcome: Outcome
    found: List[str]

    @property
    def cell(self) -> str:
        if self.outcome.status == "n/a":
            return "n/a"
        return "FAIL" if self.found else "ok"


def _output_for(case: Case, inputs: Inputs, ctx: Context, entry: str) -> Path:
    if inputs.output is not None:
        return inputs.output
    return ctx.root / "outputs" / case.name / entry


def _run_entry(case: Case, inputs: Inputs, ctx: Context, entry: str, output: Path) -> Outcome:
    from . import entries, entry_batch

    if entry == "api":
        return entries.api(case, inputs, ctx, output)
    if entry == "cli":
        argv = entries.cli_argv(case, inputs, output)
        return entries.cli(case, inputs, ctx, output) if argv else Outcome("n/a")
    if entry == "worker":
        return entries.worker(case, inputs, ctx, output)
    if entry == "logic":
        return ctx.logic().run(case, inputs, ctx)
    if entry == "server":
        return entries.server(case, inputs, ctx, output)
    if entry == "batch":
        return entry_batch.alone(case, inputs, ctx, output)
    raise ValueError(entry)


def _watched_output(output: Path) -> Dict[str, str]:
    h = tree_hashes(output) if output.is_dir() else ({"file": "x"} if output.is_file() else {})
    return {k: v for k, v in h.items() if not k.startswith("medsegai_batch.json")}  # the batch's log is meant


def _inputs_hash(case_dir: Path, output: Path) -> Dict[str, str]:
    """The case's files, less its output location when that lies inside (checked on its own)."""
    h = tree_hashes(case_dir)
    try:
        inside = output.resolve().relative_to(case_dir.resolve()).as_posix()
    except ValueError:
        return h
    return {k: v for k, v in h.items() if k != inside + "/" and not k.startswith(inside + "/")}


def _shares_batch(case: Case, inputs: Inputs) -> bool:
    return (case.kind == "segment" and inputs.output is None and inputs.fsize_limit is None
            and inputs.model == DEMO_MODEL and inputs.input is not None)


def run(cases: List[Case], entries: Tuple[str, ...], ctx: Context, log=print) -> List[Row]:
    built: List[Tuple[Case, Optional[Inputs], str]] = []
    for c in cases:
        d = ctx.root / "cases" / c.name
        d.mkdir(parents=True)
        try:
            built.append((c, c.build(d), ""))
        except Exception as exc:  # noqa: BLE001 - a builder that fails is a failed row, not a crashed run
            built.append((c, None, f"could not build the case: {type(exc).__name__}: {exc}"))
    rows: List[Row] = []
    need_reference = any(c.expect == "ok" and c.verify is not None for c, i, _ in built if i is not None)
    reference = ctx.reference() if need_reference else None
    shared = {}
    if "batch" in entries:
        from .entry_batch import shared_batch

        group = [(c, i) for c, i, _ in built if i is not None and "batch" in c.entries and _shares_batch(c, i)]
        if group:
            before = {c.name: tree_hashes(ctx.root / "cases" / c.name) for c, _ in group}
            shared = shared_batch(group, ctx)
            for c, _ in group:
                shared[c.name][0].notes.extend(
                    [] if before[c.name] == tree_hashes(ctx.root / "cases" / c.name) else ["input files changed"])
    for c, inputs, build_error in built:
        d = ctx.root / "cases" / c.name
        for entry in entries:
            if entry not in c.entries:
                continue
            if inputs is None:
                rows.append(Row(c, entry, Outcome("error"), [build_error]))
                continue
            if entry == "batch" and c.name in shared:
                outcome, out = shared[c.name]
                found = problems(c, entry, inputs, outcome, {}, {}, {}, _watched_output(out), ctx.time_scale,
                                 reference)
                rows.append(Row(c, entry, outcome, found))
                log(_progress(rows[-1]))
                continue
            output = _output_for(c, inputs, ctx, entry)
            before, out_before = _inputs_hash(d, output), _watched_output(output)
            outcome = _run_entry(c, inputs, ctx, entry, output)
            found = problems(c, entry, inputs, outcome, before, _inputs_hash(d, output), out_before,
                             _watched_output(output), ctx.time_scale, reference)
            for keep in inputs.keep:
                if not keep.exists():
                    found.append(f"{keep.name} (an earlier result) was deleted")
            rows.append(Row(c, entry, outcome, found))
            log(_progress(rows[-1]))
            if inputs.output is not None and entry != "api" and output.is_dir() and c.expect == "ok":
                shutil.rmtree(output, ignore_errors=True)
    return rows


def _progress(row: Row) -> str:
    o = row.outcome
    return f"  {row.case.name:38s} {row.entry:7s} {row.cell:4s} {o.seconds:6.1f}s  {'; '.join(row.found)[:150]}"


def table(rows: List[Row], entries: Tuple[str, ...]) -> str:
    by_case: Dict[str, Dict[str, Row]] = {}
    order: List[Case] = []
    for r in rows:
        if r.case.name not in by_case:
            order.append(r.case)
        by_case.setdefault(r.case.name, {})[r.entry] = r
    width = max(len(c.name) for c in order) if order else 10
    lines = [f"| {'case':{width}s} | {'group':24s} | " + " | ".join(f"{e:6s}" for e in entries) + " |",
             "|" + "-" * (width + 2) + "|" + "-" * 26 + "|" + "|".join("-" * 8 for _ in entries) + "|"]
    for c in order:
        cells = [by_case[c.name][e].cell if e in by_case[c.name] else "-" for e in entries]
        lines.append(f"| {c.name:{width}s} | {c.group[:24]:24s} | " + " | ".join(f"{x:6s}" for x in cells) + " |")
    return "\n".join(lines)


def details(rows: List[Row]) -> str:
    out = []
    for r in rows:
        o = r.outcome
        if o.status == "n/a":
            continue
        msg = last_line(o.message)[:220] if o.status == "error" else "(succeeded)"
        out.append(f"{r.case.name} / {r.entry}: {r.cell} {o.seconds:.1f} s {o.rss_mb:.0f} MB [{o.error_type}] {msg}")
        out.extend(f"    problem: {p}" for p in r.found)
        out.extend(f"    note: {i}" for i in o.info)
    return "\n".join(out)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fast", action="store_true", help="the CI subset")
    p.add_argument("--details", action="store_true", help="every row's message, time and memory")
    p.add_argument("--only", default=None, help="regex of case names")
    p.add_argument("--entries", nargs="+", default=list(ENTRIES), choices=ENTRIES)
    p.add_argument("--time-scale", type=float, default=float(os.environ.get("MEDSEGAI_CORPUS_TIME_SCALE", 1.0)),
                   help="multiply every time limit (a loaded or slow machine)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args(argv)


def select(args) -> List[Case]:
    cases = all_cases()
    if args.fast:
        cases = [c for c in cases if c.fast]
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    return cases


def main(argv=None) -> int:
    args = parse(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > SELF_ADDRESS_SPACE:
        resource.setrlimit(resource.RLIMIT_AS, (SELF_ADDRESS_SPACE, hard))
    cases = select(args)
    entries = tuple(e for e in ENTRIES if e in args.entries)
    root = Path(tempfile.mkdtemp(prefix="medsegai-corpus-"))
    ctx = Context(root, args.time_scale)
    started = time.monotonic()
    print(f"{len(cases)} cases x entry points {', '.join(entries)}; working in {root}", flush=True)
    try:
        rows = run(cases, entries, ctx, log=lambda s: print(s, flush=True))
    finally:
        ctx.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    print()
    print(table(rows, entries))
    if args.details:
        print()
        print(details(rows))
    failed = [r for r in rows if r.cell == "FAIL"]
    ran = [r for r in rows if r.cell != "n/a"]
    print(f"\n{len(cases)} cases, {len(ran)} rows run, {len(ran) - len(failed)} passed, {len(failed)} failed, "
          f"{sum(r.cell == 'n/a' for r in rows)} not applicable; {elapsed:.0f} s")
    for r in failed:
        print(f"FAILED {r.case.name} / {r.entry}: {'; '.join(r.found)}")
    return 1 if failed else 0
