"""Errors the Slicer module shows to the user as a message, never as a traceback."""
from medsegai.errors import MedSegAIError


class InputError(MedSegAIError):
    """The chosen input (volume, segmentation, subset) cannot be used; nothing was changed."""


class EditedSegmentsError(MedSegAIError):
    """The output segmentation holds segments the user edited; the caller must decide."""

    def __init__(self, names):
        self.names = list(names)
        shown = ", ".join(self.names[:8]) + (" ..." if len(self.names) > 8 else "")
        super().__init__(
            f"The output segmentation has {len(self.names)} segment(s) edited since MedSegAI created them "
            f"({shown}). Keep the edited segments, replace them, or choose a new segmentation."
        )


class ModelsNotInstalledError(InputError):
    """A run needs catalogue models that are not installed and the caller did not allow a download."""

    def __init__(self, message, missing):
        self.missing = list(missing)  # [MissingModel]
        super().__init__(message)


class SessionLostError(MedSegAIError):
    """The worker holding an interactive session died; nothing was changed, the next prompt starts a new one."""
