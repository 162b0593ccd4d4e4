"""Which body regions a CT covers, slice by slice, from its intensities alone (no network).

Used to warn when a scan lies outside the body region a model was trained on (``reliability.py``).
The cues are coarse on purpose and need no training data:

- body: voxels above -500 HU; per axial slice the largest 2D component, plus components at least
  a quarter of its size (so both thighs count, but not the table or an arm), holes filled;
- lung: lung-parenchyma voxels (-960..-500 HU; pure gas is darker) enclosed by the body in that
  slice; a slice whose lung share of the body cross-section is large is thorax;
- each stretch of slices without lungs is one region: head and neck when a quarter of its slices
  are narrower than half the scan's own chest (an adult neck is 15-30 % of the chest cross-section,
  an abdomen 80-130 %), abdomen and pelvis otherwise. Where there is a stretch on either side of the
  lungs, the narrower one is head and neck and the other abdomen and pelvis: anatomy fixes that
  order, so the image's head/feet labelling is never trusted (some data sets get it wrong).

A stretch is labelled as a whole rather than slice by slice because the shoulders (as wide as an
abdomen, above the lungs) would otherwise look like the abdomen. Known limits: a slab of
shoulders alone (no neck, hardly any lung) reads as abdomen and pelvis; legs have no region of
their own (they join the abdomen and pelvis stretch); a small child's abdomen without any chest
in the scan may read as head and neck.
Images that are not CT in Hounsfield units give ``None``: no claim rather than a wrong one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
from scipy import ndimage as ndi

from .io.image import Image

HEAD_NECK, THORAX, ABDOMEN_PELVIS, UNKNOWN = "head_neck", "thorax", "abdomen_pelvis", "unknown"
REGIONS = (HEAD_NECK, THORAX, ABDOMEN_PELVIS)
WHOLE_BODY = "whole_body"
# plans.json key under which a model declares the body regions it was trained on.
BODY_REGIONS_KEY = "medsegai_body_regions"

READABLE = {HEAD_NECK: "head and neck", THORAX: "thorax", ABDOMEN_PELVIS: "abdomen and pelvis",
            UNKNOWN: "no body"}

_BODY_HU = -500.0
_PURE_AIR_HU = -960.0
_LUNG_MAX_HU = -500.0
_LUNG_SHARE = 0.10        # lungs fill 15-60 % of a thoracic cross-section; gas rims and sinuses < 5 %
_MIN_BODY_CM2 = 20.0      # less is a skull cap, a toe or noise: no region
_MIN_BODY_SHARE = 0.10    # of the scan's large cross-sections (90th percentile)
_NECK_TO_CHEST = 0.5      # an adult neck is ~15-30 % of the chest cross-section, an abdomen 80-130 %
_ADULT_CHEST_CM2 = 700.0  # only when the scan shows no chest to compare with
_MIN_SIDE_MM = 20.0       # a shorter stretch beyond the lungs is too little to say which side is which
_SMOOTH_MM = 25.0         # a lung run shorter than this is bowel gas or a lung base, not the thorax
_STEP_IN_PLANE_MM = 4.0
_STEP_AXIAL_MM = 3.0

# Connectivity within an axial slice only (axis 0 is superior-inferior after _axial_stack).
_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = ndi.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class BodyRegions:
    """Region per axial slice, in the order of ``Image.array`` along ``axis``."""

    axis: int                        # axis of Image.array that runs superior-inferior
    labels: Tuple[str, ...]          # one of REGIONS or "unknown", per slice along ``axis``
    superior_mm: Tuple[float, ...]   # LPS S coordinate of each slice centre, as the header says
    fractions: Dict[str, float]      # share of all slices per region, "unknown" included; sums to 1

    @property
    def n_body_slices(self) -> int:
        return sum(lab != UNKNOWN for lab in self.labels)

    def fraction_of_body(self, regions: Iterable[str]) -> float:
        """Share of the slices showing a body that lie in ``regions``."""
        wanted = set(regions)
        n = self.n_body_slices
        return sum(lab in wanted for lab in self.labels) / n if n else 0.0

    @property
    def main_region(self) -> Optional[str]:
        shares = {r: self.fractions[r] for r in REGIONS}
        best = max(shares, key=shares.get)
        return best if shares[best] > 0 else None

    @property
    def summary(self) -> str:
        order = np.argsort(self.superior_mm)[::-1]  # superior first, as the header has it
        seen = []
        for idx in order:
            lab = self.labels[idx]
            if lab != UNKNOWN and lab not in seen:
                seen.append(lab)
        shares = ", ".join(f"{READABLE[r]} {100 * self.fraction_of_body([r]):.0f}%" for r in seen)
        empty = len(self.labels) - self.n_body_slices
        return (f"{shares} of {self.n_body_slices} axial slices with body"
                + (f" ({empty} without)" if empty else "")
                + (f"; superior to inferior by the image header: {', '.join(READABLE[r] for r in seen)}"
                   if len(seen) > 1 else ""))


def superior_axis(image: Image) -> int:
    """The axis of ``image.array`` ([k, j, i]) whose direction is closest to head-feet (LPS z)."""
    n = int(np.argmax(np.abs(image.ijk_to_lps()[2, :3] / np.asarray(image.spacing))))
    return 2 - n


def looks_like_ct(image: Image) -> bool:
    """Air near -1000 and tissue near 0: Hounsfield units. MR and unrescaled CT fail this."""
    return _hu_like(image.array[::2, ::2, ::2])


def _hu_like(a: np.ndarray) -> bool:
    air = np.count_nonzero((a >= -1100) & (a <= -900))
    tissue = np.count_nonzero((a >= -200) & (a <= 300))
    return air >= 0.01 * a.size and tissue >= 0.01 * a.size


def _axial_stack(image: Image) -> Tuple[np.ndarray, np.ndarray, int, int]:
    """Downsampled float32 copy with the superior-inferior axis first; its spacing; axis; SI step."""
    axis = superior_axis(image)
    sp = np.asarray(image.spacing, dtype=float)[::-1]  # array order (k, j, i)
    in_plane = [ax for ax in range(3) if ax != axis]
    step = [1, 1, 1]
    step[axis] = max(1, int(round(_STEP_AXIAL_MM / sp[axis])))
    for ax in in_plane:
        step[ax] = max(1, int(round(_STEP_IN_PLANE_MM / sp[ax])))
    small = image.array[tuple(slice(None, None, s) for s in step)]
    small = np.moveaxis(small, axis, 0).astype(np.float32)
    spacing = np.array([sp[axis] * step[axis]] + [sp[ax] * step[ax] for ax in in_plane])
    return small, spacing, axis, step[axis]


def _filled_body(a: np.ndarray) -> np.ndarray:
    """Per axial slice: the largest component above -500 HU (and any a quarter its size), holes filled."""
    lab, _ = ndi.label(a > _BODY_HU, _IN_PLANE)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    size_at = sizes[lab]  # gathers only: much faster than mapping each label to its slice
    largest = size_at.reshape(len(a), -1).max(axis=1)
    keep = size_at >= 0.25 * np.maximum(largest, 1)[:, None, None]
    # Hole filling as "not background reachable from the slice edge": one labelling pass, where
    # binary_fill_holes dilates for as many iterations as the body is wide.
    bg, n_bg = ndi.label(~keep, _IN_PLANE)
    edge = np.concatenate([bg[:, 0].ravel(), bg[:, -1].ravel(), bg[:, :, 0].ravel(), bg[:, :, -1].ravel()])
    outside = np.zeros(n_bg + 1, dtype=bool)
    outside[edge] = True
    outside[0] = False
    return ~outside[bg]


def _body_and_lung_cm2(a: np.ndarray, spacing: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    body = _filled_body(a)
    # Enclosed gas (bowel, sinuses, trachea) is mostly below -960 HU; lung parenchyma, with its
    # vessels and septa, lies above. Counting only the latter keeps a gassy abdomen out of the thorax.
    lung = body & (a > _PURE_AIR_HU) & (a < _LUNG_MAX_HU)
    cm2 = spacing[1] * spacing[2] / 100.0
    return body.sum(axis=(1, 2)) * cm2, lung.sum(axis=(1, 2)) * cm2


def _label_slices(body_cm2: np.ndarray, lung_cm2: np.ndarray, spacing_si: float) -> np.ndarray:
    # Clipped fragments at the edge of a reconstruction circle are no body region either.
    has_body = body_cm2 >= max(_MIN_BODY_CM2, _MIN_BODY_SHARE * np.percentile(body_cm2, 90))
    lungs = has_body & (lung_cm2 >= _LUNG_SHARE * np.maximum(body_cm2, 1e-6))
    window = max(1, int(round(_SMOOTH_MM / spacing_si))) | 1
    lungs = ndi.median_filter(lungs.astype(np.uint8), size=window, mode="nearest").astype(bool) & has_body

    labels = np.full(body_cm2.shape, UNKNOWN, dtype=object)
    labels[lungs] = THORAX
    if not has_body.any():
        return labels
    # Stretches run across single empty (clipped) slices, so a gap does not split the neck from the shoulders.
    span = np.zeros_like(has_body)
    first_body, last_body = np.flatnonzero(has_body)[[0, -1]]
    span[first_body:last_body + 1] = True
    rest, n_rest = ndi.label(span & ~lungs)
    rest[~has_body] = 0
    if n_rest == 0:
        return labels
    ids = np.arange(1, n_rest + 1)
    # A stretch that reaches the neck has slices far narrower than the chest; the abdomen, pelvis
    # and shoulders have none. Relative to this scan's own chest when it has one (any body size).
    low = ndi.labeled_comprehension(body_cm2, rest, ids, lambda v: np.percentile(v, 25), float, 0.0)
    chest = np.median(body_cm2[lungs]) if lungs.sum() >= 3 else _ADULT_CHEST_CM2
    region = np.where(low < _NECK_TO_CHEST * chest, HEAD_NECK, ABDOMEN_PELVIS).astype(object)
    if lungs.any():
        first, last = np.flatnonzero(lungs)[[0, -1]]
        centre = ndi.mean(np.arange(len(body_cm2)), rest, ids)
        length_mm = ndi.sum(np.ones_like(body_cm2), rest, ids) * spacing_si
        big = length_mm >= _MIN_SIDE_MM
        # A few slices beyond the lungs are a lung tip the lung test missed, too few to tell by size.
        region[~big & ((centre < first) | (centre > last))] = THORAX
        before, after = big & (centre < first), big & (centre > last)
        if before.any() and after.any():
            # The chest has the neck on one side and the abdomen on the other, whatever the sizes.
            low_before = np.percentile(body_cm2[np.isin(rest, ids[before])], 25)
            low_after = np.percentile(body_cm2[np.isin(rest, ids[after])], 25)
            head_side = before if low_before <= low_after else after
            region[head_side] = HEAD_NECK
            region[(before | after) & ~head_side] = ABDOMEN_PELVIS
    labels[rest > 0] = region[rest[rest > 0] - 1]
    return labels


def estimate_body_regions(image: Image, *, modality: Optional[str] = None) -> Optional[BodyRegions]:
    """Body region of every axial slice of a CT, or ``None`` when it cannot tell (MR, no HU, no body)."""
    if modality is not None and modality.strip().upper() != "CT":
        return None
    if image.array.ndim != 3:
        return None
    small, spacing, axis, step = _axial_stack(image)
    if not _hu_like(small):
        return None
    body_cm2, lung_cm2 = _body_and_lung_cm2(small, spacing)
    small_labels = _label_slices(body_cm2, lung_cm2, spacing[0])
    if not (small_labels != UNKNOWN).any():
        return None

    n = image.array.shape[axis]
    nearest = np.minimum(np.rint(np.arange(n) / step).astype(int), len(small_labels) - 1)
    labels = tuple(str(x) for x in small_labels[nearest])

    centre = (np.asarray(image.array.shape[::-1], dtype=float) - 1) / 2  # (i, j, k)
    ijk = np.tile(np.append(centre, 1.0), (n, 1))
    ijk[:, 2 - axis] = np.arange(n)
    superior = (ijk @ image.ijk_to_lps().T)[:, 2]

    fractions = {r: labels.count(r) / n for r in REGIONS + (UNKNOWN,)}
    return BodyRegions(axis=axis, labels=labels, superior_mm=tuple(float(s) for s in superior), fractions=fractions)
