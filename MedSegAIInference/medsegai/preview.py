"""A PNG a person can look at: axial, coronal and sagittal slices with coloured labels and a legend."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from .inference.orientation import to_canonical
from .io.image import Image
from .io.read import read_image
from .io.write import atomic_path
from .result import SegmentationResult

PANEL = 320


def _window(arr: np.ndarray, modality_ct: bool) -> np.ndarray:
    if modality_ct:
        lo, hi = -160.0, 240.0  # soft-tissue window
    else:
        lo, hi = np.percentile(arr, [1, 99])
    return np.clip((arr - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)


def _panel(gray: np.ndarray, lab: np.ndarray, unc: Optional[np.ndarray], lut: np.ndarray, aspect: float,
           alpha: float = 0.45) -> PILImage.Image:
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    colored = lut[lab]
    m = lab > 0
    rgb[m] = (1 - alpha) * rgb[m] + alpha * colored[m]
    if unc is not None:
        heat = np.stack([np.clip(unc * 2, 0, 1), np.clip(unc * 2 - 1, 0, 1), np.zeros_like(unc)], -1) * 255
        a = np.clip(unc, 0, 1)[..., None] * 0.8
        rgb = (1 - a) * rgb + a * heat
    img = PILImage.fromarray(rgb.clip(0, 255).astype(np.uint8))
    h, w = gray.shape
    scale = PANEL / max(h * aspect, w)
    return img.resize((max(1, int(w * scale)), max(1, int(h * aspect * scale))), PILImage.NEAREST)


def write_preview(image: Union[Image, str, os.PathLike], result: SegmentationResult, path: Union[str, os.PathLike],
                  modality_ct: bool = True) -> Path:
    img = image if isinstance(image, Image) else read_image(image)
    canon, _ro = to_canonical(img)

    def canonical(a: np.ndarray) -> np.ndarray:
        return to_canonical(img.with_array(a))[0].array

    ct = canon.array.astype(np.float32)  # (k=S, j=A, i=R) in RAS canonical order
    lab = canonical(result.labels.array)
    unc = canonical(result.uncertainty.array) if result.uncertainty is not None else None
    lut = np.zeros((int(lab.max()) + 1 if lab.size else 1, 3), np.float32)
    for s in result.segments:
        if s.value < len(lut):
            lut[s.value] = np.array(s.color) * 255
    fg = np.argwhere(lab > 0)
    center = fg.mean(0).astype(int) if len(fg) else np.array(lab.shape) // 2
    sk, sj, si = canon.spacing[2], canon.spacing[1], canon.spacing[0]
    # Radiological display: patient right on the image left, anterior and superior up.
    views = [
        ("axial", lambda a: a[center[0]][::-1, ::-1], sj / si),
        ("coronal", lambda a: a[:, center[1], :][::-1, ::-1], sk / si),
        ("sagittal", lambda a: a[:, :, center[2]][::-1, ::-1], sk / sj),
    ]
    rows: List[List[PILImage.Image]] = [[]]
    for _name, cut, aspect in views:
        rows[0].append(_panel(_window(cut(ct), modality_ct), cut(lab), None, lut, aspect))
    if unc is not None:
        rows.append([_panel(_window(cut(ct), modality_ct), np.zeros_like(cut(lab)), cut(unc).astype(np.float32), lut,
                            aspect) for _n, cut, aspect in views])
    present = [s for s in result.segments if np.any(lab == s.value)] if lab.size else []
    font = ImageFont.load_default()
    legend_rows = (len(present) + 2) // 3
    width = 3 * PANEL + 40
    height = sum(max(p.height for p in r) for r in rows) + 20 * (len(rows) + 1) + 16 * legend_rows + 30
    canvas = PILImage.new("RGB", (width, height), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    y = 10
    titles = ["segmentation"] + (["uncertainty (" + (result.uncertainty_method or "") + ")"] if unc is not None else [])
    for title, r in zip(titles, rows):
        draw.text((10, y), title, fill=(230, 230, 230), font=font)
        y += 16
        x = 10
        for p in r:
            canvas.paste(p, (x, y))
            x += PANEL + 10
        y += max(p.height for p in r) + 8
    for n, s in enumerate(present):
        cx, cy = 10 + (n % 3) * (PANEL + 10), y + (n // 3) * 16
        draw.rectangle([cx, cy + 2, cx + 10, cy + 12], fill=tuple(int(c * 255) for c in s.color))
        draw.text((cx + 16, cy), f"{s.value} {s.name}", fill=(230, 230, 230), font=font)
    out = Path(path)
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
    return out
