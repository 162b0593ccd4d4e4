"""A real (small, random-weight) nnU-Net model behind a URL on 127.0.0.1, listed in the user
catalogue: what a download from the catalogue looks like, end to end, without the internet."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from .http_server import Route
from .model_files import write_user_catalog

SERVED = "Dataset901_MedSegAITestDownload"


def _zip_folder(folder: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{top}/{folder.name}/{p.relative_to(folder).as_posix()}")
    return buf.getvalue()


@pytest.fixture
def served_model(model_env, server, small_model):
    """A real (small, random-weight) nnU-Net model behind a local URL, listed in the user catalogue."""
    labels = json.loads((small_model / "dataset.json").read_text())["labels"]
    server.routes[f"/{SERVED}.zip"] = Route(_zip_folder(small_model, SERVED))
    entry = {"id": SERVED, "version": "1.0", "title": "Test model served locally", "task": "test", "modality": "CT",
             "spacing_mm": [3.0, 3.0, 3.0], "urls": [server.url(f"/{SERVED}.zip")],
             "structures": [{"value": v, "name": n} for n, v in labels.items() if v],
             "license": {"name": "Test-Licence", "text": "Use only in tests.", "requires_acceptance": False}}
    write_user_catalog(model_env, [entry])
    return SERVED
