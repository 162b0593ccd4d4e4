"""``run_with_uncertainty``: the pipeline's entry point for a single model with an uncertainty method.

Flow: preprocess once; run the normal prediction (labels, exactly as without uncertainty) and
the method's extra passes on the network grid, reducing each pass into running statistics;
then stream the (mean) class probabilities to the fine grid a class chunk at a time for the
Soft Dice Confidence and, for ``entropy``, the entropy itself. Peak memory is about one more
score-sized array than a normal run, whatever the number of passes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..inference.probabilities import ProbabilitySink
from ..inference.crop import paste
from ..inference.case_preparation import PreparedCase, ScoreGrid, prepare_case
from ..inference.single_model import RunOptions
from ..io.image import Image
from ..nnunet.model_folder import LoadedModel
from ..progress import Reporter
from .accumulate import PassAccumulator
from .confidence import DEFAULT_CONFIDENCE_THRESHOLD, SoftDiceSums, mean_inside, segment_confidence
from .measures import entropy_terms, normalise_entropy, softmax_slabs_
from .memory import FINE_CHUNK, check_memory, estimate_bytes
from .passes import PassPlan, plan_passes, run_pass

METHOD_LABELS = {"entropy": "softmax entropy", "tta": "test-time augmentation (flips) variance",
                 "mcdropout": "Monte Carlo dropout variance", "ensemble": "fold-ensemble variance"}


@dataclass
class UncertainOutput:
    """Behaves like inference.single_model.ModelOutput, plus the probability sink when asked for."""
    labels: np.ndarray
    scores_grid: Optional[ScoreGrid] = None
    sink: Optional[ProbabilitySink] = None


class MeanProbabilities:
    """For multi-pass methods, ``return_probabilities`` returns the passes' mean probabilities (the
    method's predictive distribution) on the input grid, fp16, channel = label value."""

    def __init__(self, num_classes: int, work_shape, work_from_fine):
        self.probs = np.zeros((num_classes, *work_shape), dtype=np.float16)
        self.work_from_fine = work_from_fine

    def add(self, class_indices, probs_fine: torch.Tensor) -> None:
        for j, c in enumerate(class_indices):
            self.probs[c] = self.work_from_fine(probs_fine[j].numpy().astype(np.float16), 1.0 if c == 0 else 0.0)

    def finish(self, grid, image_shape, box=None) -> np.ndarray:  # same call as ProbabilitySink.finish
        # outside the cropped region everything is background
        fills = [1.0] + [0.0] * (self.probs.shape[0] - 1)
        return paste(self.probs, box, image_shape, fill=fills, leading=1)


@dataclass
class UncertaintyOutcome:
    method: str
    map_work: np.ndarray  # float32 0..1 on the work image grid
    confidence: Dict[str, Dict[str, float]]
    passes: int
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def apply(self, result, image: Image, box=None) -> None:
        """Fill the result's uncertainty fields; ``box`` is the work image's place in ``image``."""
        arr = paste(np.asarray(self.map_work, dtype=np.float32), box, image.shape)
        if box is not None:
            self.notes.append("The uncertainty map covers the cropped region the structures were found in; "
                              "outside it the map is 0 (background decided by the low-resolution model).")
        result.uncertainty = image.with_array(np.ascontiguousarray(arr, dtype=np.float32))
        result.uncertainty_method = self.method
        present = {s.name for s in result.present_segments()}
        result.segment_confidence = {n: v for n, v in self.confidence.items() if n in present}
        result.notes.extend(self.notes)
        result.timings["uncertainty"] = self.seconds


