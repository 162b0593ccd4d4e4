"""Model folders and model archives: bad plans, mismatched or truncated checkpoints, checkpoints that
try to run code, zip bombs, archives that write outside their folder."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from .cases_images import base_ct
from .corpus import DEMO_MODEL, REPO, Inputs, case

MODEL_ENTRIES = ("api", "cli", "worker", "logic", "batch")  # the server names models by id, never a path
HEAD_NECK = REPO / "Resources/Models/medsegai_head_neck_oar/MedSegAITrainer__nnUNetPlans__3d_fullres"


def _ct(d: Path) -> Path:
    import SimpleITK as sitk

    p = d / "ct.nii.gz"
    sitk.WriteImage(base_ct(), str(p))
    return p


def _model(d: Path, damage) -> Inputs:
    m = d / "model" / DEMO_MODEL.name
    shutil.copytree(DEMO_MODEL, m)
    damage(m)
    return Inputs(input=_ct(d), model=m)


def _plans(m: Path, edit) -> None:
    p = json.loads((m / "plans.json").read_text())
    edit(p, p["configurations"]["3d_fullres"])
    (m / "plans.json").write_text(json.dumps(p))


def _ckpt(m: Path) -> Path:
    return m / "fold_0" / "checkpoint_final.pth"


@case("model_plans_broken_json", "model folder", MODEL_ENTRIES, fast=True, match=r"plans\.json is not valid JSON")
def _(d):
    return _model(d, lambda m: (m / "plans.json").write_text((m / "plans.json").read_text()[:200]))


@case("model_plans_no_configuration", "model folder", MODEL_ENTRIES, match=r"3d_fullres")
def _(d):
    return _model(d, lambda m: _plans(m, lambda p, c: p["configurations"].pop("3d_fullres")))


@case("model_plans_negative_patch", "model folder", MODEL_ENTRIES, match=r"patch")
def _(d):
    return _model(d, lambda m: _plans(m, lambda p, c: c.__setitem__("patch_size", [-32, 48, 48])))


@case("model_plans_zero_spacing", "model folder", MODEL_ENTRIES, match=r"spacing")
def _(d):
    return _model(d, lambda m: _plans(m, lambda p, c: c.__setitem__("spacing", [0.0, 5.0, 5.0])))


@case("model_plans_wrong_channels", "model folder", MODEL_ENTRIES, match=r"(channel|does not match|normali)")
def _(d):
    def two_channels(p, c):
        c["normalization_schemes"] = ["CTNormalization", "ZScoreNormalization"]
        c["use_mask_for_norm"] = [False, False]
    return _model(d, lambda m: _plans(m, two_channels))


@case("model_dataset_labels_not_a_map", "model folder", MODEL_ENTRIES, match=r"dataset\.json")
def _(d):
    def labels_list(m):
        ds = json.loads((m / "dataset.json").read_text())
        ds["labels"] = list(ds["labels"])
        (m / "dataset.json").write_text(json.dumps(ds))
    return _model(d, labels_list)


@case("model_checkpoint_of_another_model", "model folder", MODEL_ENTRIES, fast=True,
      match=r"does not match the network its plans describe")
def _(d):
    return _model(d, lambda m: shutil.copy(HEAD_NECK / "fold_0/checkpoint_final.pth", _ckpt(m)))


@case("model_checkpoint_truncated", "model folder", MODEL_ENTRIES, match=r"corrupt or truncated")
def _(d):
    return _model(d, lambda m: _ckpt(m).write_bytes(_ckpt(m).read_bytes()[:100_000]))


class _RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@case("model_checkpoint_runs_code", "model folder", MODEL_ENTRIES, fast=True, match=r"Refusing to load .*checkpoint")
def _(d):
    import torch

    marker = d / "PWNED"

    def poison(m):
        ck = torch.load(_ckpt(m), map_location="cpu", weights_only=True)
        ck["trainer_name"] = _RunsCode(marker)
        torch.save(ck, _ckpt(m))
    inputs = _model(d, poison)
    inputs.watch = (marker,)
    return inputs


@case("model_folder_empty", "model folder", MODEL_ENTRIES, match=r"holds no nnU-Net")
def _(d):
    m = d / "empty_model"
    m.mkdir()
    return Inputs(input=_ct(d), model=m)


@case("model_is_a_file", "model folder", MODEL_ENTRIES, match=r"holds no nnU-Net")
def _(d):
    m = d / "model.pth"
    shutil.copy(DEMO_MODEL / "fold_0/checkpoint_final.pth", m)
    return Inputs(input=_ct(d), model=m)


# -- archives given to ``medsegai models import`` ----------------------------------------------------
ARCHIVE_ENTRIES = ("api", "cli")


def _import(archive: Path, watch=()) -> Inputs:
    return Inputs(input=archive, cli=["models", "import", str(archive), "--id", "corpus_model", "--accept-license"],
                  watch=tuple(watch))


def _zip_of_model(path: Path, extra=None) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(DEMO_MODEL.rglob("*")):
            if f.is_file():
                zf.write(f, f"{DEMO_MODEL.name}/{f.relative_to(DEMO_MODEL).as_posix()}")
        if extra:
            extra(zf)


@case("archive_zip_bomb", "model archive", ARCHIVE_ENTRIES, kind="models", fast=True, match=r"(ratio|bomb|refused)")
def _(d):
    a = d / "bomb.zip"
    # 256 MiB of zeros deflate to about 250 KB (ratio ~1000): far beyond any real weights.
    _zip_of_model(a, lambda zf: zf.writestr(zipfile.ZipInfo(f"{DEMO_MODEL.name}/fold_0/padding.bin"),
                                            b"\0" * (256 << 20), compress_type=zipfile.ZIP_DEFLATED))
    return _import(a)


@case("archive_path_traversal", "model archive", ARCHIVE_ENTRIES, kind="models", fast=True,
      match=r"points outside the archive")
def _(d):
    a = d / "traversal.zip"
    _zip_of_model(a, lambda zf: zf.writestr("../../../escaped.txt", b"written outside the cache"))
    return _import(a, watch=[d.parent.parent / "escaped.txt", d / "escaped.txt"])


@case("archive_absolute_path", "model archive", ARCHIVE_ENTRIES, kind="models", match=r"absolute path")
def _(d):
    a = d / "absolute.zip"
    target = d / "absolute_escape.txt"
    _zip_of_model(a, lambda zf: zf.writestr(str(target), b"x"))
    return _import(a, watch=[target])


@case("archive_symlink", "model archive", ARCHIVE_ENTRIES, kind="models", match=r"symbolic link")
def _(d):
    a = d / "symlink.zip"

    def link(zf):
        info = zipfile.ZipInfo(f"{DEMO_MODEL.name}/fold_0/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    _zip_of_model(a, link)
    return _import(a)


@case("archive_truncated", "model archive", ARCHIVE_ENTRIES, kind="models", match=r"(truncated|not a zip)")
def _(d):
    a = d / "cut.zip"
    _zip_of_model(a)
    a.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    return _import(a)


@case("archive_crc_error", "model archive", ARCHIVE_ENTRIES, kind="models", match=r"(corrupt|CRC|Bad|damaged|truncated)")
def _(d):
    a = d / "bitrot.zip"
    _zip_of_model(a)
    data = bytearray(a.read_bytes())
    with zipfile.ZipFile(a) as zf:
        info = max(zf.infolist(), key=lambda i: i.compress_size)
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    for k in range(at, at + 32):
        data[k] ^= 0xFF
    a.write_bytes(bytes(data))
    return _import(a)


