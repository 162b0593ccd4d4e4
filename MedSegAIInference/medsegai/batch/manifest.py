"""OUT/medsegai_batch.json (each study's latest status) and OUT/medsegai_batch.jsonl (every event).

Only the driver writes them. The JSON file is rewritten atomically after each study; the log is
appended line by line (a line cut by ``kill -9`` is skipped when read). Neither decides what is
done (the study markers do, :mod:`.study`): they are for people and scripts.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, IO, Iterator, Optional

from ..atomic import atomic_write_json

MANIFEST = "medsegai_batch.json"
LOG = "medsegai_batch.jsonl"


class Manifest:
    def __init__(self, out_root: Path, options: Dict[str, Any], echo: Optional[IO[str]] = None):
        self.path = out_root / MANIFEST
        self.log_path = out_root / LOG
        self.echo = echo
        try:
            old = json.loads(self.path.read_text(encoding="utf-8"))
            self.studies: Dict[str, Dict[str, Any]] = dict(old.get("studies", {}))
        except (OSError, ValueError, AttributeError):
            self.studies = {}
        self.options = options
        out_root.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")

    def event(self, kind: str, **data: Any) -> None:
        line = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": kind, **data},
                          default=str)
        self._log.write(line + "\n")
        self._log.flush()
        if self.echo is not None:
            print(line, file=self.echo, flush=True)

    def record(self, record: Dict[str, Any]) -> None:
        self.studies[record["study"]] = {k: v for k, v in record.items() if k != "study"}
        self.event("study", **record)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, {"version": 1, "options": self.options, "studies": self.studies})

    def close(self) -> None:
        self._log.close()


def read_log(out_root: Path) -> Iterator[Dict[str, Any]]:
    try:
        lines = (Path(out_root) / LOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue  # cut short by a kill
