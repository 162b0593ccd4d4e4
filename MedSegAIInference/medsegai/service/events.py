"""What a worker tells its caller: one JSON object per stdout line.

Kinds: ``progress`` (stage, fraction, message), ``log`` (level, message), ``result`` (outputs,
segments, timings, notes, device), ``error`` (error_type, message) and ``cancelled``. Anything
else on stdout (a library printing) is passed on as a ``log`` event rather than lost.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict

KINDS = ("progress", "log", "result", "error", "cancelled")
PREFIX = "@medsegai "  # marks our lines among whatever else a library prints to stdout


@dataclass(frozen=True)
class WorkerEvent:
    kind: str
    data: Dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.kind in ("result", "error", "cancelled")

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
