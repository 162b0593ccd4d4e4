"""What an nnInteractive checkpoint accepts and how it encodes it: ``inference_info.json`` (or the
legacy ``inference_session_class.json``) read into one typed :class:`Capability`.

The defaults are those of nnInteractive 2.6.0, whose encoding this package reproduces: prompt
decay 0.98, point radius 4, channels prev_seg=0, box/lasso=(1, 2), points=(3, 4), scribble=(5, 6)
(positive, negative), 2D boxes only.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

from ...errors import InvalidModelError

# The nnInteractive release whose encoding we reproduce; a checkpoint that asks for a newer
# inference session may rely on behaviour we do not have.
ENCODING_VERSION = "2.6.0"
INFO_FILE = "inference_info.json"
LEGACY_INFO_FILE = "inference_session_class.json"

PROMPT_KEYS = ("scribble", "lasso", "points", "bbox2d", "bbox3d")
_DEFAULT_SUPPORTED = {"scribble": True, "lasso": True, "points": True, "bbox2d": True, "bbox3d": False}
_DEFAULT_CHANNELS = {"bbox2d": (1, 2), "bbox3d": (1, 2), "lasso": (1, 2), "points": (3, 4), "scribble": (5, 6)}


@dataclass
class Capability:
    supported: Dict[str, bool] = field(default_factory=lambda: dict(_DEFAULT_SUPPORTED))
    channels: Dict[str, Tuple[int, int]] = field(default_factory=lambda: dict(_DEFAULT_CHANNELS))
    prev_seg: int = 0
    num_channels: int = 7  # interaction channels, prev_seg included (the image comes before them)
    supports_initial_label: bool = True
    point_radius: int = 4
    scribble_thickness: Tuple[int, int, int] = (2, 2, 2)  # for the UI's brush; the encoding ignores it
    decay: float = 0.98

    def channel(self, key: str, positive: bool) -> int:
        pos, neg = self.channels[key]
        return pos if positive else neg

    def thin_channels(self) -> Tuple[int, ...]:
        """Channels of thin prompts (points, scribbles), dilated before a zoomed-out resize so that
        area averaging does not wipe them out."""
        out = set()
        for key in ("points", "scribble"):
            if self.supported.get(key) and key in self.channels:
                out.update(self.channels[key])
        return tuple(sorted(out))


def read_capability(folder: Path) -> Capability:
    folder = Path(folder)
    info, legacy = folder / INFO_FILE, folder / LEGACY_INFO_FILE
    if info.is_file():
        content = _json(info)
        if not isinstance(content, dict):
            raise InvalidModelError(f"{info} must hold a JSON object.")
        _check_session(content, info)
        cap = _runtime_fields(Capability(), content, info)
        return _apply_channels(cap, content, info)
    if legacy.is_file():
        content = _json(legacy)
        # The first nnInteractive release wrote only the session class name here, with decay 0.9.
        if isinstance(content, str):
            return Capability(decay=0.9)
        if not isinstance(content, dict):
            raise InvalidModelError(f"{legacy} must hold a JSON object or a class name.")
        return _runtime_fields(Capability(), content, legacy)
    raise InvalidModelError(f"{folder} is not an nnInteractive model folder: missing {INFO_FILE} "
                            f"(or the older {LEGACY_INFO_FILE}).")


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidModelError(f"{path} is not valid JSON ({exc}).") from None


def _version(text: str) -> Tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(text)))


def _check_session(content: dict, path: Path) -> None:
    cls = content.get("inference_class", "nnInteractiveInferenceSession")
    if cls != "nnInteractiveInferenceSession":
        raise InvalidModelError(f"{path} asks for inference class '{cls}'; only nnInteractiveInferenceSession "
                                "checkpoints are supported.")
    need = content.get("inference_class_min_version")
    if need is not None and _version(need) > _version(ENCODING_VERSION):
        raise InvalidModelError(f"{path} needs nnInteractive >= {need}; MedSegAI reproduces the encoding of "
                                f"nnInteractive {ENCODING_VERSION}.")


def _runtime_fields(cap: Capability, content: dict, path: Path) -> Capability:
    radius = content.get("point_radius", cap.point_radius)
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or radius <= 0 or radius != int(radius):
        # nnInteractive's training accepts a random range here; inference needs one number, and
        # every published checkpoint uses a whole number of voxels (a fractional one would resample the ball).
        raise InvalidModelError(f"{path}: point_radius must be a positive whole number (got {radius!r}).")
    radius = int(radius)
    thickness = content.get("preferred_scribble_thickness", cap.scribble_thickness)
    if not isinstance(thickness, (list, tuple)):
        thickness = [thickness] * 3
    decay = content.get("interaction_decay", cap.decay)
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise InvalidModelError(f"{path}: interaction_decay must be in (0, 1] (got {decay!r}).")
    pad = content.get("pad_mode_image", "constant")
    if pad != "constant":
        raise InvalidModelError(f"{path}: pad_mode_image '{pad}' is not supported (only 'constant').")
    cap.point_radius, cap.scribble_thickness, cap.decay = radius, tuple(thickness), float(decay)
    return cap


def _apply_channels(cap: Capability, content: dict, path: Path) -> Capability:
    supported = content.get("supported_interactions") or {}
    unknown = sorted(set(supported) - set(PROMPT_KEYS))
    if unknown:
        raise InvalidModelError(f"{path}: unknown interactions {unknown} (known: {list(PROMPT_KEYS)}).")
    cap.supported.update({k: bool(v) for k, v in supported.items()})
    cap.supports_initial_label = bool(content.get("supports_initial_label", True))
    mapping = content.get("channel_mapping") or {}
    unknown = sorted(set(mapping) - set(PROMPT_KEYS) - {"prev_seg"})
    if unknown:
        raise InvalidModelError(f"{path}: unknown channel_mapping keys {unknown}.")
    channels: Dict[str, object] = {**cap.channels, "prev_seg": cap.prev_seg}
    for key, value in mapping.items():
        if key != "prev_seg" and not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise InvalidModelError(f"{path}: channel_mapping['{key}'] must be a [positive, negative] pair.")
        channels[key] = int(value) if key == "prev_seg" else (int(value[0]), int(value[1]))
    if "interaction_channels" in content:
        n = int(content["interaction_channels"]) + 1  # the count excludes prev_seg
    else:
        n = _channels_needed(channels)
    # Negative indices count from the end, as in Python.
    pos = lambda i: i if i >= 0 else n + i  # noqa: E731
    cap.num_channels = n
    cap.prev_seg = pos(int(channels.pop("prev_seg")))
    cap.channels = {k: (pos(v[0]), pos(v[1])) for k, v in channels.items()}
    bad = [k for k, v in cap.channels.items() if not all(0 <= c < n for c in v)] + \
        ([] if 0 <= cap.prev_seg < n else ["prev_seg"])
    if bad:
        raise InvalidModelError(f"{path}: channel_mapping for {bad} lies outside the {n} interaction channels.")
    return cap


def _channels_needed(channels: Dict[str, object]) -> int:
    top, from_end = -1, 0
    for value in channels.values():
        for i in (value if isinstance(value, tuple) else (value,)):
            top, from_end = (max(top, i), from_end) if i >= 0 else (top, max(from_end, -i))
    return max(top + 1, from_end, 1)

