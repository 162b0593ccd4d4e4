"""nnInteractive's prompt channels, kept sparse: the prompts themselves, rasterised only over the
region a patch needs.

nnInteractive writes every prompt into full-volume float16 channels (7 of them: 1.1 GB for a
512x512x300 CT). The values it writes are reproduced here prompt by prompt, with the same float16
arithmetic, and combined with the same element-wise maximum, so any region comes out
bit-identical to the same region of its channels:

- decay: newer prompts weigh more. Instead of multiplying the old channels by the decay, each new
  prompt is written at an intensity that grows by 1/decay per prompt, and a patch is divided by
  the current intensity before the network sees it. Before the intensity would overflow float16,
  every stored value is scaled down once (a "renormalisation"); multiplication by a positive
  number is monotone, so it commutes with the maximum and can be applied prompt by prompt.
- a box (or a lasso) is filled with the intensity; a point is a Euclidean-distance ball of the
  model's radius (1 at the centre, falling towards its rim) times the intensity; a scribble or
  lasso mask is its 0/1 values times the intensity. A box overwrites what is there, but what is
  there is never larger than the newest intensity, so overwriting equals the maximum.
- prev_seg (the previous mask) is not stored at all: it is the session's mask.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from ..engine import Prompt
from ..errors import InteractiveError
from .capability import Capability
from .normalization import Box, nonzero_box

FP16_MAX = float(torch.finfo(torch.float16).max)
# What the intensity is reset to at a renormalisation (nnInteractive: a tenth of float16's range).
RENORM_TARGET = FP16_MAX / 10


@dataclass(frozen=True)
class Focus:
    """Where a new prompt asks the network to look: the patch centre and the zoom-out factor."""
    center: Tuple[int, int, int]
    zoom: float


@dataclass
class _Written:
    channel: int
    lo: Tuple[int, int, int]  # global start of the footprint (a point's may lie outside the image)
    shape: Tuple[int, int, int]
    values: object  # float16 tensor (point), float16 0-dim tensor (box) or uint8 mask (scribble/lasso)
    intensity: float
    scales: List[float] = field(default_factory=list)  # renormalisations since it was written


@lru_cache(maxsize=4)
def point_ball(radius: int) -> np.ndarray:
    """float64 ball, 1 at the centre: the EDT of the voxel ball of ``radius``, divided by its maximum."""
    r = int(radius)
    z, y, x = np.indices((2 * r + 1,) * 3) - r
    edt = distance_transform_edt(x * x + y * y + z * z <= r * r)
    return edt / edt.max()


class PromptChannels:
    def __init__(self, capability: Capability, shape: Sequence[int]):
        self.cap = capability
        self.shape = tuple(int(s) for s in shape)
        self.reset()

    def reset(self) -> None:
        self.intensity = 1.0
        self._written: List[_Written] = []

    # -- adding ---------------------------------------------------------------------------------
    def add(self, prompt: Prompt, patch_size: Sequence[int]) -> Optional[Focus]:
        """Encode one prompt. Returns where to predict (None for an empty scribble or lasso).
        Raises InteractiveError, before changing anything, for a prompt this checkpoint cannot take."""
        kind = prompt.kind
        if kind == "point":
            channel = self._channel("points", prompt.positive)
            self._bump()
            self._write_point(channel, tuple(int(round(c)) for c in prompt.point))
            return Focus(tuple(int(round(c)) for c in prompt.point), 1.0)
        if kind == "box":
            sizes = [b - a for a, b in prompt.box]
            if any(s <= 0 for s in sizes):
                raise InteractiveError(f"The box {prompt.box} is empty along an axis.")
            flat = any(s == 1 for s in sizes)
            key = "bbox2d" if flat and self.cap.supported.get("bbox2d") else "bbox3d"
            if not self.cap.supported.get(key):
                raise InteractiveError("This nnInteractive model takes 2D boxes only (one axis of length 1)."
                                       if key == "bbox3d" else "This nnInteractive model takes no boxes.")
            channel = self._channel(key, prompt.positive)
            box = self._clip_box(prompt.box)
            self._bump()
            self._write_box(channel, box)
            return focus_for_extent(box, patch_size)
        if kind in ("scribble", "lasso"):
            channel = self._channel(kind, prompt.positive)
            self._bump()
            box = self._write_mask(channel, prompt.mask, prompt.offset)
            return None if box is None else focus_for_extent(box, patch_size)
        raise InteractiveError(f"nnInteractive prompts are point, box, scribble or lasso here (got '{kind}'; "
                               "a mask prompt resets the channels instead).")

    def _channel(self, key: str, positive: bool) -> int:
        if not self.cap.supported.get(key) or key not in self.cap.channels:
            raise InteractiveError(f"This nnInteractive model does not take {key} prompts.")
        return self.cap.channel(key, positive)

    def _bump(self) -> None:
        if self.cap.decay < 1:
            # ``*= 1 / decay``, not ``/= decay``: the two round differently, and the intensity's last
            # bit reaches every value written from here on.
            self.intensity *= 1 / self.cap.decay
            if self.intensity > FP16_MAX:
                scale = RENORM_TARGET / self.intensity
                for w in self._written:
                    w.scales.append(scale)
                self.intensity = RENORM_TARGET

    def _clip_box(self, box) -> List[List[int]]:
        """Clipped to the image, at least one voxel thick (nnInteractive's rule)."""
        out = []
        for (a, b), size in zip(box, self.shape):
            lo, hi = max(0, int(round(a))), min(size, int(round(b)))
            if hi <= lo:
                if lo == 0:
                    hi = min(1, size)
                else:
                    lo = max(lo - 1, 0)
            out.append([lo, hi])
        return out

    def _write_point(self, channel: int, center) -> None:
        ball = torch.from_numpy(point_ball(int(self.cap.point_radius)))
        if self.intensity != 1.0:
            ball = ball * self.intensity
        values = ball.to(torch.float16)
        lo = tuple(c - s // 2 for c, s in zip(center, values.shape))
        hi = [a + s for a, s in zip(lo, values.shape)]
        # A ball entirely outside the image writes nothing (but the prompt still counts for the decay).
        if any(h < 0 for h in hi) or any(a > s for a, s in zip(lo, self.shape)):
            return
        self._written.append(_Written(channel, lo, tuple(values.shape), values, self.intensity))

    def _write_box(self, channel: int, box) -> None:
        # The float16 value of the intensity, converted the way a fill of a float16 tensor converts it.
        value = torch.scalar_tensor(self.intensity, dtype=torch.float16)
        self._written.append(_Written(channel, tuple(a for a, _ in box), tuple(b - a for a, b in box), value,
                                      self.intensity))

    def _write_mask(self, channel: int, mask: np.ndarray, offset) -> Optional[List[List[int]]]:
        local = nonzero_box(mask)
        if local is None:
            return None
        trimmed = np.ascontiguousarray(mask[tuple(slice(a, b) for a, b in local)], dtype=np.uint8)
        lo = tuple(int(o) + a for o, (a, _) in zip(offset, local))
        self._written.append(_Written(channel, lo, trimmed.shape, trimmed, self.intensity))
        return [[a, a + s] for a, s in zip(lo, trimmed.shape)]

    # -- reading --------------------------------------------------------------------------------
    def footprint(self, channel: int, valid: Box) -> Optional[List[List[int]]]:
        """The box (local to ``valid``) outside which ``region(channel, valid)`` is zero; None if all of it is."""
        boxes = [self._overlap(w, valid) for w in self._written if w.channel == channel]
        boxes = [[[a - v[0], b - v[0]] for (a, b), v in zip(box, valid)] for box in boxes if box is not None]
        if not boxes:
            return None
        return [[min(b[d][0] for b in boxes), max(b[d][1] for b in boxes)] for d in range(3)]

    @staticmethod
    def _overlap(w: _Written, valid: Box):
        inter = [(max(a, lo), min(b, lo + s)) for (a, b), lo, s in zip(valid, w.lo, w.shape)]
        return None if any(b <= a for a, b in inter) else inter

    def region(self, channel: int, valid: Box) -> torch.Tensor:
        """Channel ``channel`` over the in-image box ``valid``: float16, not yet divided by the intensity."""
        out = torch.zeros([b - a for a, b in valid], dtype=torch.float16)
        for w in self._written:
            if w.channel != channel:
                continue
            inter = self._overlap(w, valid)
            if inter is None:
                continue
            dst = tuple(slice(a - v[0], b - v[0]) for (a, b), v in zip(inter, valid))
            src = tuple(slice(a - lo, b - lo) for (a, b), lo in zip(inter, w.lo))
            view = out[dst]
            torch.maximum(view, self._values(w, src, view.shape), out=view)
        return out

    @staticmethod
    def _values(w: _Written, src, shape) -> torch.Tensor:
        if isinstance(w.values, np.ndarray):
            # nnInteractive scales a mask in numpy float16; numpy and torch round alike per element,
            # but doing it the same way leaves nothing to argue about.
            v = w.values[src].astype(np.float16)
            if w.intensity != 1:
                v *= w.intensity
            v = torch.from_numpy(v)
        elif w.values.ndim == 0:
            v = w.values.clone()
        else:
            v = w.values[src].clone()
        for scale in w.scales:
            v *= scale
        return v.expand(shape) if v.ndim == 0 else v

    def normalize_(self, interactions: torch.Tensor) -> None:
        """Divide every prompt channel (not prev_seg) of an [n, ...] float16 crop by the intensity, so
        that the newest prompt is 1 and older ones less, as the network was trained."""
        if self.intensity in (0, 1):
            return
        for c in range(interactions.shape[0]):
            if c != self.cap.prev_seg:
                interactions[c] /= self.intensity

    @property
    def nbytes(self) -> int:
        """Memory the encoded prompts hold (nnInteractive: 14 bytes per image voxel, whatever the prompts)."""
        return sum(int(w.values.nbytes) if isinstance(w.values, np.ndarray) else
                   int(w.values.numel() * w.values.element_size()) for w in self._written)


def focus_for_extent(box: Box, patch_size: Sequence[int]) -> Focus:
    """Centre on the prompt and zoom out until it fits with a third of a patch of context around it."""
    center = tuple(round((a + b) / 2) for a, b in box)
    zoom = max(1, max((b - a + p // 3) / p for (a, b), p in zip(box, patch_size)))
    return Focus(center, zoom)
