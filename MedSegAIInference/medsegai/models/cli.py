"""``medsegai models list | pull | import | remove | verify | info | cache-dir``.

Wiring: ``medsegai/cli.py`` calls ``register(subparsers)``; each sub-command stores its handler in
``args.func`` which returns the exit code. Standalone: ``python -m medsegai.models.cli models list``.
Exit codes: 0 success, 1 a MedSegAI error (message on stderr), 2 usage, 130 cancelled (Ctrl+C).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from typing import Iterator, List, Optional

from ..progress import CancelToken, ProgressEvent
from . import api
from .cache import cache_dir, set_cache_dir_setting, settings_path
from .catalog import entry_to_dict
from .download import DownloadOptions
from .licenses import license_notice


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="list, download, import and check models",
                              description="Manage MedSegAI's models. Nothing is sent anywhere except the "
                                          "download requests for models you pull.")
    sub = p.add_subparsers(dest="models_command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("list", help="catalogue models and where each is installed")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("pull", help="download and install models (shows the licence first)")
    s.add_argument("model_ids", nargs="+", metavar="MODEL_ID")
    s.add_argument("--accept-license", action="store_true", help="accept the licence of models that require it")
    s.add_argument("--force", action="store_true", help="download again even if installed")
    s.add_argument("--ca-bundle", help="PEM file of extra CA certificates (TLS-inspecting proxies)")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds of silence before a retry (default 60)")
    s.add_argument("--retries", type=int, default=5, help="retries after a failure (default 5)")
    s.set_defaults(func=_cmd_pull)

    s = sub.add_parser("import", help="install a downloaded zip or a model folder (offline machines)")
    s.add_argument("path")
    s.add_argument("--id", dest="model_id", help="model id (default: the zip's top folder or the folder name)")
    s.add_argument("--accept-license", action="store_true")
    s.set_defaults(func=_cmd_import)

    s = sub.add_parser("remove", help="delete a model from the MedSegAI cache")
    s.add_argument("model_ids", nargs="+", metavar="MODEL_ID")
    s.add_argument("--forget-hash", action="store_true",
                   help="also forget the hashes recorded at first use (after a deliberate model update)")
    s.set_defaults(func=_cmd_remove)

    s = sub.add_parser("verify", help="re-hash installed models and check their layout")
    s.add_argument("model_ids", nargs="*", metavar="MODEL_ID", help="default: every available model")
    s.set_defaults(func=_cmd_verify)

    s = sub.add_parser("info", help="details of one model: licence, structures, files, location")
    s.add_argument("model_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("cache-dir", help="show or set the cache folder ($MEDSEGAI_HOME overrides the setting)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--set", dest="set_path", metavar="PATH")
    g.add_argument("--unset", action="store_true")
    s.set_defaults(func=_cmd_cache_dir)
    return p


# ----------------------------------------------------------------------------- handlers

def _cmd_list(args) -> int:
    catalog = api.load_catalog()
    for problem in catalog.problems:  # on stderr, so `--json` output stays parseable
        print(f"warning: {problem}", file=sys.stderr)
    statuses = api.list_models(catalog=catalog)
    if args.json:
        print(json.dumps([
            {"id": s.model_id, "where": s.where, "location": str(s.location) if s.location else None,
             "task": s.entry.task if s.entry else None, "quality": s.entry.quality if s.entry else None,
             "license": s.entry.license.name if s.entry else None,
             "license_accepted": s.license_accepted} for s in statuses], indent=2))
        return 0
    rows = [("ID", "TASK", "MODALITY", "STATUS", "LICENCE")]
    for s in statuses:
        e = s.entry
        task = "-" if e is None else "/".join(x for x in (e.task, e.quality, e.part) if x)
        status = {"cache": "installed", "bundled": "bundled", "path": "local folder",
                  "totalsegmentator": "TotalSegmentator's copy", "missing": "not installed"}[s.where]
        lic = "-" if e is None else e.license.name + ("" if s.license_accepted else " (acceptance needed)")
        rows.append((s.model_id, task, e.modality if e else "-", status, lic))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\nCache: {cache_dir()}")
    return 0


class _ConsoleProgress:
    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_tenth = -1

    def __call__(self, ev: ProgressEvent) -> None:
        if self.tty:
            sys.stderr.write(f"\r{ev.stage}: {ev.fraction * 100:5.1f}%  {ev.message[:60]:<60}")
            sys.stderr.flush()
        elif ev.stage == "download" and int(ev.fraction * 10) != self.last_tenth:
            self.last_tenth = int(ev.fraction * 10)
            print(f"{ev.stage}: {ev.fraction * 100:.0f}% {ev.message}", file=sys.stderr)

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


@contextlib.contextmanager
def _cancel_on_ctrl_c() -> Iterator[CancelToken]:
    """The first Ctrl+C cancels cleanly (partial download kept for resume); a second one aborts."""
    token = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        yield token
        return

    def handler(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)


def _confirm_license(entry, notice: str, accept_flag: bool) -> bool:
    print(notice, file=sys.stderr)
    if not entry.license.requires_acceptance or accept_flag:
        return accept_flag
    from .licenses import is_accepted

    if is_accepted(entry):
        return False
    if sys.stdin.isatty():
        answer = input(f"Accept the licence of {entry.id}? Type 'yes' to accept: ").strip().lower()
        return answer == "yes"
    return False


def _cmd_pull(args) -> int:
    options = DownloadOptions(read_timeout_s=args.timeout, retries=args.retries, ca_bundle=args.ca_bundle)
    with _cancel_on_ctrl_c() as token:
        for model_id in args.model_ids:
            entry = api.load_catalog().get(model_id)
            accept = _confirm_license(entry, license_notice(entry), args.accept_license)
            progress = _ConsoleProgress()
            try:
                path = api.pull(model_id, accept_license=accept, force=args.force, progress=progress,
                                cancel=token, options=options)
            finally:
                progress.done()
            print(f"{model_id}: {path}")
    return 0


def _cmd_import(args) -> int:
    with _cancel_on_ctrl_c() as token:
        path = api.import_model(args.path, args.model_id, accept_license=args.accept_license, cancel=token)
    print(f"Imported: {path}")
    return 0


def _cmd_remove(args) -> int:
    for model_id in args.model_ids:
        removed = api.remove(model_id, forget_hash=args.forget_hash)
        print(f"{model_id}: {'removed' if removed else 'not in the MedSegAI cache'}")
    return 0


def _cmd_verify(args) -> int:
    ids = args.model_ids or [s.model_id for s in api.list_models() if s.available]
    bad = 0
    for model_id in ids:
        report = api.verify(model_id)
        if report.ok:
            print(f"OK      {model_id} ({report.where}: {report.location})")
        else:
            bad += 1
            print(f"CHANGED {model_id} ({report.where}: {report.location})")
            for line in report.problems:
                print(f"        {line}")
    return 1 if bad else 0


def _cmd_info(args) -> int:
    status = api.info(args.model_id)
    e = status.entry
    if args.json:
        d = entry_to_dict(e) if e else {"id": status.model_id}
        d["status"] = {"where": status.where, "location": str(status.location) if status.location else None,
                       "license_accepted": status.license_accepted}
        print(json.dumps(d, indent=2))
        return 0
    print(f"{status.model_id}")
    if e is not None:
        if e.title:
            print(f"  {e.title}")
        print(f"  version {e.version}, task {e.task}" + (f", quality {e.quality}" if e.quality else "")
              + (f", part {e.part}" if e.part else "") + f", {e.modality}")
        if e.spacing_mm:
            print(f"  spacing {' x '.join(f'{x:g}' for x in e.spacing_mm)} mm")
        print(f"  {len(e.structures)} structures" + (": " + ", ".join(s.name for s in e.structures[:8])
              + (", ..." if len(e.structures) > 8 else "") if e.structures else ""))
        for url in e.urls:
            print(f"  download: {url}")
        print(f"  size: {e.size_bytes if e.size_bytes is not None else 'not published'}"
              f", SHA256: {e.sha256 or 'not published (recorded at first download)'}")
        print("  " + license_notice(e).replace("\n", "\n  "))
    print(f"  status: {status.where}" + (f" ({status.location})" if status.location else ""))
    return 0


def _cmd_cache_dir(args) -> int:
    if args.set_path:
        set_cache_dir_setting(args.set_path)
    elif args.unset:
        set_cache_dir_setting(None)
    print(cache_dir())
    if args.set_path or args.unset:
        print(f"(setting stored in {settings_path()}; $MEDSEGAI_HOME still overrides it)", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- entry point

def main(argv: Optional[List[str]] = None) -> int:
    """``python -m medsegai.models.cli ...`` is ``medsegai models ...`` (one error and exit-code mapping)."""
    from ..cli import main as medsegai_main

    return medsegai_main(["models", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
