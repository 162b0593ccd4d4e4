"""Structured logs: one JSON object per line on stderr, with the job or session id and the user."""
from __future__ import annotations

import json
import logging
import sys
import time

LOGGER = logging.getLogger("medsegai.server")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "event": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:  # tracebacks stay in the server's log, never in a reply
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False


def log(event: str, level: int = logging.INFO, exc_info=None, **fields) -> None:
    LOGGER.log(level, event, extra={"fields": fields}, exc_info=exc_info)
