"""The model catalogue: typed entries read from JSON, built-in and user catalogues merged.

The JSON format is defined by ``Resources/Models/catalog.schema.json``. At run time the same rules
are checked here by hand (``validate_catalog_document``) so the runner does not need
``jsonschema`` inside Slicer's Python and errors name the entry and field in plain words; the tests
run both validators over the shipped catalogue and over broken documents to keep them in step.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..atomic import atomic_write_json
from . import resources
from .cache import CacheLayout
from .errors import CatalogError, ModelNotFoundError

SCHEMA_VERSION = 1
MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
URL_RE = re.compile(r"^https?://\S+$")
MODALITIES = ("CT", "MR")
from ..run_request import QUALITIES  # noqa: E402 - one definition for every layer

_TOP_KEYS = {"$schema", "schema_version", "description", "models"}
_MODEL_KEYS = {
    "id", "version", "title", "description", "task", "quality", "part", "modality", "spacing_mm",
    "structures", "license", "urls", "path", "bundled", "size_bytes", "sha256", "homepage",
    "citation", "notes",
}
_LICENSE_KEYS = {"name", "url", "text", "requires_acceptance", "note"}
_STRUCTURE_KEYS = {"value", "name", "total_value"}


@dataclass(frozen=True)
class Structure:
    value: int  # label value the model itself outputs
    name: str
    total_value: Optional[int] = None  # value in the merged task map (TotalSegmentator's parts)


@dataclass(frozen=True)
class LicenseInfo:
    name: str
    requires_acceptance: bool
    url: Optional[str] = None
    text: Optional[str] = None
    note: Optional[str] = None

    def summary(self) -> str:
        parts = [self.name]
        if self.url:
            parts.append(self.url)
        return " - ".join(parts)


@dataclass(frozen=True)
class ModelEntry:
    id: str
    version: str
    task: str
    modality: str
    license: LicenseInfo
    title: str = ""
    description: str = ""
    quality: Optional[str] = None
    part: Optional[str] = None
    spacing_mm: Optional[Tuple[float, float, float]] = None
    structures: Tuple[Structure, ...] = ()
    urls: Tuple[str, ...] = ()
    path: Optional[Path] = None  # absolute; for bundled models and user-listed local folders
    bundled: bool = False
    size_bytes: Optional[int] = None
    sha256: Optional[str] = None
    homepage: Optional[str] = None
    citation: Optional[str] = None
    notes: str = ""
    origin: str = "builtin"  # "builtin", "site", "user": which catalogue file it came from

    @property
    def downloadable(self) -> bool:
        return bool(self.urls)


@dataclass
class Catalog:
    entries: Dict[str, ModelEntry] = field(default_factory=dict)
    sources: List[Path] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # site/user entries or files skipped, one message each

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, model_id: str) -> Optional[ModelEntry]:
        return self.entries.get(model_id)

    def get(self, model_id: str) -> ModelEntry:
        entry = self.entries.get(model_id)
        if entry is None:
            close = [m for m in self.entries if model_id.lower() in m.lower()]
            hint = f" Did you mean: {', '.join(close[:5])}?" if close else " See `medsegai models list`."
            # The model asked for may be one of the skipped entries: say why it is not listed.
            hint += "".join(f" {p}" for p in self.problems)
            raise ModelNotFoundError(f"No model '{model_id}' in the catalogue.{hint}")
        return entry


# ----------------------------------------------------------------------------- validation

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _model_errors(m, where: str) -> List[str]:
    errs: List[str] = []
    if not isinstance(m, dict):
        return [f"{where}: must be an object"]
    where = f"{where} ('{m.get('id')}')" if isinstance(m.get("id"), str) else where
    for key in sorted(set(m) - _MODEL_KEYS):
        errs.append(f"{where}: unknown field '{key}'")
    for key in ("id", "version", "task", "modality", "license"):
        if key not in m:
            errs.append(f"{where}: missing required field '{key}'")
    if "id" in m and not (isinstance(m["id"], str) and MODEL_ID_RE.match(m["id"])):
        errs.append(f"{where}: 'id' must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
    for key in ("version", "task", "title", "description", "part", "homepage", "citation", "notes", "path"):
        if key in m and not isinstance(m[key], str):
            errs.append(f"{where}: '{key}' must be a string")
    for key in ("version", "task", "path"):
        if isinstance(m.get(key), str) and not m[key]:
            errs.append(f"{where}: '{key}' must not be empty")
    if "modality" in m and m["modality"] not in MODALITIES:
        errs.append(f"{where}: 'modality' must be one of {', '.join(MODALITIES)}")
    if "quality" in m and m["quality"] not in QUALITIES:
        errs.append(f"{where}: 'quality' must be one of {', '.join(QUALITIES)}")
    sp = m.get("spacing_mm")
    if "spacing_mm" in m and sp is not None:
        if not (isinstance(sp, list) and len(sp) == 3 and all(_is_number(x) and x > 0 for x in sp)):
            errs.append(f"{where}: 'spacing_mm' must be null or three positive numbers")
    if "structures" in m:
        st = m["structures"]
        if not isinstance(st, list):
            errs.append(f"{where}: 'structures' must be a list")
        else:
            for i, s in enumerate(st):
                sw = f"{where}.structures[{i}]"
                if not isinstance(s, dict):
                    errs.append(f"{sw}: must be an object")
                    continue
                for key in sorted(set(s) - _STRUCTURE_KEYS):
                    errs.append(f"{sw}: unknown field '{key}'")
                if not (_is_int(s.get("value")) and s["value"] >= 1):
                    errs.append(f"{sw}: 'value' must be an integer >= 1")
                if not (isinstance(s.get("name"), str) and s["name"]):
                    errs.append(f"{sw}: 'name' must be a non-empty string")
                if "total_value" in s and not (_is_int(s["total_value"]) and s["total_value"] >= 1):
                    errs.append(f"{sw}: 'total_value' must be an integer >= 1")
    lic = m.get("license")
    if "license" in m:
        if not isinstance(lic, dict):
            errs.append(f"{where}: 'license' must be an object")
        else:
            for key in sorted(set(lic) - _LICENSE_KEYS):
                errs.append(f"{where}.license: unknown field '{key}'")
            if not (isinstance(lic.get("name"), str) and lic["name"]):
                errs.append(f"{where}.license: 'name' must be a non-empty string")
            if not isinstance(lic.get("requires_acceptance"), bool):
                errs.append(f"{where}.license: 'requires_acceptance' must be true or false")
            if not (isinstance(lic.get("url"), str) and lic["url"]) and not (isinstance(lic.get("text"), str) and lic["text"]):
                errs.append(f"{where}.license: give the licence 'url' or its 'text'")
            for key in ("url", "text", "note"):
                if key in lic and not isinstance(lic[key], str):
                    errs.append(f"{where}.license: '{key}' must be a string")
    has_urls, has_path = "urls" in m, "path" in m
    if has_urls == has_path:
        errs.append(f"{where}: give exactly one of 'urls' (download) or 'path' (local folder)")
    if has_urls:
        urls = m["urls"]
        if not (isinstance(urls, list) and urls and all(isinstance(u, str) and URL_RE.match(u) for u in urls)):
            errs.append(f"{where}: 'urls' must be a non-empty list of http(s) URLs")
    if "bundled" in m:
        if not isinstance(m["bundled"], bool):
            errs.append(f"{where}: 'bundled' must be true or false")
        elif m["bundled"] and not has_path:
            errs.append(f"{where}: a bundled model needs 'path'")
    if "size_bytes" in m and m["size_bytes"] is not None and not (_is_int(m["size_bytes"]) and m["size_bytes"] >= 0):
        errs.append(f"{where}: 'size_bytes' must be null or an integer >= 0")
    if "sha256" in m and m["sha256"] is not None and not (isinstance(m["sha256"], str) and SHA256_RE.match(m["sha256"])):
        errs.append(f"{where}: 'sha256' must be null or 64 lower-case hex digits")
    return errs


def validate_catalog_document(doc) -> List[str]:
    """All rule violations in a parsed catalogue document (empty list: valid)."""
    if not isinstance(doc, dict):
        return ["the catalogue must be a JSON object"]
    errs = [f"unknown top-level field '{k}'" for k in sorted(set(doc) - _TOP_KEYS)]
    if doc.get("schema_version") != SCHEMA_VERSION:
        errs.append(f"'schema_version' must be {SCHEMA_VERSION}")
    models = doc.get("models")
    if not isinstance(models, list):
        return errs + ["'models' must be a list"]
    seen = set()
    for i, m in enumerate(models):
        errs += _model_errors(m, f"models[{i}]")
        mid = m.get("id") if isinstance(m, dict) else None
        if isinstance(mid, str):
            if mid in seen:
                errs.append(f"models[{i}]: duplicate id '{mid}'")
            seen.add(mid)
    return errs


# ----------------------------------------------------------------------------- parsing

def _entry_from_dict(m: dict, base_dir: Path, origin: str) -> ModelEntry:
    lic = m["license"]
    path = None
    if "path" in m:
        p = Path(m["path"]).expanduser()
        path = p if p.is_absolute() else (base_dir / p)
    spacing = tuple(float(x) for x in m["spacing_mm"]) if m.get("spacing_mm") else None
    return ModelEntry(
        id=m["id"],
        version=m["version"],
        task=m["task"],
        modality=m["modality"],
        license=LicenseInfo(
            name=lic["name"],
            requires_acceptance=lic["requires_acceptance"],
            url=lic.get("url"),
            text=lic.get("text"),
            note=lic.get("note"),
        ),
        title=m.get("title", ""),
        description=m.get("description", ""),
        quality=m.get("quality"),
        part=m.get("part"),
        spacing_mm=spacing,  # type: ignore[arg-type]
        structures=tuple(Structure(s["value"], s["name"], s.get("total_value")) for s in m.get("structures", [])),
        urls=tuple(m.get("urls", ())),
        path=path,
        bundled=bool(m.get("bundled", False)),
        size_bytes=m.get("size_bytes"),
        sha256=m.get("sha256"),
        homepage=m.get("homepage"),
        citation=m.get("citation"),
        notes=m.get("notes", ""),
        origin=origin,
    )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"Cannot read the model catalogue {path}: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise CatalogError(f"The model catalogue {path} is not valid JSON: {exc}.") from None


def read_catalog_file(path: Path, origin: str) -> List[ModelEntry]:
    """Every entry of a catalogue file; any rule violation rejects the whole file."""
    path = Path(path)
    doc = _read_json(path)
    errs = validate_catalog_document(doc)
    if errs:
        shown = "; ".join(errs[:8]) + (f"; and {len(errs) - 8} more" if len(errs) > 8 else "")
        raise CatalogError(f"The model catalogue {path} is invalid: {shown}.")
    return [_entry_from_dict(m, path.parent, origin) for m in doc["models"]]


def read_catalog_file_lenient(path: Path, origin: str) -> Tuple[List[ModelEntry], List[str]]:
    """(valid entries, one message per skipped entry) of a site or user catalogue.

    These files are edited by hand, so one bad entry must not hide the others (or the built-in
    models). A file that cannot be read as a catalogue at all is skipped with one message.
    """
    path = Path(path)
    try:
        doc = _read_json(path)
    except CatalogError as exc:
        return [], [f"{exc} None of its models are listed."]
    top = validate_catalog_document(dict(doc, models=[])) if isinstance(doc, dict) else []
    if top or not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        errs = top or validate_catalog_document(doc)
        return [], [f"The model catalogue {path} is invalid ({'; '.join(errs[:5])}); none of its models are listed."]
    entries: List[ModelEntry] = []
    problems: List[str] = []
    seen = set()
    for i, m in enumerate(doc["models"]):
        mid = m.get("id") if isinstance(m, dict) else None
        where = f"models[{i}] ('{mid}')" if isinstance(mid, str) else f"models[{i}]"
        errs = _model_errors(m, f"models[{i}]") or ([f"{where}: duplicate id"] if mid in seen else [])
        if errs:
            reasons = "; ".join(e[len(where):].lstrip(".: ") if e.startswith(where) else e for e in errs[:5])
            problems.append(f"Skipped the entry {where} of the model catalogue {path}: {reasons}.")
            continue
        seen.add(mid)
        entries.append(_entry_from_dict(m, path.parent, origin))
    return entries, problems


def catalog_files(layout: Optional[CacheLayout] = None) -> List[Tuple[Path, str]]:
    """Catalogue files in merge order; later files override entries of earlier ones by id."""
    layout = layout or CacheLayout.current()
    models_dir = resources.models_resource_dir()
    files = [(models_dir / resources.CATALOG_NAME, "builtin")]
    site = models_dir / resources.SITE_CATALOG_NAME
    if site.is_file():
        files.append((site, "site"))
    if layout.user_catalog.is_file():
        files.append((layout.user_catalog, "user"))
    return files


def load_catalog(layout: Optional[CacheLayout] = None) -> Catalog:
    """The merged catalogue. The built-in file is strict (a broken one is a packaging error); bad
    site or user entries are skipped and described in ``Catalog.problems``."""
    catalog = Catalog()
    for path, origin in catalog_files(layout):
        if origin == "builtin":
            entries = read_catalog_file(path, origin)
        else:
            entries, problems = read_catalog_file_lenient(path, origin)
            catalog.problems += problems
        for entry in entries:
            catalog.entries[entry.id] = entry
        catalog.sources.append(path)
    return catalog


def entry_to_dict(entry: ModelEntry) -> dict:
    """The JSON form of an entry (for ``info --json`` and for writing the user catalogue)."""
    d: dict = {"id": entry.id, "version": entry.version}
    for key in ("title", "description"):
        if getattr(entry, key):
            d[key] = getattr(entry, key)
    d["task"] = entry.task
    if entry.quality:
        d["quality"] = entry.quality
    if entry.part:
        d["part"] = entry.part
    d["modality"] = entry.modality
    d["spacing_mm"] = list(entry.spacing_mm) if entry.spacing_mm else None
    d["structures"] = [
        {k: v for k, v in (("value", s.value), ("name", s.name), ("total_value", s.total_value)) if v is not None}
        for s in entry.structures
    ]
    lic = {"name": entry.license.name, "requires_acceptance": entry.license.requires_acceptance}
    for key in ("url", "text", "note"):
        if getattr(entry.license, key):
            lic[key] = getattr(entry.license, key)
    d["license"] = lic
    if entry.urls:
        d["urls"] = list(entry.urls)
    if entry.path is not None:
        d["path"] = str(entry.path)
    if entry.bundled:
        d["bundled"] = True
    d["size_bytes"] = entry.size_bytes
    d["sha256"] = entry.sha256
    for key in ("homepage", "citation"):
        if getattr(entry, key):
            d[key] = getattr(entry, key)
    if entry.notes:
        d["notes"] = entry.notes
    return d


def structures_from_dataset_json(dataset: dict) -> Tuple[Structure, ...]:
    """Structures from an nnU-Net v2 ``dataset.json`` (``labels``: name -> value, 0 = background)."""
    labels = dataset.get("labels", {}) if isinstance(dataset, dict) else {}
    out = []
    for name, value in labels.items():
        if _is_int(value) and value >= 1:
            out.append(Structure(int(value), str(name)))
    return tuple(sorted(out, key=lambda s: s.value))


def add_user_entry(entry_dict: dict, layout: Optional[CacheLayout] = None) -> Path:
    """Add or replace one entry in the user catalogue (validated before writing, written atomically)."""
    layout = layout or CacheLayout.current()
    path = layout.user_catalog
    doc = {"schema_version": SCHEMA_VERSION, "models": []}
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise CatalogError(f"The user catalogue {path} is not valid JSON ({exc}); fix or delete it.") from None
    models: Sequence = [m for m in doc.get("models", []) if not (isinstance(m, dict) and m.get("id") == entry_dict["id"])]
    doc["models"] = list(models) + [entry_dict]
    errs = validate_catalog_document(doc)
    if errs:
        raise CatalogError(f"Cannot update the user catalogue {path}: {'; '.join(errs[:5])}.")
    return atomic_write_json(path, doc)
