"""``medsegai train``: data checks, plans, the training loop, checkpoints, resume, validation, export.

Order of work: every check that can fail (folders, pairs, geometry, label values, options,
memory) runs before the first iteration. Then cases are preprocessed once with the runner's own
preprocessing, patches are sampled and augmented with MONAI, and the network is trained with
cross-entropy + soft Dice (unknown voxels left out) and deep supervision.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_write_text
from ..errors import DeviceError
from ..inference.device import autocast, check_precision, fastest_training_precision, select_device
from ..nnunet.network import build_network
from ..nnunet.plans import CANONICAL_RAS, INPUT_ORIENTATION_KEY, parse_model_config
from .dataset import LabelMap, check_cases, find_pairs, load_cases, load_label_map, load_unlabelled
from .errors import TrainingConfigError, TrainingDataError
from .export import model_folder_name, write_model_folder, _atomic_save
from .memory import check_memory
from .plans_writer import (CONFIGURATION, ArchitectureOptions, check_consecutive, foreground_intensity_properties,
                           make_dataset_json, make_plans)
from .preprocessing import IGNORE_INDEX, add_air_margin, preprocess_training_case, value_to_channel_lut

LATEST = "checkpoint_latest.pth"
DS_WEIGHTS = (1.0, 0.5, 0.25)  # deep supervision: full resolution and the two next coarser outputs


@dataclass
class TrainOptions:
    data_dir: Path
    output_dir: Path
    labels_json: Optional[Path] = None
    val_dir: Optional[Path] = None
    unlabelled_json: Optional[Path] = None  # default: unlabelled.json in data_dir (see dataset.load_unlabelled)
    spacing: Sequence[float] = (3.0, 3.0, 3.0)  # (z, y, x) = (k, j, i) mm
    patch: Sequence[int] = (48, 64, 64)
    batch_size: int = 2
    iterations: int = 1000
    lr: float = 3e-3
    weight_decay: float = 3e-5
    arch: ArchitectureOptions = field(default_factory=ArchitectureOptions)
    device: str = "auto"
    threads: Optional[int] = None
    val_every: int = 0  # 0: only at the end
    checkpoint_every: int = 25
    log_every: int = 5
    resume: bool = False
    finetune: Optional[Path] = None
    seed: int = 0
    max_minutes: Optional[float] = None  # stop (and export) when the time is up, lr schedule follows time
    elastic_p: float = 0.1
    limited_fov_p: float = 0.3  # patches cut to a short/narrow field of view (see transforms.py)
    air_margin_mm: float = 0.0  # CT only: in-plane margin of air around each training case
    memory_limit_gb: Optional[float] = None  # for tests and shared machines; default 80% of what is free
    dataset_name: str = "MedSegAI"
    fp16_weights: bool = True
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 where the hardware has bf16 arithmetic)
    class_sampling: str = "per-case"  # per-case | per-class (see transforms.ClassBalancedSampler)
    mirror_lr_p: float = 0.0  # left-right mirror with paired labels swapped (transforms.RandMirrorLeftRightd)


@dataclass
class TrainSummary:
    model_folder: Path
    iterations: int
    seconds: float
    final_loss: float
    validation: Dict[str, Dict[str, float]]
    trained_values: List[int]
    warnings: List[str]


Log = Callable[[str], None]


def _check_options(o: TrainOptions) -> None:
    n_down = len(o.arch.features) - 1
    if len(o.patch) != 3 or len(o.spacing) != 3:
        raise TrainingConfigError("--patch and --spacing need three values (z y x).")
    bad = [p for p in o.patch if p % (2 ** n_down)]
    if bad:
        raise TrainingConfigError(
            f"Every patch size must be divisible by {2 ** n_down} ({len(o.arch.features)} stages); got "
            f"{tuple(o.patch)}.")
    if any(s <= 0 for s in o.spacing):
        raise TrainingConfigError(f"Invalid spacing {tuple(o.spacing)}.")
    if o.iterations < 1 or o.batch_size < 1:
        raise TrainingConfigError("--iterations and --batch-size must be at least 1.")
    if not 0 <= o.arch.dropout_p < 1:
        raise TrainingConfigError("--dropout must be in [0, 1).")
    if o.precision not in ("fp32", "bf16", "auto"):
        raise TrainingConfigError(f"Unknown precision '{o.precision}' (use fp32, bf16 or auto).")
    if not 0 <= o.mirror_lr_p <= 1:
        raise TrainingConfigError("--mirror-lr must be a probability in [0, 1].")
    if o.class_sampling not in ("per-case", "per-class"):
        raise TrainingConfigError(f"Unknown class sampling '{o.class_sampling}' (use per-case or per-class).")


def _median(values, axis=0):
    return np.median(np.asarray(values, dtype=float), axis=axis)


def _poly_lr(base: float, progress: float) -> float:
    return base * (1 - min(progress, 0.999)) ** 0.9


def _deep_supervision_targets(target: torch.Tensor, n: int) -> List[torch.Tensor]:
    # Stride-2 convolutions with padding 1 centre output voxel i on input voxel 2i: [::2] lines up.
    out = [target]
    for _ in range(n - 1):
        out.append(out[-1][:, ::2, ::2, ::2])
    return out


class Loss:
    """Cross-entropy + soft Dice over the batch, unknown voxels masked, uncontoured classes marginalised.

    ``known`` (batch, classes) says which classes were contoured in each sample's case. For a case
    without, say, the oesophagus, a voxel labelled background may be oesophagus: the cross-entropy
    scores it with p(background) + p(oesophagus) (the "marginal loss" of Shi et al., Med Image
    Anal 2021), and that class's Dice leaves the case out. Written here rather than with MONAI's
    MaskedDiceLoss because that mask is per voxel, not per class and sample; with every class
    known it computes exactly what MaskedDiceLoss(batch=True, include_background=False) did.
    """

    smooth = 1e-5

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, known: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        b, c = logits.shape[:2]
        if known is None:
            known = torch.ones((b, c), dtype=torch.bool, device=logits.device)
        valid = target != IGNORE_INDEX
        t = torch.where(valid, target, torch.zeros_like(target)).long()
        logp = F.log_softmax(logits, dim=1)
        folded = ~known
        folded[:, 0] = True  # background plus every class not contoured in the case
        view = (b, c) + (1,) * (logits.dim() - 2)
        lp_background = logp.masked_fill(~folded.view(view), float("-inf")).logsumexp(dim=1)
        lp_target = logp.gather(1, t[:, None])[:, 0]
        lp = torch.where(t == 0, lp_background, lp_target)
        validf = valid.to(logits.dtype)
        ce = -(lp * validf).sum() / validf.sum().clamp(min=1)

        prob = logp.exp()
        onehot = F.one_hot(t, c).movedim(-1, 1).to(logits.dtype)
        weight = validf[:, None] * known.to(logits.dtype).view(view)  # (b, c, ...)
        dims = (0,) + tuple(range(2, logits.dim()))
        inter = (prob * onehot * weight).sum(dims)[1:]
        denom = ((prob + onehot) * weight).sum(dims)[1:]
        dice = 1 - (2 * inter + self.smooth) / (denom + self.smooth)
        counted = known[:, 1:].any(dim=0)  # a class no sample of the batch contoured says nothing
        dice = dice[counted].mean() if bool(counted.any()) else logits.sum() * 0
        return ce + dice


def _write_log(folder: Path, record: dict) -> None:
    atomic_write_text(folder / "training_log.json", json.dumps(record, indent=1))


def train(o: TrainOptions, log: Log = print) -> TrainSummary:
    t_start = time.perf_counter()
    _check_options(o)
    torch.manual_seed(o.seed)
    np.random.seed(o.seed)
    if o.threads:
        torch.set_num_threads(int(o.threads))
    device = select_device(o.device)
    precision = fastest_training_precision(device) if o.precision == "auto" else o.precision
    if precision == "bf16":
        try:
            check_precision(device, "bf16")
        except DeviceError as exc:
            raise TrainingConfigError(str(exc)) from None
    out_root = Path(o.output_dir)
    folder = out_root / model_folder_name()

    # ---- data and label checks (all before training) -----------------------------------------
    find_pairs(Path(o.data_dir))  # folder layout first: the most basic problem is reported first
    label_map: LabelMap = load_label_map(Path(o.data_dir), o.labels_json)
    check_consecutive(label_map)
    cases = load_cases(Path(o.data_dir), label_map)
    trained, warnings = check_cases(cases, label_map)
    unlabelled = load_unlabelled(Path(o.data_dir), label_map, cases, o.unlabelled_json)
    val_cases = load_cases(Path(o.val_dir), label_map) if o.val_dir else []
    val_unlabelled = load_unlabelled(Path(o.val_dir), label_map, val_cases) if o.val_dir else {}
    for w in warnings:
        log(f"warning: {w}")
    trained_names = [label_map.names[v] for v in trained]
    log(f"{len(cases)} training case(s), {len(val_cases)} validation case(s); {len(trained) - 1} structures to learn")
    if unlabelled:
        log(f"{len(unlabelled)} training case(s) lack some contours: those structures are unknown there, "
            "not background")

    # ---- plans: resume > fine-tune > new --------------------------------------------------------
    dataset = make_dataset_json(label_map, len(cases))
    latest = folder / "fold_0" / LATEST
    source_model = None
    if o.resume:
        if not latest.is_file():
            raise TrainingConfigError(f"Nothing to resume: {latest} does not exist.")
        plans = json.loads((folder / "plans.json").read_text())
    elif o.finetune:
        from .finetune import source_plans

        plans, source_model = source_plans(Path(o.finetune))
        plans[INPUT_ORIENTATION_KEY] = CANONICAL_RAS  # the cases are reoriented, as for a new model
        if o.arch.dropout_p > 0:  # dropout adds no weights: the source checkpoint still fits
            kw = plans["configurations"][CONFIGURATION]["architecture"]["arch_kwargs"]
            kw["dropout_op"] = "torch.nn.modules.dropout.Dropout3d"
            kw["dropout_op_kwargs"] = {"p": float(o.arch.dropout_p), "inplace": False}
        log(f"fine-tuning from {source_model.folder}")
    else:
        try:
            intensity = foreground_intensity_properties(cases, label_map, seed=o.seed)
        except ValueError:
            raise TrainingDataError("No foreground voxels in any label map.") from None
        shapes = [np.array(c.image.shape) * np.array(c.image.spacing[::-1]) / np.array(o.spacing) for c in cases]
        plans = make_plans(o.dataset_name, o.spacing, o.patch, o.batch_size, o.arch, intensity,
                           np.round(_median(shapes)).astype(int), _median([c.image.spacing[::-1] for c in cases]))
    config = parse_model_config(plans, dataset, CONFIGURATION)
    patch = tuple(config.patch_size)

    net = build_network(config.network, 1, len(trained), deep_supervision=True)
    n_params = sum(p.numel() for p in net.parameters())
    limit = int(o.memory_limit_gb * 2**30) if o.memory_limit_gb else None
    need = check_memory(config.network, patch, o.batch_size, len(trained), n_params, device, limit)
    log(f"network: {len(config.network.features_per_stage)} stages {config.network.features_per_stage}, "
        f"{n_params / 1e6:.2f} M parameters, dropout {config.network.dropout_p}; patch {patch} at "
        f"{tuple(config.spacing)} mm, batch {o.batch_size}; about {need / 2**30:.1f} GiB per step on {device}, "
        f"{precision}")

    # ---- preprocessing (the runner's) and the data pipeline -------------------------------------
    from monai.data import CacheDataset

    from .transforms import (ClassBalancedSampler, RandMirrorLeftRightd, cached_transforms, class_sampling_label,
                             left_right_permutation, training_transforms)

    make_mirror = _mirror_factory(o, plans, config, trained_names, RandMirrorLeftRightd, left_right_permutation)
    if make_mirror is not None:
        log(f"left-right mirror with swapped labels, p={o.mirror_lr_p}")

    lut = value_to_channel_lut(trained, label_map.ignore_value, max(label_map.names))
    items = []
    for c in cases:
        pc = add_air_margin(preprocess_training_case(c, config, lut), config, o.air_margin_mm)
        missing = set(unlabelled.get(c.name, ()))
        items.append({"image": pc.image, "target": pc.target,
                      "sampling": class_sampling_label(pc.target, len(trained)), "name": c.name,
                      "known": np.array([v not in missing for v in trained], dtype=bool)})
        log(f"  case {c.name}: network grid {pc.image.shape[1:]}")
    del cases
    cache = CacheDataset(items, transform=cached_transforms(patch, len(trained)), progress=False, num_workers=0)
    augment = training_transforms(patch, len(trained), seed=o.seed, elastic_p=o.elastic_p,
                                  limited_fov_p=o.limited_fov_p, mirror=make_mirror and make_mirror())
    sampler = None
    if o.class_sampling == "per-class":
        present = np.array([[len(ix) > 0 for ix in cache[i]["sampling_indices"]] for i in range(len(cache))])
        sampler = ClassBalancedSampler(present, lambda r: training_transforms(
            patch, len(trained), elastic_p=o.elastic_p, limited_fov_p=o.limited_fov_p, ratios=r,
            mirror=make_mirror and make_mirror()), seed=o.seed)
        log("patch centres: " + ", ".join(f"{trained_names[c]} in {int(present[:, c].sum())} case(s)"
                                          for c in sampler.classes) + "; each structure the same share")

    # ---- optimiser, resume / fine-tune ------------------------------------------------------------
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    start_it, elapsed_before, history = 0, 0.0, []
    if o.resume:
        ck = torch.load(str(latest), map_location="cpu", weights_only=True)
        if ck.get("trained_label_values") != trained:
            raise TrainingConfigError(
                "The checkpoint to resume was trained on other label values than the data now holds "
                f"({ck.get('trained_label_values')} vs {trained}).")
        net.load_state_dict(ck["network_weights"])
        opt.load_state_dict(ck["optimizer"])
        start_it, elapsed_before, history = int(ck["iteration"]), float(ck.get("elapsed_s", 0)), list(
            ck.get("history", []))
        torch.set_rng_state(ck["torch_rng"])
        augment.set_random_state(seed=o.seed + start_it)
        if sampler is not None:
            sampler.set_random_state(o.seed + start_it)
        log(f"resuming at iteration {start_it}")
    elif source_model is not None:
        from .finetune import init_from_model

        counts = init_from_model(net, source_model, trained_names)
        log(f"  copied {counts['tensors']} tensors and the output heads of {counts['structures']} structure(s) "
            "(background included) from the source model")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "plans.json", json.dumps(plans, indent=1))
    atomic_write_text(folder / "dataset.json", json.dumps(dataset, indent=1))

    loss_fn = Loss()
    rng = np.random.default_rng(o.seed + start_it)
    t0 = time.perf_counter()
    validation: Dict[str, Dict[str, float]] = {}
    it = start_it
    last_loss = float("nan")

    def save_latest() -> None:
        _atomic_save({
            "network_weights": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "optimizer": opt.state_dict(), "iteration": it, "trained_label_values": trained,
            "elapsed_s": elapsed_before + time.perf_counter() - t0, "history": history,
            "torch_rng": torch.get_rng_state(), "options": _options_record(o),
        }, latest)

    def run_validation() -> None:
        nonlocal validation
        if not val_cases:
            return
        from .validation import mean_dice, validate

        net.eval()
        validation = validate(val_cases, plans, dataset, net.state_dict(), trained, label_map, device,
                              val_unlabelled)
        net.train()
        history.append({"iteration": it, "val_mean_dice": mean_dice(validation)})
        log(f"validation at iteration {it}: mean Dice {mean_dice(validation):.3f} over "
            f"{sum(len(v) for v in validation.values())} structure(s)")

    net.train()
    while it < o.iterations:
        elapsed = elapsed_before + time.perf_counter() - t0
        progress = it / o.iterations
        if o.max_minutes:
            if elapsed >= o.max_minutes * 60:
                log(f"time limit of {o.max_minutes} min reached at iteration {it}")
                break
            progress = max(progress, elapsed / (o.max_minutes * 60))
        lr = _poly_lr(o.lr, progress)
        for g in opt.param_groups:
            g["lr"] = lr
        if sampler is not None:
            batch = [sampler.draw(rng, cache) for _ in range(o.batch_size)]
        else:
            batch = [augment(cache[int(rng.integers(len(cache)))])[0] for _ in range(o.batch_size)]
        x = torch.stack([torch.as_tensor(b["image"]) for b in batch]).float().to(device)
        y = torch.stack([torch.as_tensor(b["target"])[0] for b in batch]).to(device)
        known = torch.as_tensor(np.stack([b["known"] for b in batch])).to(device)
        with autocast(device, precision if precision == "bf16" else "fp32"):
            outs = net(x)
        targets = _deep_supervision_targets(y, len(DS_WEIGHTS))
        w = np.array(DS_WEIGHTS) / sum(DS_WEIGHTS)
        # The loss in fp32: bf16's 8-bit mantissa would blur the log-softmax of confident voxels.
        loss = sum(wi * loss_fn(out.float(), t, known) for wi, out, t in zip(w, outs, targets))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        opt.step()
        it += 1
        last_loss = float(loss.detach())
        history.append({"iteration": it, "loss": last_loss, "lr": lr})
        if it % o.log_every == 0 or it == 1:
            el = elapsed_before + time.perf_counter() - t0
            per_it = (time.perf_counter() - t0) / max(it - start_it, 1)
            left = per_it * (o.iterations - it)
            if o.max_minutes:
                left = min(left, o.max_minutes * 60 - el)
            log(f"iteration {it}/{o.iterations} loss {last_loss:.4f} lr {lr:.2e} {per_it:.1f} s/it "
                f"elapsed {el / 60:.1f} min, about {max(left, 0) / 60:.1f} min left")
        if it % o.checkpoint_every == 0:
            save_latest()
        if o.val_every and it % o.val_every == 0 and it < o.iterations:
            run_validation()

    save_latest()
    run_validation()
    seconds = elapsed_before + time.perf_counter() - t0
    extra = {"dropout_p": float(config.network.dropout_p), "iterations": it, "training_seconds": round(seconds, 1),
             "training_precision": precision, "class_sampling": o.class_sampling,
             "trained_structures": trained_names[1:]}
    write_model_folder(folder, plans, dataset, net.state_dict(), trained, fp16=o.fp16_weights, extra=extra)
    _write_log(folder, {"options": _options_record(o), "iterations": it, "seconds": seconds,
                        "trained_label_values": trained, "trained_structures": trained_names[1:],
                        "validation_dice": validation, "history": history, "warnings": warnings})
    log(f"model folder written: {folder} ({it} iterations, {seconds / 60:.1f} min; total "
        f"{(time.perf_counter() - t_start) / 60:.1f} min)")
    return TrainSummary(folder, it, seconds, last_loss, validation, trained, warnings)


def _mirror_factory(o: TrainOptions, plans: dict, config, trained_names, mirror_cls, permutation):
    """A maker of left-right mirror transforms, or None when ``--mirror-lr`` is off.

    Refused where it would teach wrong anatomy: no left/right pair among the structures, or a model
    whose input is not reoriented to canonical RAS (then no fixed axis runs left-right).
    """
    if o.mirror_lr_p <= 0:
        return None
    perm = permutation(trained_names)
    if perm is None:
        raise TrainingConfigError("--mirror-lr needs structures in left/right pairs (names ending _left and "
                                  f"_right); these have none: {', '.join(trained_names[1:])}.")
    if plans.get(INPUT_ORIENTATION_KEY) != CANONICAL_RAS:
        raise TrainingConfigError("--mirror-lr needs a model whose input is reoriented to canonical RAS; "
                                  "this one's plans keep the input's own orientation.")
    axis = list(config.transpose_forward).index(2)  # the input's i axis runs right-left in RAS
    return lambda: mirror_cls(perm, axis, prob=o.mirror_lr_p)


def _options_record(o: TrainOptions) -> dict:
    d = asdict(o)
    return json.loads(json.dumps(d, default=str))
