"""What the server and its clients agree on: the protocol version, headers and the output options.

Standard library only: the Slicer GUI process and the client import this without FastAPI.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

from ..errors import MedSegAIError

# Bumped whenever a route, a payload or a reply changes meaning. Client and server must agree
# exactly: a silently misread option could give a wrong segmentation that looks right.
PROTOCOL_VERSION = 2  # 2: the run request carries "speed"
PROTOCOL_HEADER = "X-MedSegAI-Protocol"
SHA256_HEADER = "X-MedSegAI-SHA256"
TOKEN_ENV = "MEDSEGAI_TOKEN"
# Zip members of an uploaded image: the voxels as .npy, their geometry and (for jobs) the options.
ARRAY_MEMBER, META_MEMBER = "image.npy", "meta.json"
REMOTE_LABEL_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd")  # no DICOM SEG: its source slices stay local
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


# A keep-alive connection dies when the server's idle timer fires; a request sent on it at that moment
# gets no answer at all ("Remote end closed connection without response"). uvicorn's default timer
# is 5 s, which is also what Retry-After says while a short job runs, so a client waiting out a full
# queue used to send exactly as the server closed. The server keeps idle connections this long ...
SERVER_KEEP_ALIVE_S = 30
# ... and the client never reuses one idle longer than this: far below that, and a second below the 5 s
# of reverse proxies left at their defaults (Apache's).
CLIENT_IDLE_REUSE_S = 4.0

UNREACHABLE = "Unreachable"  # RemoteError.error_type when no answer came (refused connection, timeout)


class RemoteError(MedSegAIError):
    """The server could not be reached, refused the request, or failed the job; the message says which.

    ``status`` is the HTTP status of a refusal and ``error_type`` the server's name for it, or
    :data:`UNREACHABLE` when no answer came, so a caller can tell an expired session (404
    ``UnknownSession``) or a wrong token from a dead server.
    """

    def __init__(self, message: str, status: Optional[int] = None, error_type: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class ProtocolMismatchError(RemoteError):
    """Client and server speak different protocol versions."""


class AuthError(RemoteError):
    """The server refused the token (or needs one)."""


class ServerBusyError(RemoteError):
    """The server's queue (or session table) is full; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def mismatch_message(client: Any, server: Any, url: str) -> str:
    return (f"The server at {url} speaks MedSegAI protocol {server}, this client speaks {client}; "
            f"install the same MedSegAI version on both (nothing was uploaded).")


@dataclass
class OutputOptions:
    """Which files the server writes for a job: the same choices as ``medsegai segment -o``."""
    stem: str = "segmentation"
    label_suffix: Optional[str] = None  # one label file (as -o x.seg.nrrd); None: the folder's files
    masks: bool = True  # per-structure masks (False with --ml or a single file)
    preview: bool = False
    probabilities: bool = False

    def validate(self) -> "OutputOptions":
        if not isinstance(self.stem, str) or not _SAFE_STEM.match(self.stem) or ".." in self.stem:
            raise RemoteError(f"The output name {self.stem!r} is not a plain file name.")
        if self.label_suffix is not None and self.label_suffix not in REMOTE_LABEL_SUFFIXES:
            raise RemoteError(f"A remote run writes labels as {', '.join(REMOTE_LABEL_SUFFIXES)} "
                              f"(got {self.label_suffix!r}); write a DICOM SEG locally with medsegai convert.")
        for name in ("masks", "preview", "probabilities"):
            if not isinstance(getattr(self, name), bool):
                raise RemoteError(f"The output option {name} must be true or false.")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "OutputOptions":
        if not isinstance(data, dict):
            raise RemoteError("The output options must be a JSON object.")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise RemoteError(f"Unknown output option(s): {', '.join(unknown)}.")
        return cls(**data).validate()
