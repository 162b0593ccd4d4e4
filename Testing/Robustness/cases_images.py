"""Image files (NIfTI, NRRD, MHA, seg.nrrd): broken, truncated, mislabelled, odd geometry and values,
headers that claim gigantic sizes; and the geometries that must succeed (oblique, left-handed)."""
from __future__ import annotations

import functools
import gzip
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .corpus import Inputs, case, ts_ref

IMAGE_ENTRIES = ("api", "cli", "worker", "batch", "server")  # a file Slicer could not even load
CONTENT_ENTRIES = IMAGE_ENTRIES + ("logic",)  # loads as a volume in Slicer; the runner must refuse it
CROP = (slice(30, 94), slice(20, 84), slice(0, 30))  # i, j, k of example_ct_sm: one tile of the demo model


def base_ct() -> sitk.Image:
    """The real CT crop every image case starts from (64x64x30 voxels, 3 mm, RAS-stored NIfTI)."""
    img = sitk.ReadImage(str(ts_ref() / "example_ct_sm.nii.gz"))
    return img[CROP]


def _write(img: sitk.Image, d: Path, name: str) -> Inputs:
    p = d / name
    sitk.WriteImage(img, str(p), useCompression=name.endswith(".nii.gz"))
    return Inputs(input=p)


def _bytes(d: Path, name: str, data: bytes) -> Inputs:
    p = d / name
    p.write_bytes(data)
    return Inputs(input=p)


@functools.lru_cache(maxsize=1)
def _nifti_raw() -> bytes:
    with tempfile.TemporaryDirectory(prefix="medsegai-corpus-") as tmp:
        return gzip.decompress(_write(base_ct(), Path(tmp), "ct.nii.gz").input.read_bytes())


def _float_with(value) -> sitk.Image:
    arr = sitk.GetArrayFromImage(base_ct()).astype(np.float32)
    arr[10, 20, 30] = value
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(base_ct())
    return out


# -- broken, truncated, mislabelled -------------------------------------------------------------
@case("nifti_text_renamed", "broken file", IMAGE_ENTRIES, match=r"Cannot read .*report\.nii\.gz", fast=True)
def _(d):
    return _bytes(d, "report.nii.gz", b"Patient: anonymous\nFindings: none\n" * 10)


@case("nifti_empty_file", "broken file", IMAGE_ENTRIES, match=r"empty\.nii")
def _(d):
    return _bytes(d, "empty.nii", b"")


