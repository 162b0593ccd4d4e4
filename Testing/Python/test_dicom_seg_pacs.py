"""A real PACS: Orthanc (Debian packages orthanc + orthanc-dicomweb) on 127.0.0.1, started per module.

The series is stored in Orthanc, ``medsegai segment --from-pacs`` pulls it over WADO-RS, segments it,
stores the SEG back with STOW-RS (``--send-to``), and the SEG is read again from Orthanc and checked
against the run's NIfTI. Skipped only where the orthanc packages cannot be installed (setup_env.sh
--test installs them where apt-get runs as root, as in CI).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests

from dicom_seg_support import pancreas_crop
from medsegai.cli import main
from medsegai.io import read_image
from medsegai.io.dicom_seg_read import read_dicom_seg

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

if not Path(ORTHANC).exists() or not DICOMWEB_PLUGIN.exists():
    if os.geteuid() == 0 and shutil.which("apt-get") and subprocess.run(
            ["apt-cache", "show", "orthanc-dicomweb"], capture_output=True).returncode == 0:
        # Where setup_env.sh --test could install it (root, Debian packages available), a missing Orthanc
        # is a broken setup, not a reason to skip the PACS tests.
        pytest.fail("Orthanc is installable here but not installed: run MedSegAIInference/setup_env.sh --test",
                    pytrace=False)
    pytest.skip("Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb; "
                "MedSegAIInference/setup_env.sh --test does it where apt-get runs as root)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "MEDSEGAI-TEST", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "MEDSEGAITEST", "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "HttpServerEnabled": True, "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = open(root / "orthanc.log", "w")
    proc = subprocess.Popen([ORTHANC, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Orthanc exited with {proc.returncode}: {(root / 'orthanc.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{base}/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("Orthanc did not start within 60 s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def stored_series(orthanc, data_dir, tmp_path_factory):
    """A crop of the pancreas CT series, stored in Orthanc through its REST API (as a modality would)."""
    folder = pancreas_crop(data_dir, tmp_path_factory.mktemp("src") / "ct", count=10)
    for f in sorted(folder.iterdir()):
        r = requests.post(f"{orthanc}/instances", data=f.read_bytes(), timeout=30)
        assert r.ok, r.text
    ds = pydicom.dcmread(str(next(folder.iterdir())), stop_before_pixels=True)
    return folder, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def test_pull_segment_store_and_read_back_from_orthanc(orthanc, stored_series, tmp_path):
    folder, study, series = stored_series
    web = f"{orthanc}/dicom-web"
    out = tmp_path / "out"
    assert main(["segment", "--from-pacs", web, "--study", study, "-o", str(out), "-ot", "dicom_seg", "--ml",
                 "--uncertainty", "entropy", "--send-to", web, "--device", "cpu", "-q"]) == 0
    # The SEG is now in Orthanc, in the source's study, referencing the source series.
    found = requests.get(f"{web}/studies/{study}/series", params={"Modality": "SEG"},
                         headers={"Accept": "application/dicom+json"}, timeout=30).json()
    assert len(found) == 1
    seg_series = found[0]["0020000E"]["Value"][0]
    r = requests.get(f"{web}/studies/{study}/series/{seg_series}",
                     headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=60)
    from medsegai.io.dicomweb import _parts

    (data,) = _parts(r)
    pulled = tmp_path / "pulled_seg.dcm"
    pulled.write_bytes(data)
    assert pulled.read_bytes() == (out / "segmentation.dcm").read_bytes()
    ds = pydicom.dcmread(str(pulled), stop_before_pixels=True)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series
    nifti = read_image(out / "segmentation.nii.gz")
    source = read_image(folder)
    assert nifti.same_grid(source)
    import csv

    values = {row["name"]: int(row["value"]) for row in csv.DictReader(open(out / "segmentation_labels.csv"))}
    back = read_dicom_seg(pulled, reference=source).relabel(values)
    np.testing.assert_array_equal(back.labels.array, nifti.array)
    # The uncertainty's Parametric Map went with it, into the same study.
    maps = requests.get(f"{web}/studies/{study}/series", params={"Modality": "OT"},  # highdicom: Modality OT
                        headers={"Accept": "application/dicom+json"}, timeout=30).json()
    assert len(maps) == 1
    r = requests.get(f"{web}/studies/{study}/series/{maps[0]['0020000E']['Value'][0]}",
                     headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=60)
    (data,) = _parts(r)
    assert data == (out / "segmentation_uncertainty.dcm").read_bytes()


def test_wrong_port_and_unknown_study_are_one_clear_line(orthanc, stored_series, tmp_path, capsys):
    dead = f"http://127.0.0.1:{_free_port()}/dicom-web"
    assert main(["segment", "--from-pacs", dead, "--study", stored_series[1], "-o", str(tmp_path / "o"),
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Cannot reach the PACS" in err[0]
    assert main(["segment", "--from-pacs", f"{orthanc}/dicom-web", "--study", "1.2.3.4.5", "-o",
                 str(tmp_path / "o"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0] and "HTTP 404" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_pacs_that_refuses_the_store_is_one_line_and_the_results_stay(orthanc, stored_series, tmp_path, capsys):
    folder = stored_series[0]
    out = tmp_path / "seg.dcm"
    assert main(["segment", "-i", str(folder), "-o", str(out), "--send-to", f"{orthanc}/no-such-dicom-web",
                 "--device", "cpu", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0] and "Nothing was sent" in err[0] and str(tmp_path) in err[0]
    assert out.is_file()  # complete, and still there to send again
