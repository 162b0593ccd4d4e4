"""``medsegai interactive``: prompts in command-line order, the mask on the input's exact grid, clean failures."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi

from medsegai.cli import main
from medsegai.interactive import InteractiveSession
from medsegai.io.read import read_image


@pytest.fixture(scope="module")
def ct_path(ts_ref):
    return ts_ref / "example_ct.nii.gz"


@pytest.fixture(scope="module")
def spleen(ts_ref):
    return read_image(ts_ref / "example_seg_fast_force_split.nii.gz").array == 1


def deepest(mask):
    d = ndi.distance_transform_edt(mask)
    return tuple(int(x) for x in np.unravel_index(np.argmax(d), d.shape))


def fmt(values) -> str:
    return ",".join(str(v) for v in values)


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_writes_the_session_mask_on_the_input_grid(ct_path, spleen, tmp_path, capsys):
    inside = deepest(spleen)
    rim = deepest(spleen & ~ndi.binary_erosion(spleen, iterations=2))
    box = [(s.start, s.stop) for s in ndi.find_objects(spleen.astype(np.uint8))[0]]
    out_file = tmp_path / "spleen.nii.gz"
    rc, out, err = run(["interactive", "-i", ct_path, "--engine", "classical", "--point", fmt(inside),
                        "--negative", fmt(rim), "--box", fmt(np.ravel(box)), "--point", fmt(inside),
                        "-o", out_file], capsys)
    assert rc == 0, err
    image, mask = read_image(ct_path), read_image(out_file)
    assert mask.same_grid(image, atol=1e-6) and mask.array.dtype == np.uint8
    # the same prompts, in the same order, through the API
    s = InteractiveSession(engine="classical")
    s.set_image(image)
    s.add_point(inside)
    s.add_point(rim, positive=False)
    s.add_box(tuple(box))
    s.add_point(inside)
    np.testing.assert_array_equal(mask.array, s.mask)
    assert s.mask.any()
    latency = [ln for ln in out.splitlines() if " ms; mask " in ln]
    assert len(latency) == 4 and latency[1].startswith("negative ")
    assert f"mask: {out_file}" in out


def test_dicom_input_and_mask_option(ts_ref, tmp_path, capsys):
    series = ts_ref / "example_ct_dicom"
    liver = read_image(ts_ref / "example_seg_dicom.nii.gz").array[:, ::-1, :] == 5  # its rows are stored flipped
    box = [(s.start, s.stop) for s in ndi.find_objects(liver.astype(np.uint8))[0]]
    first = tmp_path / "first.nrrd"
    rc, _, err = run(["interactive", "-i", series, "--engine", "classical", "--box", fmt(np.ravel(box)),
                      "-o", first, "-q"], capsys)
    assert rc == 0, err
    image, mask = read_image(series), read_image(first)
    assert mask.same_grid(image, atol=1e-6) and mask.array.any()
    click = deepest(mask.array.astype(bool))
    edited = tmp_path / "edited.nii.gz"
    rc, out, err = run(["interactive", "-i", series, "--engine", "classical", "--mask", first, "--negative",
                        fmt(click), "-o", edited], capsys)
    assert rc == 0, err
    after = read_image(edited).array
    assert after[click] == 0 and 0 < after.sum() < mask.array.sum()
    assert not np.any(after & ~mask.array)


@pytest.mark.parametrize("args, message", [
    (["--point", "10,20"], "expected 3 whole numbers"),
    (["--point", "a,b,c"], "expected 3 whole numbers"),
    (["--point", "500,20,20"], "outside the image"),
    (["--box", "10,10,0,5,0,5"], "zero size"),
    (["--box", "1,2,3"], "expected 6 whole numbers"),
    ([], "No prompt given"),
    (["--point", "10,20,30", "--engine", "magic"], "Unknown interactive engine 'magic'"),
    (["--text", "livr"], "Closest known names: liver"),
    (["--point", "10,20,30", "--mask", "/nonexistent/mask.nii.gz"], "not found"),
])
def test_bad_input_is_one_error_line_exit_1_and_no_file(ct_path, tmp_path, capsys, args, message):
    out_file = tmp_path / "mask.nii.gz"
    rc, _, err = run(["interactive", "-i", ct_path, "--engine", "classical", *args, "-o", out_file], capsys)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medsegai: error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_bad_input_image_or_output_name(ts_ref, tmp_path, capsys):
    for argv, message in [
        (["-i", ts_ref / "missing.nii.gz", "--point", "1,1,1", "-o", tmp_path / "m.nii.gz"], "not found"),
        (["-i", ts_ref / "example_ct.nii.gz", "--point", "1,1,1", "-o", tmp_path / "m.png"], "must end in"),
    ]:
        rc, _, err = run(["interactive", *argv], capsys)
        assert rc == 1 and err.startswith("medsegai: error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_keeps_an_existing_output(ct_path, tmp_path, capsys):
    out_file = tmp_path / "mask.nii.gz"
    out_file.write_bytes(b"previous result")
    rc, _, _ = run(["interactive", "-i", ct_path, "--engine", "classical", "--point", "1,1,1", "--point", "999,1,1",
                   "-o", out_file], capsys)
    assert rc == 1 and out_file.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz"]


def test_installed_command_reports_errors_on_one_line(ct_path, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "medsegai.cli", "interactive", "-i", str(ct_path), "--negative",
                           "1,2", "-o", str(tmp_path / "m.nii.gz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "medsegai: error: --negative '1,2': expected 3 whole numbers K,J,I."
