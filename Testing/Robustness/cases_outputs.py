"""Outputs to places that cannot take them (read-only, missing, full) and interactive prompts outside
the image. A full disk is a small tmpfs where mounting works (root), else RLIMIT_FSIZE in the child."""
from __future__ import annotations

import atexit
import os
import subprocess
from pathlib import Path

import SimpleITK as sitk

from .cases_images import base_ct
from .corpus import Inputs, case

OUTPUT_ENTRIES = ("api", "cli", "worker", "batch", "server")
EARLIER = b"the earlier result: it must survive a failed run\n"


def _ct(d: Path) -> Path:
    p = d / "ct.nii.gz"
    sitk.WriteImage(base_ct(), str(p))
    return p


def _mount_tmpfs(where: Path, options: str) -> bool:
    """A tmpfs at ``where`` (unmounted at exit); False where this process may not mount."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode == 0
    if ok:
        MOUNTED.append(where)
    return ok


MOUNTED: list = []


@atexit.register
def unmount_all() -> None:
    """Called by the runner before it removes its folder (and at exit, should it not get there)."""
    while MOUNTED:
        subprocess.run(["umount", "-l", str(MOUNTED.pop())], capture_output=True)


@case("out_read_only", "output location", OUTPUT_ENTRIES, fast=True, match=r"(Read-only|Permission denied|read-only)")
def _(d):
    ro = d / "ro"
    if not _mount_tmpfs(ro, "ro,size=64k"):
        os.chmod(ro, 0o555)  # not root: a plain read-only folder is refused the same way
    return Inputs(input=_ct(d), output=ro / "out")


@case("out_parent_is_a_file", "output location", OUTPUT_ENTRIES, match=r"(Not a directory|File exists|is a file|exists)")
def _(d):
    blocker = d / "results.txt"
    blocker.write_text("a file where the output folder's parent should be")
    return Inputs(input=_ct(d), output=blocker / "out", keep=(blocker,))


@case("out_cannot_be_created", "output location", OUTPUT_ENTRIES, match=r"(No such file|Permission denied|Read-only|cannot)")
def _(d):
    return Inputs(input=_ct(d), output=Path("/proc/medsegai-corpus/out"))


@case("out_disk_full", "output location", OUTPUT_ENTRIES, fast=True, match=r"(No space left|File too large|Cannot write)")
def _(d):
    full = d / "full"
    if _mount_tmpfs(full, "size=32k"):
        return Inputs(input=_ct(d), output=full / "out")
    return Inputs(input=_ct(d), output=full / "out", fsize_limit=4096)


@case("out_disk_full_keeps_earlier_result", "output location", OUTPUT_ENTRIES, match=r"(No space left|File too large|Cannot write)")
def _(d):
    out = d / "previous_run"
    out.mkdir()
    earlier = []
    for name in ("segmentation.nii.gz", "segmentation.seg.nrrd", "segmentation_labels.csv"):
        (out / name).write_bytes(EARLIER)
        earlier.append(out / name)
    # Any file over 4 KiB fails to write: the first label file already does.
    return Inputs(input=_ct(d), output=out, fsize_limit=4096, keep=tuple(earlier))


@case("out_dicom_seg_from_nifti", "output location", ("cli",), fast=True,
      match=r"DICOM SEG needs a DICOM source series|DICOM source")
def _(d):
    return Inputs(input=_ct(d), output=d / "seg.dcm")


# -- interactive prompts outside the image -----------------------------------------------------------
INTERACTIVE_ENTRIES = ("api", "cli", "server")


def _prompt(d: Path, kind: str, value) -> Inputs:
    flag = {"point": "--point", "negative": "--negative", "box": "--box"}[kind]
    text = ",".join(str(v) for v in (value if kind != "box" else [x for pair in value for x in pair]))
    p = _ct(d)
    return Inputs(input=p, output=d / "mask.nii.gz", reference=(kind, value),
                  cli=["interactive", "-i", str(p), f"{flag}={text}",  # "=": argparse takes "-1,..." for an option
                        "--engine", "classical", "-o", str(d / "mask.nii.gz"),
                       "-d", "cpu", "-q"])


@case("prompt_point_outside", "interactive prompt", INTERACTIVE_ENTRIES, kind="interactive", fast=True,
      match=r"outside")
def _(d):
    return _prompt(d, "point", (15, 999, 20))


@case("prompt_negative_index", "interactive prompt", INTERACTIVE_ENTRIES, kind="interactive", match=r"outside")
def _(d):
    return _prompt(d, "negative", (-1, 10, 10))


@case("prompt_box_outside", "interactive prompt", INTERACTIVE_ENTRIES, kind="interactive",
      match=r"(outside|empty|zero)")
def _(d):
    return _prompt(d, "box", ((40, 50), (10, 20), (10, 20)))


@case("prompt_box_zero_size", "interactive prompt", INTERACTIVE_ENTRIES, kind="interactive",
      match=r"(zero|empty)")
def _(d):
    return _prompt(d, "box", ((10, 10), (10, 20), (10, 20)))
