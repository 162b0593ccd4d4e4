"""The interactive part of ``medsegai demo``: simulated clicks on the sample CT's organs, Dice per click.

The clicks come from the benchmark's simulator (first at the organ's deepest point, then at the
largest error), aimed at TotalSegmentator's own label map of the sample CT, for each engine
side by side. The sample CT was among the click model's training scans, so these lines show the
workflow, not its quality: the held-out figures are in its model card and the benchmark.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np

from ..io.image import Image
from .click_simulation import simulate_clicks
from .registry import click_model_folder
from .session import InteractiveSession

# TotalSegmentator `total` label values in the sample's reference map.
DEMO_ORGANS = {"liver": 5, "spleen": 1, "kidney_right": 2}
REPORTED_CLICKS = (1, 3, 5)


def clicks_to_dice(image: Image, reference: np.ndarray, *, organs: Dict[str, int] = DEMO_ORGANS,
                   clicks: int = 5, log: Callable[[str], None] = print) -> Dict[str, Dict[str, List[float]]]:
    """{engine: {organ: Dice after each click}}; prints one line per engine and organ."""
    engines: Sequence[str] = (["clicks"] if click_model_folder() is not None else []) + ["classical"]
    spacing_kji = tuple(image.spacing[::-1])
    out: Dict[str, Dict[str, List[float]]] = {}
    for name in engines:
        with InteractiveSession(engine=name, device="cpu") as session:
            session.set_image(image)
            out[name] = {}
            for organ, value in organs.items():
                target = (reference == value).astype(np.uint8)
                if not target.any():
                    continue
                session.reset()
                run = simulate_clicks(lambda p, pos: session.add_point(p, positive=pos), lambda: session.mask,
                                      target, clicks=clicks, spacing_kji=spacing_kji)
                out[name][organ] = run.dice
                shown = ", ".join(f"{n} click{'s' if n > 1 else ''} {run.dice_at(n):.2f}" for n in REPORTED_CLICKS
                                  if n <= clicks)
                log(f"  {name:9s} {organ:13s} Dice after {shown}  ({np.median(run.seconds):.2f} s per click)")
    return out
