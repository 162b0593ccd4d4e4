"""Shared fixtures: the real data folder and small nnU-Net model folders planned by nnU-Net itself."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

TS_LABELS = {"background": 0, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5,
             "stomach": 6, "pancreas": 7}


def _data_dir() -> Path:
    return Path(os.environ.get("MEDSEGAI_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not (d / "README.md").is_file():
        # CI must fail, not skip, when the real data is missing.
        pytest.fail(f"Real test data not found at {d}: set MEDSEGAI_DATA_DIR or put ../shared/data beside the repo.")
    return d


@pytest.fixture(scope="session")
def ts_ref(data_dir) -> Path:
    return data_dir / "ct" / "totalsegmentator-examples" / "tests" / "reference_files"


@pytest.fixture(scope="session")
def nnunet_plans(ts_ref, tmp_path_factory):
    """Plans from nnU-Net's own fingerprint extractor and ExperimentPlanner on a real CT (run once)."""
    from model_factory import plan_with_nnunet

    cache = tmp_path_factory.mktemp("plans") / "plans.json"
    plans, dataset = plan_with_nnunet([(ts_ref / "example_ct_sm.nii.gz", ts_ref / "example_seg.nii.gz")], TS_LABELS)
    cache.write_text(json.dumps([plans, dataset]))
    return plans, dataset


@pytest.fixture(scope="session")
def small_model(nnunet_plans, tmp_path_factory) -> Path:
    """A small architecture (CI-sized) with nnU-Net's planned spacing/normalisation, new plans format."""
    from model_factory import shrink_plans, write_model_folder

    plans, dataset = nnunet_plans
    return write_model_folder(tmp_path_factory.mktemp("small"), shrink_plans(plans, patch=(32, 64, 64)), dataset)
