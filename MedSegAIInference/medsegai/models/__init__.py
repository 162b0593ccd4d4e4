"""Model catalogue, downloads, cache and offline import.

Public API::

    resolve_model(id_or_path, *, allow_download=False, accept_license=False, progress=None, cancel=None) -> Path
    load_catalog() -> Catalog            # built-in + site + user catalogue merged
    cache_dir() -> Path                  # $MEDSEGAI_HOME, the cache_dir setting, or ~/.medsegai
    pull(model_id, ...) -> Path
    import_model(path, model_id=None, ...) -> Path
    remove(model_id, *, forget_hash=False) -> bool
    verify(model_id) -> VerifyReport
    info(model_id) -> ModelStatus, list_models() -> [ModelStatus]

Nothing here sends data anywhere: the only network access is the download of a model file the
user asked for, from the URL in the catalogue.
"""
from .api import (
    ModelStatus, VerifyReport, import_model, info, list_models, locate, pull, remove, resolve_model, verify,
)
from .cache import CacheLayout, cache_dir, set_cache_dir_setting
from .catalog import Catalog, LicenseInfo, ModelEntry, Structure, load_catalog
from .download import DownloadOptions
from .errors import (
    CatalogError, ChecksumError, DownloadError, InstallLockTimeout, LicenseNotAcceptedError, ModelNotFoundError,
    ModelNotInstalledError, UnsafeArchiveError,
)
from .extract import ExtractLimits
from .licenses import license_notice

__all__ = [
    "resolve_model", "load_catalog", "cache_dir", "set_cache_dir_setting", "pull", "import_model", "remove",
    "verify", "info", "list_models", "locate", "license_notice", "ModelStatus", "VerifyReport", "CacheLayout",
    "Catalog", "LicenseInfo", "ModelEntry", "Structure", "DownloadOptions", "ExtractLimits", "CatalogError",
    "ChecksumError", "DownloadError", "InstallLockTimeout", "LicenseNotAcceptedError", "ModelNotFoundError",
    "ModelNotInstalledError", "UnsafeArchiveError",
]