@torch.inference_mode()  # the predictor returns inference tensors; the statistics update them in place
def run_with_uncertainty(model: LoadedModel, work_image: Image, opts: RunOptions, reporter: Reporter, method: str,
                         passes: int = 8, return_probabilities: bool = False,
                         threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> Tuple[UncertainOutput, UncertaintyOutcome]:
    t_start = time.perf_counter()
    plan = plan_passes(model, opts, method, int(passes))
    num_classes = model.config.num_classes
    case = prepare_case(model, work_image, opts.mode, reporter)
    check_memory(method, estimate_bytes(num_classes, case.data.shape[1:], int(np.prod(work_image.shape)),
                                        bool(plan.passes), plan.labels_from_logit_mean))
    # Entropy: the probabilities of the normal run, bit for bit. Several passes: their mean.
    sink = ProbabilitySink(num_classes, work_image.shape) if return_probabilities and not plan.passes else None
    on_chunk = _outside_inference_mode(sink.add) if sink is not None else None
    if return_probabilities and plan.passes:
        sink = MeanProbabilities(num_classes, work_image.shape, case.work_from_fine)

    t_net = time.perf_counter()
    labels, probs, acc = _predict(model, case, opts, reporter, plan, on_chunk)
    net_seconds = time.perf_counter() - t_net
    del case.data

    reporter("uncertainty", 0.0, "per-segment confidence")
    labels_fine = case.fine_from_work(labels)
    sums = SoftDiceSums(labels_fine, num_classes)
    entropy_fine = torch.zeros(labels_fine.shape, dtype=torch.float32) if acc is None else None
    for c0 in range(0, num_classes, FINE_CHUNK):
        reporter.check()
        idx = list(range(c0, min(num_classes, c0 + FINE_CHUNK)))
        fills = [1.0 if c == 0 else 0.0 for c in idx]  # outside the crop: certain background
        fine = case.to_fine(probs[c0:idx[-1] + 1], fills)
        sums.add(idx, fine)
        if isinstance(sink, MeanProbabilities):
            sink.add(idx, fine)
        if entropy_fine is not None:
            entropy_fine += entropy_terms(fine)
        del fine
        reporter("uncertainty", (idx[-1] + 1) / num_classes, f"classes {idx[-1] + 1}/{num_classes}")
    del probs
    if acc is None:
        map_fine = normalise_entropy(entropy_fine, num_classes).numpy()
    else:
        spread = acc.spread()
        acc.mean_probs = None
        map_fine = case.to_fine(spread[None], [0.0])[0].clamp_(0.0, 1.0).numpy()
    map_work = np.ascontiguousarray(case.work_from_fine(map_fine.astype(np.float32)))
    mean_unc = mean_inside(labels, map_work, num_classes)
    conf = segment_confidence(model.config.label_names, sums.soft_dice(), mean_unc, sums.voxels.numpy(), threshold)
    n_passes = max(1, len(plan.passes))
    notes = list(plan.notes)
    outcome = UncertaintyOutcome(method, map_work, conf, n_passes, notes, time.perf_counter() - t_start)
    reporter("note", 0.0, f"uncertainty: {METHOD_LABELS[method]}, {n_passes} pass(es), network {net_seconds:.1f} s")
    return UncertainOutput(labels, case.score_grid, sink), outcome


def _outside_inference_mode(add):
    """The sink is finished by the pipeline outside inference mode, so it must hold normal tensors."""
    def call(class_indices, chunk):
        with torch.inference_mode(False):
            add(class_indices, chunk.clone())
    return call


def _predict(model: LoadedModel, case: PreparedCase, opts: RunOptions, reporter: Reporter, plan: PassPlan,
             on_chunk) -> Tuple[np.ndarray, torch.Tensor, Optional[PassAccumulator]]:
    """(labels on the work grid, class probabilities on the network grid, accumulator or None)."""
    labels = None
    if plan.base is not None:
        base = run_pass(model, case.data, opts, plan.base, reporter, stage="predict")
        labels = case.labels_from_scores(base, on_chunk)
        if not plan.passes:  # entropy: the normal prediction is all there is
            return labels, softmax_slabs_(base), None
        del base
    acc = PassAccumulator(len(plan.passes), keep_logit_sum=plan.labels_from_logit_mean)
    for n, spec in enumerate(plan.passes):
        reporter("uncertainty", n / len(plan.passes), f"pass {n + 1}/{len(plan.passes)}")
        scores = run_pass(model, case.data, opts, spec, reporter, stage="predict" if labels is None else "uncertainty")
        if n == 0 and plan.base_is_first_pass:
            labels = case.labels_from_scores(scores, on_chunk)  # reads the logits before softmax overwrites them
        acc.add(scores)
        del scores
    if plan.labels_from_logit_mean:
        labels = case.labels_from_scores(acc.logit_mean(), on_chunk)
    return labels, acc.mean_probs, acc
