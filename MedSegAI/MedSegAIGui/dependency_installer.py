"""First use: install the runner's Python packages into Slicer after the user agrees.

PyTorch goes through Slicer's PyTorch extension when present (it picks the CUDA build for the
GPU), the rest through ``slicer.util.pip_install`` under constraints that pin the packages Slicer
ships itself (SimpleITK, numpy, requests, VTK).
"""
from __future__ import annotations

import os
from typing import Optional

import slicer

from .dialogs import Dialogs, default_dialogs


def ensure_dependencies(dialogs: Optional[Dialogs] = None) -> bool:
    """True when everything is there (now or after installing); False when declined or failed."""
    from MedSegAILib.dependencies import plan_installation

    dialogs = dialogs or default_dialogs()
    plan = plan_installation()
    if plan.empty:
        return True
    if not dialogs.confirm_install(plan.describe()):
        return False
    try:
        with slicer.util.WaitCursor():
            if plan.torch and not _install_torch(plan.torch):
                return False
            if plan.pip_requirements:
                constraints = os.path.join(slicer.app.temporaryPath, "MedSegAI-constraints.txt")
                with open(constraints, "w") as f:
                    f.write("\n".join(plan.constraints) + "\n")
                slicer.util.pip_install(plan.pip_arguments(constraints))
    except Exception as e:  # pip's CalledProcessError, no network, a full disk: a message, not a traceback
        dialogs.show_error(f"Installing MedSegAI's Python packages failed: {e}\n\n"
                           "Check the network connection (or proxy settings) and try again.")
        return False
    if plan.restart_needed and dialogs.confirm_restart():
        slicer.util.restart()
    return True


def _install_torch(requirement: str) -> bool:
    try:
        import PyTorchUtils
    except ImportError:
        PyTorchUtils = None
    if PyTorchUtils is not None:
        torch_utils = PyTorchUtils.PyTorchUtilsLogic()
        try:
            return torch_utils.installTorch(askConfirmation=False, torchVersionRequirement=requirement) is not None
        except TypeError:  # PyTorch extensions older than 2023 take no version requirement
            pass
    slicer.util.pip_install(f'"torch{requirement}"')
    return True