@case("nifti_gz_truncated", "truncated file", IMAGE_ENTRIES, match=r"cut\.nii\.gz is truncated", fast=True)
def _(d):
    data = _write(base_ct(), d, "whole.nii.gz").input.read_bytes()
    (d / "whole.nii.gz").unlink()
    return _bytes(d, "cut.nii.gz", data[: len(data) // 3])


@case("nifti_raw_truncated", "truncated file", IMAGE_ENTRIES, match=r"cut\.nii is truncated: it holds")
def _(d):
    raw = _nifti_raw()
    return _bytes(d, "cut.nii", raw[: len(raw) - 4000])


@case("nifti_header_only", "truncated file", IMAGE_ENTRIES, match=r"head\.nii is truncated: it holds 0 of")
def _(d):
    return _bytes(d, "head.nii", _nifti_raw()[:352])


@case("nifti_gz_corrupt_stream", "broken file", IMAGE_ENTRIES, match=r"flipped\.nii\.gz is truncated or corrupt")
def _(d):
    data = bytearray(gzip.compress(_nifti_raw()))
    for k in range(len(data) // 2, len(data) // 2 + 64):
        data[k] ^= 0x5A  # bit rot in the middle of the deflate stream
    return _bytes(d, "flipped.nii.gz", bytes(data))


@case("nifti_bad_magic", "broken file", IMAGE_ENTRIES, match=r"magic\.nii has no NIfTI magic")
def _(d):
    raw = bytearray(_nifti_raw())
    raw[344:348] = b"abc\0"  # not n+1 / ni1
    return _bytes(d, "magic.nii", bytes(raw))


@case("nifti_zero_pixdim_no_sform", "spacing", IMAGE_ENTRIES, fast=True,
      match=r"zero_spacing\.nii\.gz has zero, negative or invalid spacing")
def _(d):
    raw = bytearray(_nifti_raw())
    raw[80:84] = struct.pack("<f", 0.0)
    raw[252:256] = struct.pack("<hh", 0, 0)
    return _bytes(d, "zero_spacing.nii.gz", gzip.compress(bytes(raw)))


@case("nifti_negative_pixdim_no_sform", "spacing", IMAGE_ENTRIES, match=r"negative or invalid spacing \(3, -3, 3\)")
def _(d):
    raw = bytearray(_nifti_raw())
    raw[84:88] = struct.pack("<f", -3.0)
    raw[252:256] = struct.pack("<hh", 0, 0)
    return _bytes(d, "negative_spacing.nii", bytes(raw))


@case("nrrd_named_nii_gz", "mislabelled file", IMAGE_ENTRIES, match=r"Cannot read .*really_nrrd\.nii\.gz")
def _(d):
    _write(base_ct(), d, "tmp.nrrd")
    data = (d / "tmp.nrrd").read_bytes()
    (d / "tmp.nrrd").unlink()
    return _bytes(d, "really_nrrd.nii.gz", data)


@case("nrrd_text_renamed", "broken file", IMAGE_ENTRIES, match=r"Cannot read .*notes\.nrrd")
def _(d):
    return _bytes(d, "notes.nrrd", b"just some notes\n" * 20)


@case("nrrd_truncated_raw", "truncated file", IMAGE_ENTRIES, fast=True, match=r"cut\.nrrd")
def _(d):
    p = _write(base_ct(), d, "cut.nrrd").input
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 20000])
    return Inputs(input=p)


@case("nrrd_truncated_gzip", "truncated file", IMAGE_ENTRIES, match=r"cutgz\.nrrd")
def _(d):
    p = d / "cutgz.nrrd"
    sitk.WriteImage(base_ct(), str(p), useCompression=True)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    return Inputs(input=p)


@case("nhdr_missing_data_file", "broken file", IMAGE_ENTRIES, match=r"detached\.nhdr")
def _(d):
    p = d / "detached.nhdr"
    sitk.WriteImage(base_ct(), str(p))
    for f in d.glob("detached.raw*"):
        f.unlink()
    return Inputs(input=p)


@case("mha_truncated", "truncated file", IMAGE_ENTRIES, fast=True, match=r"cut\.mha")
def _(d):
    p = _write(base_ct(), d, "cut.mha").input
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return Inputs(input=p)


@case("mha_text_renamed", "broken file", IMAGE_ENTRIES, match=r"Cannot read .*notes\.mha")
def _(d):
    return _bytes(d, "notes.mha", b"ObjectType = Image\nthis is not a header\n")


@case("mhd_missing_raw", "broken file", IMAGE_ENTRIES, match=r"split\.mhd")
def _(d):
    p = d / "split.mhd"
    sitk.WriteImage(base_ct(), str(p))
    (d / "split.raw").unlink()
    return Inputs(input=p)


# -- dimensions and components ------------------------------------------------------------------
@case("image_2d", "dimensions", IMAGE_ENTRIES, match=r"is 2D; a 3D volume is needed", fast=True)
def _(d):
    return _write(base_ct()[:, :, 15], d, "slice.nii.gz")


@case("image_4d", "dimensions", IMAGE_ENTRIES, match=r"is 4D; a 3D volume is needed")
def _(d):
    ct = base_ct()
    return _write(sitk.JoinSeries([ct, ct, ct]), d, "dynamic.nii.gz")


@case("image_single_slice", "dimensions", IMAGE_ENTRIES, match=r"single slice")
def _(d):
    return _write(base_ct()[:, :, 15:16], d, "one_slice.nrrd")


@case("image_vector_rgb", "dimensions", IMAGE_ENTRIES, match=r"3 components per voxel")
def _(d):
    ct = sitk.Cast(sitk.RescaleIntensity(base_ct(), 0, 255), sitk.sitkUInt8)
    return _write(sitk.Compose(ct, ct, ct), d, "colour.nrrd")


@case("image_vector_mha", "dimensions", IMAGE_ENTRIES, match=r"2 components per voxel")
def _(d):
    ct = base_ct()
    return _write(sitk.Compose(ct, ct), d, "vector.mha")


# -- values ---------------------------------------------------------------------------------------
# Not through the Logic: Slicer's NIfTI reader (niftilib) has already turned NaN into 0 by then.
@case("nan_nifti", "values", IMAGE_ENTRIES, match=r"contains 1 NaN or infinite", fast=True)
def _(d):
    return _write(_float_with(np.nan), d, "nan.nii.gz")


@case("inf_nrrd", "values", CONTENT_ENTRIES, match=r"contains 1 NaN or infinite", fast=True)
def _(d):
    return _write(_float_with(np.inf), d, "inf.nrrd")


@case("neg_inf_mha", "values", CONTENT_ENTRIES, match=r"contains 1 NaN or infinite")
def _(d):
    return _write(_float_with(-np.inf), d, "neginf.mha")


@case("float64_nan_everywhere", "values", CONTENT_ENTRIES, match=r"NaN or infinite")
def _(d):
    img = sitk.Image(base_ct().GetSize(), sitk.sitkFloat64) + float("nan")
    img.CopyInformation(base_ct())
    return _write(img, d, "all_nan.nrrd")


# -- spacing ---------------------------------------------------------------------------------------
def _with_spacing(spacing) -> sitk.Image:
    img = base_ct()
    img.SetSpacing(spacing)
    return img


@case("nrrd_zero_spacing", "spacing", CONTENT_ENTRIES, match=r"spacing", fast=True)
def _(d):
    p = _write(base_ct(), d, "zero.nrrd").input
    text = p.read_bytes()
    head, sep, body = text.partition(b"\n\n")
    lines = [ln for ln in head.split(b"\n") if not ln.startswith(b"space directions")]
    lines.append(b"space directions: (0,0,0) (0,3,0) (0,0,3)")
    p.write_bytes(b"\n".join(lines) + sep + body)
    return Inputs(input=p)


# Not through the Logic: Slicer's MetaImage reader has already made it a positive spacing, mirrored.
@case("mha_negative_spacing", "spacing", IMAGE_ENTRIES, match=r"spacing")
def _(d):
    p = _write(base_ct(), d, "neg.mha").input
    data = p.read_bytes()
    start = data.index(b"ElementSpacing")
    end = data.index(b"\n", start)
    p.write_bytes(data[:start] + b"ElementSpacing = -3 3 3" + data[end:])
    return Inputs(input=p)


@case("huge_spacing", "spacing", CONTENT_ENTRIES, fast=True,
      match=r"(spacing|voxels|memory)", time_limit_s=60)
def _(d):
    # 64x64x30 voxels of 1 m: resampled to the model's 5 mm it would be 12800x12800x6000 voxels.
    return _write(_with_spacing((1000.0, 1000.0, 1000.0)), d, "huge_spacing.nii.gz")


@case("tiny_spacing", "spacing", CONTENT_ENTRIES, match=r"(spacing|voxels|small)")
def _(d):
    # 64x64x30 voxels of 1 micrometre: less than one voxel at the model's spacing.
    return _write(_with_spacing((0.001, 0.001, 0.001)), d, "tiny_spacing.nii.gz")


# -- headers that claim gigantic sizes (memory bombs) ----------------------------------------------
@case("nrrd_header_bomb", "memory bomb", IMAGE_ENTRIES, fast=True, time_limit_s=30,
      match=r"(claims|memory|truncated|Cannot read)")
def _(d):
    header = (b"NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
              b"sizes: 40000 40000 40000\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
              b"encoding: raw\nendian: little\nspace origin: (0,0,0)\n\n")
    return _bytes(d, "bomb.nrrd", header + b"\0" * 4096)


@case("mha_header_bomb", "memory bomb", IMAGE_ENTRIES, time_limit_s=30, match=r"(claims|memory|truncated|Cannot read)")
def _(d):
    header = (b"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              b"ElementSpacing = 1 1 1\nDimSize = 50000 50000 20000\nElementType = MET_SHORT\n"
              b"ElementDataFile = LOCAL\n")
    return _bytes(d, "bomb.mha", header + b"\0" * 4096)


@case("nifti_header_bomb", "memory bomb", IMAGE_ENTRIES, time_limit_s=30, match=r"(claims|memory|truncated)")
def _(d):
    raw = bytearray(_nifti_raw()[:352])
    raw[40:56] = struct.pack("<8h", 3, 30000, 30000, 30000, 1, 1, 1, 1)
    return _bytes(d, "bomb.nii", bytes(raw) + b"\0" * 4096)


@case("nifti_gzip_bomb", "memory bomb", IMAGE_ENTRIES, fast=True, time_limit_s=30, match=r"(claims|memory)")
def _(d):
    # A complete, valid .nii.gz of 2^36 zero voxels (128 GiB as int16) in about 130 MB... built from
    # repeated gzip members, so it costs almost nothing to make and reading it cannot finish.
    raw = bytearray(_nifti_raw()[:352])
    raw[40:56] = struct.pack("<8h", 3, 8192, 8192, 1024, 1, 1, 1, 1)
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = zeros.compress(b"\0" * (64 << 20)) + zeros.flush()
    p = d / "gzip_bomb.nii.gz"
    with open(p, "wb") as fh:
        fh.write(gzip.compress(bytes(raw)))
        for _ in range(16):  # 1 GiB of real zeros, then the stream ends early: still far from 128 GiB
            fh.write(member)
    return Inputs(input=p)


# -- geometry that must succeed --------------------------------------------------------------------
def _rotation(deg_x: float, deg_z: float) -> np.ndarray:
    ax, az = np.radians(deg_x), np.radians(deg_z)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def _same_labels(transform):
    """verify: the labels equal the axis-aligned reference run's, moved by ``transform`` (the same
    anatomy stored in another order must get the same label at every physical point)."""
    def verify(labels, inputs, reference):
        want = transform(reference.array)
        if labels.array.shape != want.shape:
            return f"labels shape {labels.array.shape}, expected {want.shape}"
        wrong = int(np.count_nonzero(labels.array != want))
        if wrong:
            return f"{wrong} voxels differ from the reference run"
        img = sitk.ReadImage(str(inputs.input))
        if not np.allclose(np.array(img.GetDirection()).reshape(3, 3), labels.direction, atol=1e-6) or \
                not np.allclose(img.GetOrigin(), labels.origin, atol=1e-4):
            return "the labels are not on the input's grid"
        if not np.count_nonzero(want):
            return "the reference run found nothing (the check would be empty)"
        return ""
    return verify


@case("oblique_15deg", "geometry (must succeed)", CONTENT_ENTRIES, expect="ok", fast=True,
      verify=_same_labels(lambda a: a))
def _(d):
    img = base_ct()
    img.SetDirection(tuple((_rotation(12.0, -15.0) @ np.array(img.GetDirection()).reshape(3, 3)).ravel()))
    return _write(img, d, "oblique.nii.gz")


@case("left_handed_flipped_k", "geometry (must succeed)", CONTENT_ENTRIES, expect="ok", fast=True,
      verify=_same_labels(lambda a: a[::-1]))
def _(d):
    img = base_ct()
    flipped = sitk.Flip(img, [False, False, True])  # same physical image, k stored the other way
    assert np.linalg.det(np.array(flipped.GetDirection()).reshape(3, 3)) * \
        np.linalg.det(np.array(img.GetDirection()).reshape(3, 3)) < 0
    return _write(flipped, d, "left_handed.nrrd")


@case("lps_stored", "geometry (must succeed)", CONTENT_ENTRIES, expect="ok",
      verify=_same_labels(lambda a: a[:, ::-1, ::-1]))
def _(d):
    return _write(sitk.Flip(base_ct(), [True, True, False]), d, "lps.mha")


@case("oblique_left_handed_anisotropic", "geometry (must succeed)", CONTENT_ENTRIES, expect="ok",
      verify=_same_labels(lambda a: a[::-1]))
def _(d):
    img = sitk.Flip(base_ct(), [False, False, True])
    img.SetDirection(tuple((_rotation(-10.0, 8.0) @ np.array(img.GetDirection()).reshape(3, 3)).ravel()))
    return _write(img, d, "oblique_left.nii")
