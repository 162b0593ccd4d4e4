"""Models installed by TotalSegmentator itself, so users who have its weights never download twice.

TotalSegmentator keeps each model as ``<weights dir>/<DatasetXXX_...>/<trainer>__<plans>__<cfg>/``,
the weights dir being ``$TOTALSEG_WEIGHTS_PATH``, else ``$TOTALSEG_HOME_DIR/nnunet/results``, else
``~/.totalsegmentator/nnunet/results``. These folders are only read, never changed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional


def totalsegmentator_weight_dirs() -> List[Path]:
    dirs = []
    if os.environ.get("TOTALSEG_WEIGHTS_PATH"):
        dirs.append(Path(os.environ["TOTALSEG_WEIGHTS_PATH"]).expanduser())
    home = os.environ.get("TOTALSEG_HOME_DIR")
    if home:
        dirs.append(Path(home).expanduser() / "nnunet" / "results")
    else:
        # TotalSegmentator maps a home of "/" (some containers) to /tmp; do the same.
        user_home = Path("/tmp") if str(Path.home()) == "/" else Path.home()
        dirs.append(user_home / ".totalsegmentator" / "nnunet" / "results")
    return dirs


def find_totalsegmentator_model(model_id: str) -> Optional[Path]:
    """The folder TotalSegmentator installed for ``model_id`` if it holds a result folder."""
    from ..nnunet.folder_layout import find_result_folders

    for base in totalsegmentator_weight_dirs():
        candidate = base / model_id
        if candidate.is_dir() and find_result_folders(candidate):
            return candidate
    return None
