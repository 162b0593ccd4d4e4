"""What a worker tells its caller: one JSON object per stdout line.

Job events carry the ``job_id`` of their job: ``progress`` (stage, fraction, message), ``log``
(level, message), and one final ``result`` (outputs, segments, timings, notes, warnings,
device), ``error`` (error_type, message) or ``cancelled``. Worker events: ``ready`` (pid, version,
protocol), ``heartbeat`` (busy job id), ``reply`` (request_id, ok, ...) and ``exit`` (reason).
Anything else on stdout (a library printing) is passed on as a ``log`` event rather than lost.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict

KINDS = ("progress", "log", "result", "error", "cancelled", "ready", "heartbeat", "reply", "exit")
FINAL_KINDS = ("result", "error", "cancelled")
PROTOCOL_VERSION = 2  # bumped whenever a request or an event changes meaning
PREFIX = "@medsegai "  # marks our lines among whatever else a library prints to stdout


@dataclass(frozen=True)
class WorkerEvent:
    kind: str
    data: Dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.kind in FINAL_KINDS

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def encode_event(kind: str, **data: Any) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    return PREFIX + json.dumps({"kind": kind, **data}, default=str)


def decode_event(line: str) -> WorkerEvent:
    line = line.rstrip("\r\n")
    if line.startswith(PREFIX):
        try:
            obj = json.loads(line[len(PREFIX):])
            kind = obj.pop("kind")
            if kind in KINDS:
                return WorkerEvent(kind, obj)
        except (ValueError, KeyError, AttributeError):
            pass
    return WorkerEvent("log", {"level": "info", "message": line})
