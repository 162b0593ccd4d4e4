"""One lock file per model id, so two processes (two Slicer instances, a CLI and Slicer) never
download or install the same model at once. ``filelock`` (already a dependency of torch) gives
OS-level locks on Windows, macOS and Linux that the OS releases when a process dies. Imported
when a lock is taken: Slicer's GUI process reads the catalogue before its dependencies exist."""
from __future__ import annotations

import contextlib
import time
from typing import Iterator, Optional

from ..progress import CancelToken
from .cache import CacheLayout
from .errors import InstallLockTimeout


@contextlib.contextmanager
def model_lock(
    layout: CacheLayout, model_id: str, *, timeout_s: float = 6 * 3600, cancel: Optional[CancelToken] = None
) -> Iterator[None]:
    import filelock

    layout.locks.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(layout.locks / f"{model_id}.lock"))
    deadline = time.monotonic() + timeout_s
    # Poll in short steps so a waiting process stays cancellable while another one downloads.
    while True:
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            lock.acquire(timeout=0.2)
            break
        except filelock.Timeout:
            if time.monotonic() > deadline:
                raise InstallLockTimeout(
                    f"Another MedSegAI process has been installing '{model_id}' for more than {timeout_s:.0f} s "
                    f"(lock file {lock.lock_file}). Wait for it or stop it, then try again."
                ) from None
    try:
        yield
    finally:
        lock.release()
