"""The answers given in Slicer's testing mode, where a modal dialog would wait for nobody.

Each answer is the safe one and is logged: free models are downloaded, a licence is never
accepted unseen, edited segments are kept, packages are installed but Slicer is not restarted,
errors go to the log and nothing is saved to a file nobody chose.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from MedSegAILib.model_availability import MissingModel

_log = logging.getLogger("MedSegAI")


class AutomaticDialogs:
    def confirm_install(self, packages: str) -> bool:
        _log.info("MedSegAI: testing mode, installing %s", packages)
        return True

    def confirm_restart(self) -> bool:
        _log.info("MedSegAI: testing mode, Slicer not restarted after upgrading packages")
        return False

    def confirm_download(self, missing: Sequence[MissingModel]) -> bool:
        restricted = [m.model_id for m in missing if m.licence_must_be_accepted]
        if restricted:
            _log.info("MedSegAI: testing mode, not accepting the licence of %s", ", ".join(restricted))
            return False
        _log.info("MedSegAI: testing mode, downloading %s", ", ".join(m.model_id for m in missing))
        return True

    def ask_about_edited_segments(self, message: str) -> Optional[str]:
        _log.info("MedSegAI: testing mode, edited segments kept: %s", message)
        return "keep"

    def show_error(self, message: str) -> None:
        _log.error("MedSegAI: %s", message)

    def ask_save_path(self, title: str, default_name: str, file_filter: str) -> Optional[str]:
        _log.info("MedSegAI: testing mode, '%s' not asked; nothing saved", title)
        return None

    def ask_open_path(self, title: str, file_filter: str) -> Optional[str]:
        _log.info("MedSegAI: testing mode, '%s' not asked; nothing read", title)
        return None
