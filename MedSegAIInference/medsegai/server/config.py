"""The server's settings, gathered once from the command line (or a test)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from .auth import Tokens


@dataclass
class ServerConfig:
    work_dir: Path  # uploads, staging and finished results; private to the server
    tokens: Tokens = field(default_factory=Tokens)
    devices: List[str] = field(default_factory=lambda: ["auto"])  # one job at a time on each
    threads: Optional[int] = None  # torch CPU threads per job
    max_queue: int = 8  # jobs waiting (not running) before 429
    result_ttl_s: float = 3600.0  # a finished job's files are deleted this long after it ended
    max_upload_bytes: int = 2 << 30
    max_voxels: int = 1 << 30
    session_idle_s: float = 15 * 60.0  # an interactive session's lease, renewed by each request
    max_sessions: int = 4
    interactive_engine: str = "auto"  # the engine a session gets when the client asks for "auto"
    interactive_model: Optional[str] = None  # the engine's model folder (server side; clients cannot name paths)
