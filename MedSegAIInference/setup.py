"""Build step that ships the model catalogue inside the wheel.

The catalogue lives in the repository at ``Resources/Models/`` (shared with the Slicer extension),
outside this package folder. When building, copy ``catalog*.json`` into
``medsegai/_resources/Models/`` of the build, where ``medsegai.models.resources`` finds it after a
``pip install``. All other metadata is in pyproject.toml. An sdist does not see ``../Resources``;
building a wheel from one then relies on ``_resources`` already being in the package folder
(``MANIFEST``-free: copy happens into the build tree only, never into the source tree).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CATALOG_SOURCE = HERE.parent / "Resources" / "Models"


class build_py_with_catalog(build_py):
    def run(self):
        super().run()
        if not self.dry_run and CATALOG_SOURCE.is_dir():
            target = Path(self.build_lib) / "medsegai" / "_resources" / "Models"
            target.mkdir(parents=True, exist_ok=True)
            for src in sorted(CATALOG_SOURCE.glob("catalog*.json")):
                shutil.copy2(src, target / src.name)


setup(cmdclass={"build_py": build_py_with_catalog})
