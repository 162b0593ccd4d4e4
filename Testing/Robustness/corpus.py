"""What a corpus case is, and where the real data it is made from lives.

A case is built at run time from the shared real data into a temporary folder (the repository
holds no binary inputs). It names the entry points that can receive it and what must happen:
``expect="error"`` (a typed, one-line error matching ``match``, nothing written, inputs untouched)
or ``expect="ok"`` (a run that succeeds; ``verify`` checks the result is right, not just present).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "Resources/Models/medsegai_ct_demo/MedSegAITrainer__nnUNetPlans__3d_fullres"

# Every entry point a case can be run through, in table order.
ENTRIES = ("api", "cli", "worker", "logic", "batch", "server")


def data_dir() -> Path:
    d = Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
    if not (d / "README.md").is_file():
        raise SystemExit(f"Real test data not found at {d}: set MEDSEGAI_DATA_DIR.")
    return d


def ts_ref() -> Path:
    return data_dir() / "ct/totalsegmentator-examples/tests/reference_files"


@dataclass
class Inputs:
    """What a built case hands to the entry points."""
    input: Optional[Path] = None          # image file or DICOM folder (segment/convert/interactive)
    model: Path = DEMO_MODEL              # model folder for segment runs
    output: Optional[Path] = None         # where output goes; None: a fresh folder per entry point
    cli: List[str] = field(default_factory=list)   # the command after ``medsegai`` (None: segment)
    api: Optional[Callable[[], object]] = None     # the Python API call, for non-segment kinds
    fsize_limit: Optional[int] = None     # RLIMIT_FSIZE for the run (a full disk)
    keep: Tuple[Path, ...] = ()           # existing files that must survive unchanged (earlier results)
    http: Optional[Callable] = None       # server cases: fn(server) -> (status, body text)
    reference: Optional[object] = None    # expected-success cases: what verify compares with
    watch: Tuple[Path, ...] = ()          # paths that must not appear (code run by a pickle, escapes)


@dataclass
class Case:
    name: str
    group: str
    build: Callable[[Path], Inputs]
    entries: Tuple[str, ...]
    expect: str = "error"                 # "error" or "ok"
    match: str = ""                       # regex the one-line error must match
    verify: Optional[Callable] = None     # ok cases: fn(labels Image, Inputs) -> problem text or ""
    fast: bool = False                    # part of the CI subset
    kind: str = "segment"                 # segment | convert | models | interactive | http
    time_limit_s: float = 60.0            # per entry point, CLI start-up included (scaled by --time-scale)
    memory_limit_mb: int = 3000           # peak RSS of a run in a child process


REGISTRY: Dict[str, Case] = {}


def case(name: str, group: str, entries, **kw):
    """Decorator: register the builder of a case."""
    def wrap(build):
        if name in REGISTRY:
            raise ValueError(f"duplicate case {name}")
        REGISTRY[name] = Case(name, group, build, tuple(entries), **kw)
        return build
    return wrap


def all_cases() -> List[Case]:
    # Importing the case modules fills the registry.
    from . import cases_dicom, cases_images, cases_models, cases_outputs, cases_server  # noqa: F401

    return list(REGISTRY.values())
