"""Errors of the model catalogue, download and cache, each with a message a user can act on."""
from __future__ import annotations

from ..errors import InvalidModelError, MedSegAIError


class CatalogError(MedSegAIError):
    """A catalogue file (built-in or user) is missing, not JSON, or breaks the schema."""


class ModelNotFoundError(MedSegAIError):
    """No catalogue entry, installed model or folder matches the requested id or path."""


class ModelNotInstalledError(ModelNotFoundError):
    """The model is in the catalogue but not installed, and downloading was not allowed."""


class DownloadError(MedSegAIError):
    """The download failed after its retries (HTTP error, time-out, TLS, proxy, connection)."""


class ChecksumError(MedSegAIError):
    """A file's SHA256 differs from the catalogue or from the hash recorded at first use."""


class LicenseNotAcceptedError(MedSegAIError):
    """The model's licence requires explicit acceptance, which has not been given."""


class UnsafeArchiveError(InvalidModelError):
    """An archive is corrupt, truncated, or holds unsafe members (traversal, links, bombs)."""


class InstallLockTimeout(MedSegAIError):
    """Another process held the install lock of the same model for too long."""
