"""The fast part of the bad-input corpus (Testing/Robustness) in CI: every fast case through every
entry point that can receive it; a test per case fails on any of its rows that fails.

The whole corpus and its table: ``.venv/bin/python Testing/Robustness/run_corpus.py --details``.
On a loaded machine, ``MEDSEGAI_CORPUS_TIME_SCALE`` stretches the time limits.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Testing/: the Robustness package

from Robustness.corpus import ENTRIES, all_cases  # noqa: E402
from Robustness.runner import Context, run, table  # noqa: E402

FAST = [c for c in all_cases() if c.fast]


@pytest.fixture(scope="module")
def corpus_rows(data_dir):
    root = Path(tempfile.mkdtemp(prefix="medsegai-corpus-"))
    saved = {k: os.environ.get(k) for k in ("MEDSEGAI_HOME", "TOTALSEG_WEIGHTS_PATH")}
    ctx = Context(root, float(os.environ.get("MEDSEGAI_CORPUS_TIME_SCALE", "1")))
    try:
        rows = run(FAST, ENTRIES, ctx, log=lambda s: None)
    finally:
        ctx.close()
        shutil.rmtree(root, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    print("\n" + table(rows, ENTRIES))
    return rows


def test_the_fast_corpus_is_large_and_covers_every_entry_point():
    assert len(all_cases()) >= 60
    assert len(FAST) >= 20
    covered = {e for c in FAST for e in c.entries}
    assert covered == set(ENTRIES)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", [c.name for c in FAST])
def test_case(name, corpus_rows):
    rows = [r for r in corpus_rows if r.case.name == name]
    assert rows, f"{name} was not run"
    assert any(r.cell == "ok" for r in rows), f"{name}: no entry point ran it"
    failed = [f"{r.entry}: {'; '.join(r.found)}" for r in rows if r.cell == "FAIL"]
    assert not failed, "\n".join(failed)
