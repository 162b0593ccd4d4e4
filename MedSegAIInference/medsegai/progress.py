"""Progress reporting and cooperative cancellation shared by every long-running step."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import CancelledError


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # short machine-readable stage name: "load", "preprocess", "predict", "export", ...
    fraction: float  # 0..1 within the stage
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Thread-safe flag checked between tiles and stages; ``cancel()`` may come from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("The run was cancelled.")


class Reporter:
    """Bundles an optional callback and an optional cancel token so callees take one argument."""

    def __init__(self, callback: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None):
        self.callback = callback
        self.cancel_token = cancel

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        self.check()
        if self.callback is not None:
            self.callback(ProgressEvent(stage, min(max(float(fraction), 0.0), 1.0), message))

    def check(self) -> None:
        if self.cancel_token is not None:
            self.cancel_token.raise_if_cancelled()
