"""Plain warnings when a segmentation result should not be trusted.

Two independent checks, each worded so a user can act on it:

- the scan shows a body region the model was not trained on (the model declares its regions in
  plans.json under ``medsegai_body_regions``; the scan's regions come from :mod:`body_region`);
- most segments of an uncertainty run are flagged low-confidence.

A check that cannot be made (no declaration, a whole-body model, an MR, no confidence figures)
stays silent: no warning is better than a wrong one.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from .body_region import BODY_REGIONS_KEY, READABLE, REGIONS, WHOLE_BODY, BodyRegions, estimate_body_regions
from .io.image import Image

# Names a model card might use for our regions; anything else disables the region check.
_ALIASES = {"head": "head_neck", "neck": "head_neck", "head_and_neck": "head_neck", "chest": "thorax",
            "abdomen": "abdomen_pelvis", "pelvis": "abdomen_pelvis", "abdomen_and_pelvis": "abdomen_pelvis",
            "wholebody": WHOLE_BODY, "whole-body": WHOLE_BODY}


def declared_body_regions(plans: Mapping[str, Any]) -> Optional[List[str]]:
    """The body regions an nnU-Net plans.json dict declares, or ``None`` when it declares none."""
    value = plans.get(BODY_REGIONS_KEY) if isinstance(plans, Mapping) else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return None
    regions = [str(v).strip() for v in value if str(v).strip()]
    return regions or None


def _normalise(regions: Sequence[str]) -> Optional[List[str]]:
    """Our region names, or ``None`` when a name is one the estimator cannot judge."""
    out = []
    for r in regions:
        key = r.strip().lower().replace(" ", "_")
        key = _ALIASES.get(key, key)
        if key not in REGIONS and key != WHOLE_BODY:
            return None
        out.append(key)
    return out


def _checkable(declared: Optional[Sequence[str]]) -> Optional[List[str]]:
    """Declared regions a scan can be checked against; ``None`` for none, whole body or unknown names."""
    if isinstance(declared, str):
        declared = [declared]
    known = _normalise(declared) if declared else None
    return known if known and WHOLE_BODY not in known else None


def _field(conf: Any, name: str, default: Any) -> Any:
    if isinstance(conf, Mapping):
        return conf.get(name, default)
    return getattr(conf, name, default)


def region_warning(regions: Optional[BodyRegions], declared: Optional[Sequence[str]],
                   model_name: str = "the model") -> Optional[str]:
    known = _checkable(declared)
    if regions is None or known is None or regions.n_body_slices == 0:
        return None
    if regions.fraction_of_body(known) >= 0.5:
        return None
    outside = {r: regions.fraction_of_body([r]) for r in REGIONS if r not in known}
    shown = max(outside, key=outside.get)
    trained = " and ".join(READABLE[r] for r in dict.fromkeys(known))
    return (f"This scan appears to show the {READABLE[shown]} ({100 * outside[shown]:.0f}% of its slices), "
            f"but {model_name} was trained on the {trained} only: its result is unreliable here.")


def confidence_warning(segment_confidence: Optional[Mapping[str, Any]]) -> Optional[str]:
    if not segment_confidence:
        return None
    present = [c for c in segment_confidence.values() if (_field(c, "voxels", 1) or 0) > 0]
    flagged = sum(bool(_field(c, "flagged", 0)) for c in present)
    if len(present) < 2 or flagged * 2 <= len(present):
        return None
    return f"{flagged} of {len(present)} segments are flagged low-confidence: check them before use."


def reliability_warnings(image: Optional[Image], body_regions_declared: Optional[Sequence[str]],
                         segment_confidence: Optional[Mapping[str, Dict[str, Any]]] = None, *,
                         model_name: str = "the model", modality: Optional[str] = None,
                         regions: Optional[BodyRegions] = None) -> List[str]:
    """One-sentence warnings for a result (empty when nothing is wrong or nothing can be told).

    ``body_regions_declared``: what the model was trained on (:func:`declared_body_regions`).
    ``segment_confidence``: per-segment dicts with ``flagged`` and ``voxels`` from an uncertainty run.
    ``modality``: a hint ("CT", "MR"); a non-CT hint skips the region check.
    ``regions``: an estimate already made for this image, so it is not computed twice.
    """
    warnings: List[str] = []
    if _checkable(body_regions_declared) is not None:
        if regions is None and image is not None:
            regions = estimate_body_regions(image, modality=modality)
        w = region_warning(regions, body_regions_declared, model_name)
        if w:
            warnings.append(w)
    w = confidence_warning(segment_confidence)
    if w:
        warnings.append(w)
    return warnings
