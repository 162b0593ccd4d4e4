"""Remote runs: the client side of ``medsegai serve`` (requests only; no FastAPI here).

:class:`RemoteClient` checks the server's protocol version before anything is uploaded, sends a
:class:`~medsegai.RunRequest` with the image (compressed, exact geometry), follows the job's
progress stream, cancels it on request and unpacks the result into the same files a local run
writes. The packing of images and results (:mod:`.payload`) is shared with the server.
"""
from .protocol import PROTOCOL_VERSION, OutputOptions, RemoteError, ProtocolMismatchError

__all__ = ["PROTOCOL_VERSION", "OutputOptions", "RemoteError", "ProtocolMismatchError", "RemoteClient"]


def __getattr__(name):
    if name == "RemoteClient":  # requests is imported only when a remote run is asked for
        from .client import RemoteClient

        return RemoteClient
    raise AttributeError(f"module 'medsegai.remote' has no attribute {name!r}")
