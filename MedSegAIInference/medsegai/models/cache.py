"""The per-user model cache: where it is, and how it is laid out.

The cache is never inside the install folder (a Slicer extension folder is replaced on update
and may be read-only). Location, first match wins: ``$MEDSEGAI_HOME``; the ``cache_dir`` setting
in ``<user config dir>/medsegai/settings.json`` (written by ``medsegai models cache-dir --set``
or the Slicer module); ``~/.medsegai``.

Layout::

    <cache>/models/<id>/            installed models; a folder here is always complete, because it
                                    only ever appears through one rename (see install.py)
    <cache>/models/<id>/.medsegai-manifest.json   file hashes recorded at install
    <cache>/downloads/              partial downloads (kept for resume) and their sidecars
    <cache>/tmp/                    extraction folders; same file system as models/ so rename is atomic
    <cache>/locks/                  one lock file per model id
    <cache>/trust.json              hashes recorded at first use (trust on first use)
    <cache>/licenses.json           licences the user accepted
    <cache>/catalog.user.json       the user's own catalogue entries
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..atomic import atomic_write_json

HOME_ENV = "MEDSEGAI_HOME"
CONFIG_ENV = "MEDSEGAI_CONFIG_DIR"  # mainly for tests; defaults to the platform's config folder
SETTINGS_NAME = "settings.json"


def user_config_dir() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "medsegai"


def settings_path() -> Path:
    return user_config_dir() / SETTINGS_NAME


def read_settings() -> dict:
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_setting(key: str, value: Optional[str]) -> Path:
    """Set (or with ``None`` remove) one setting; written atomically."""
    data = read_settings()
    if value is None:
        data.pop(key, None)
    else:
        data[key] = value
    return atomic_write_json(settings_path(), data)


def set_cache_dir_setting(path: Optional[os.PathLike]) -> None:
    write_setting("cache_dir", None if path is None else str(Path(path).expanduser().resolve()))


def cache_dir() -> Path:
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    configured = read_settings().get("cache_dir")
    if isinstance(configured, str) and configured:
        return Path(configured).expanduser()
    return Path.home() / ".medsegai"


@dataclass(frozen=True)
class CacheLayout:
    root: Path

    @classmethod
    def current(cls) -> "CacheLayout":
        return cls(cache_dir())

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def trust_file(self) -> Path:
        return self.root / "trust.json"

    @property
    def licenses_file(self) -> Path:
        return self.root / "licenses.json"

    @property
    def user_catalog(self) -> Path:
        return self.root / "catalog.user.json"

    def model_dir(self, model_id: str) -> Path:
        return self.models / model_id

    def ensure(self) -> "CacheLayout":
        for d in (self.models, self.downloads, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        return self
