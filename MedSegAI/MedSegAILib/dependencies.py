"""Which Python packages the runner needs inside Slicer, and how to install them safely.

Nothing here installs on import. :func:`plan_installation` is pure (tested without Slicer); the
module's confirmation dialog then runs its steps: torch through Slicer's PyTorch extension when
present (it picks the right CUDA build), the rest with ``slicer.util.pip_install`` under a
constraints file that pins Slicer's own SimpleITK, numpy, requests and VTK to the installed
versions, so pip can never replace them.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

# The runner's dependencies (MedSegAIInference/pyproject.toml, which a test keeps identical) less
# the ones Slicer ships: floors for the APIs the runner uses, ceilings at the next major version.
REQUIREMENTS = (
    "torch>=2.1,<3",
    "scipy>=1.10,<2",
    "scikit-image>=0.21,<1",
    "monai>=1.4,<2",
    "filelock>=3.8,<5",
    "pillow>=9,<14",
)
# Slicer ships these; replacing them breaks Slicer itself.
PROTECTED = ("SimpleITK", "numpy", "requests", "vtk")
# Packages Slicer may already have imported: upgrading them needs a restart to take effect.
NEEDS_RESTART_IF_UPGRADED = ("torch", "scipy", "pillow", "scikit-image", "filelock")


def installed_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class InstallPlan:
    torch: Optional[str] = None  # requirement for torch, or None when it is fine
    pip_requirements: List[str] = field(default_factory=list)
    constraints: List[str] = field(default_factory=list)  # "numpy==1.26.4" lines
    restart_needed: bool = False

    @property
    def empty(self) -> bool:
        return self.torch is None and not self.pip_requirements

    def describe(self) -> str:
        parts = ([f"PyTorch ({self.torch})"] if self.torch else []) + self.pip_requirements
        return ", ".join(parts)

    def pip_arguments(self, constraints_file: str) -> str:
        """Arguments for ``slicer.util.pip_install`` (a single string, as it expects)."""
        quoted = " ".join(f'"{r}"' for r in self.pip_requirements)
        return f'{quoted} -c "{constraints_file}"'


def plan_installation(version_of: Callable[[str], Optional[str]] = installed_version) -> InstallPlan:
    plan = InstallPlan()
    for line in REQUIREMENTS:
        req = Requirement(line)
        have = version_of(req.name)
        ok = False
        if have is not None:
            try:
                ok = req.specifier.contains(Version(have), prereleases=True)
            except InvalidVersion:
                ok = False
        if ok:
            continue
        if have is not None and req.name in NEEDS_RESTART_IF_UPGRADED:
            plan.restart_needed = True
        if req.name == "torch":
            plan.torch = str(req.specifier)
        else:
            plan.pip_requirements.append(line)
    for name in PROTECTED:
        have = version_of(name)
        if have is not None:
            plan.constraints.append(f"{name}=={have}")
    return plan


def missing_summary(plan: InstallPlan) -> Dict[str, str]:
    return {"torch": plan.torch or "", "pip": " ".join(plan.pip_requirements)}
