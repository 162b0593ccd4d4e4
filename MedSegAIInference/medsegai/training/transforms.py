"""Augmentation with MONAI dictionary transforms, on preprocessed (1, X, Y, Z) arrays.

No plain mirroring: left and right structures carry different labels (kidney_left vs
kidney_right...), and anterior/posterior or head/foot flips produce anatomy that does not exist.
Rotations stay small for the same reason. The models are saved with mirroring at inference off.
The one mirror that does produce real anatomy is left-right with the paired labels swapped
(:class:`RandMirrorLeftRightd`, opt-in with ``--mirror-lr``): a body is close to symmetric, and
each case then also teaches the other side's organ.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from monai import transforms as mt

from .preprocessing import IGNORE_INDEX


class RandLimitedFieldOfViewd(mt.RandomizableTransform, mt.MapTransform):
    """Makes a patch look like part of a scan with a short or narrow field of view.

    Real inputs are often a few slices (the held-out DICOM series is 20 slices of 2 mm) or a
    cropped reconstruction. The runner pads such volumes with 0 (normalised intensity, nnU-Net's
    rule) up to the patch size, so a network that only ever saw full patches of anatomy meets
    a slab of tissue between two walls of constant padding at inference. Here, along each axis
    with probability ``axis_prob``, everything outside a random window of the patch becomes that
    padding value, and the label there becomes unknown (what lies beyond a scan's edge is not
    background, it is not known).
    """

    def __init__(self, keys=("image", "target"), prob: float = 0.3, axis_prob=(0.8, 0.3, 0.3),
                 min_fraction: float = 0.2):
        mt.RandomizableTransform.__init__(self, prob)
        mt.MapTransform.__init__(self, keys)
        self.axis_prob = tuple(axis_prob)
        self.min_fraction = float(min_fraction)
        self._windows = None

    def randomize(self, shape) -> None:
        super().randomize(None)
        self._windows = []
        for size, p in zip(shape, self.axis_prob):
            if self.R.random_sample() >= p:
                self._windows.append(slice(None))
                continue
            keep = int(self.R.randint(max(1, int(size * self.min_fraction)), size + 1))
            start = int(self.R.randint(0, size - keep + 1))
            self._windows.append(slice(start, start + keep))

    def __call__(self, data):
        d = dict(data)
        image_key, target_key = self.keys
        self.randomize(d[image_key].shape[1:])
        if not self._do_transform or all(w == slice(None) for w in self._windows):
            return d
        window = (slice(None), *self._windows)
        for key, fill in ((image_key, 0), (target_key, IGNORE_INDEX)):
            arr = d[key]
            out = torch.full_like(arr, fill) if isinstance(arr, torch.Tensor) else np.full_like(arr, fill)
            out[window] = arr[window]
            d[key] = out
        return d


def left_right_permutation(names: Sequence[str]) -> Optional[np.ndarray]:
    """Channel permutation that swaps ``*_left`` with ``*_right`` (and ``left_*``/``right_*``).

    None when no name has a partner: mirroring would then teach nothing a flip-free model lacks.
    """
    index = {n: c for c, n in enumerate(names)}
    perm = np.arange(len(names))
    paired = False
    for c, n in enumerate(names):
        for a, b in (("_left", "_right"), ("_right", "_left")):
            if n.endswith(a) and n[: -len(a)] + b in index:
                perm[c], paired = index[n[: -len(a)] + b], True
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if n.startswith(a) and b + n[len(a):] in index:
                perm[c], paired = index[b + n[len(a):]], True
    return perm if paired else None


class RandMirrorLeftRightd(mt.RandomizableTransform, mt.MapTransform):
    """Flips the patient's left-right axis and swaps the paired structures' labels.

    ``axis`` is the spatial axis (0-2 of the (1, X, Y, Z) arrays) that runs left-right: the
    training cases are reoriented to the closest canonical RAS, so it is the input's i axis
    wherever ``transpose_forward`` puts it. ``perm`` maps each training channel to its mirror
    partner (:func:`left_right_permutation`); the per-class ``known`` flags follow, so a case
    without a left parotid contour becomes one without a right one.
    """

    def __init__(self, perm: np.ndarray, axis: int, keys=("image", "target"), known_key: str = "known",
                 prob: float = 0.5):
        mt.RandomizableTransform.__init__(self, prob)
        mt.MapTransform.__init__(self, keys)
        self.axis = int(axis)
        self.known_key = known_key
        lut = np.arange(256, dtype=np.uint8)  # IGNORE_INDEX and unused values map to themselves
        lut[: len(perm)] = np.asarray(perm, dtype=np.uint8)
        self.lut = lut
        self.perm = np.asarray(perm)

    def __call__(self, data):
        self.randomize(None)
        if not self._do_transform:
            return data
        d = dict(data)
        image_key, target_key = self.keys
        ax = 1 + self.axis
        d[image_key] = np.ascontiguousarray(np.flip(np.asarray(d[image_key]), axis=ax))
        target = np.flip(np.asarray(d[target_key]), axis=ax).astype(np.int64)  # may arrive as float
        d[target_key] = np.ascontiguousarray(self.lut[target])
        if self.known_key in d:
            known = np.asarray(d[self.known_key])
            d[self.known_key] = known[self.perm]  # channel c of the mirror is channel perm[c] here
        return d


def class_sampling_label(target: np.ndarray, num_classes: int) -> np.ndarray:
    """The target with unknown voxels as background, for choosing patch centres by class."""
    out = target.copy()
    out[out == IGNORE_INDEX] = 0
    return out


BACKGROUND_SHARE = 1 / 3


def default_class_ratios(num_classes: int) -> list:
    # A third of the patches centred on background (air, fat, table, structures not learned), the
    # rest shared equally by the structures, so small ones are seen as often as the liver. With
    # background at a small share the network almost never sees air and labels it at inference.
    return [max(1.0, (num_classes - 1) / 2.0)] + [1.0] * (num_classes - 1)


def training_transforms(patch: Sequence[int], num_classes: int, seed: int = 0, elastic_p: float = 0.1,
                        limited_fov_p: float = 0.3, ratios: Optional[Sequence[float]] = None,
                        mirror: Optional[RandMirrorLeftRightd] = None) -> mt.Compose:
    """``ratios``: patch-centre shares per class (default :func:`default_class_ratios`); a one-hot list
    centres every patch on one class (the trainer's per-class sampling). ``mirror``: the left-right
    mirror with swapped labels, run after the crop (the patch centre was chosen on the unflipped
    case, so a patch centred on the left parotid becomes one centred on the right)."""
    patch = [int(p) for p in patch]
    # Crop a larger region first so that rotation/scaling have real data at the patch borders.
    big = [int(round(p * 1.3)) for p in patch]
    ratios = list(ratios) if ratios is not None else default_class_ratios(num_classes)
    t = mt.Compose([
        mt.RandCropByLabelClassesd(keys=("image", "target"), label_key="sampling", spatial_size=big,
                                   num_classes=num_classes, ratios=ratios, num_samples=1,
                                   indices_key="sampling_indices", allow_smaller=False, warn=False),
        *([mirror] if mirror is not None else []),
        mt.RandAffined(keys=("image", "target"), prob=0.7, spatial_size=patch,
                       rotate_range=[np.deg2rad(12)] * 3, scale_range=[0.15] * 3, translate_range=[4] * 3,
                       mode=("bilinear", "nearest"), padding_mode="border"),
        mt.CenterSpatialCropd(keys=("image", "target"), roi_size=patch),  # when RandAffined did not fire
        mt.Rand3DElasticd(keys=("image", "target"), prob=elastic_p, sigma_range=(5, 7), magnitude_range=(20, 60),
                          mode=("bilinear", "nearest"), padding_mode="border"),
        mt.RandGaussianNoised(keys="image", prob=0.15, std=0.1),
        mt.RandGaussianSmoothd(keys="image", prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        mt.RandScaleIntensityd(keys="image", prob=0.15, factors=0.25),
        mt.RandShiftIntensityd(keys="image", prob=0.15, offsets=0.1),
        mt.RandAdjustContrastd(keys="image", prob=0.15, gamma=(0.7, 1.5), retain_stats=True),
        # Last: the runner's padding is exactly 0, never noisy or smoothed.
        RandLimitedFieldOfViewd(keys=("image", "target"), prob=limited_fov_p),
        mt.EnsureTyped(keys=("image", "target"), track_meta=False),
    ])
    t.set_random_state(seed=seed)
    return t


def cached_transforms(patch: Sequence[int], num_classes: int) -> mt.Compose:
    """Deterministic part, run once per case: padding to the crop size, per-class voxel indices."""
    big = [int(round(p * 1.3)) for p in patch]
    return mt.Compose([
        # Edge padding: the padded border looks like the image's own border (air for CT).
        mt.SpatialPadd(keys=("image", "target", "sampling"), spatial_size=big, mode="edge"),
        mt.ClassesToIndicesd(keys="sampling", num_classes=num_classes, indices_postfix="_indices"),
    ])


class ClassBalancedSampler:
    """Chooses the structure first, then a case that has it, then a patch centred on it.

    Radiotherapy data contour some organs in few patients (OpenKBP: the oesophagus in 47 of 137);
    picking the case first shows such organs in proportion to how often they were contoured, and
    the network then folds them into background. Here each structure present in any case gets
    the same share of patches, background keeps :data:`BACKGROUND_SHARE`.
    """

    def __init__(self, present: np.ndarray, make_transform, seed: int = 0):
        self.present = np.asarray(present, dtype=bool)  # (cases, classes)
        n = self.present.shape[1]
        self.classes = [c for c in range(1, n) if self.present[:, c].any()]
        self.transforms = {c: make_transform([1.0 if k == c else 0.0 for k in range(n)]) for c in [0] + self.classes}
        self.set_random_state(seed)

    def set_random_state(self, seed: int) -> None:
        for c, t in self.transforms.items():
            t.set_random_state(seed=seed + 7919 * c)

    def choose(self, rng: np.random.Generator):
        """(class, case): the structure the next patch is centred on and a case that has it."""
        if not self.classes or rng.random() < BACKGROUND_SHARE:
            return 0, int(rng.integers(len(self.present)))
        c = self.classes[int(rng.integers(len(self.classes)))]
        return c, int(rng.choice(np.flatnonzero(self.present[:, c])))

    def draw(self, rng: np.random.Generator, cache) -> dict:
        c, case = self.choose(rng)
        return self.transforms[c](cache[case])[0]
