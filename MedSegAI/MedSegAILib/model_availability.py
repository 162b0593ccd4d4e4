"""Which models a request needs that are not installed, described for a download question.

Read in the GUI process from the merged catalogue (built-in, site and user), without hashing, so
Apply can ask before the run instead of the worker failing with "not installed".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

from .errors import InputError, ModelsNotInstalledError


@dataclass(frozen=True)
class MissingModel:
    model_id: str
    title: str
    size_bytes: Optional[int]
    licence: str
    licence_must_be_accepted: bool
    licence_notice: str
    url: Optional[str]

    def describe(self) -> str:
        size = f"{self.size_bytes / 1e6:.0f} MB" if self.size_bytes else "size not published"
        return f"{self.title or self.model_id} ({size}; licence {self.licence})"


def missing_models(task: Optional[str], quality: str, model: Optional[str],
                   subset: Optional[Sequence[str]]) -> List[MissingModel]:
    from medsegai.errors import MedSegAIError
    from medsegai.models import license_notice, load_catalog
    from medsegai.models.requirements import missing_models as missing_statuses, models_for_run

    try:
        catalog = load_catalog()
        statuses = missing_statuses(models_for_run(task, quality, model, subset, catalog), catalog)
    except MedSegAIError as e:
        raise InputError(f"The model catalogue cannot be read: {e}") from None
    out = []
    for s in statuses:
        e = s.entry
        if e is None:  # an id no catalogue lists: the runner's own message says what to do
            continue
        out.append(MissingModel(e.id, e.title, e.size_bytes, e.license.name,
                                bool(e.license.requires_acceptance and not s.license_accepted), license_notice(e),
                                e.urls[0] if e.urls else None))
    return out


def not_installed_error(missing: Sequence[MissingModel]) -> ModelsNotInstalledError:
    listed = "; ".join(m.describe() for m in missing)
    offline = next((m.url for m in missing if m.url), None)
    return ModelsNotInstalledError(
        f"Not installed yet: {listed}. Press Apply in the MedSegAI panel to download, or from the Python "
        "console pass download=True" + (f". Offline: download {offline} on another computer and run "
                                         "medsegai.models.import_model('<zip>') in the Python console." if offline
                                         else "."), missing)
