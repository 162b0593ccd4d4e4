"""Training the click model with simulated users (``medsegai train-clicks``).

Each iteration: a batch of objects (OpenKBP organs and target volumes 65 %, TotalSegmentator
reference structures 25 %, MRI lesions 10 %), each cropped the way the engine crops
(:func:`.simulate.choose_grid`), flipped at random (the model is class-agnostic, so mirrored
anatomy is still a valid object) and intensity-augmented with MONAI; a first prompt
(:func:`.simulate.first_prompt`); 0-4 rounds of no-gradient predictions, each followed by a
corrective click at the largest error (the benchmark's simulator); then one training step on
Dice + cross-entropy against the object. AdamW, learning rate decayed over the time budget.
``--resume`` continues from ``<out>/training/checkpoint_latest.pth`` (weights, optimiser,
iteration, elapsed time), written every minute.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ...atomic import atomic_path
from ...inference.device import configure_threads, select_device
from ...nnunet.checkpoint import load_checkpoint
from . import encoding as enc
from . import model_folder as mf
from .data import Scan, training_scans
from .simulate import add_correction, choose_grid, first_prompt

GROUP_WEIGHTS = {"openkbp": 0.65, "totalseg": 0.25, "mri": 0.10}
ROUNDS = ([0, 1, 2, 3, 4], [0.35, 0.3, 0.2, 0.1, 0.05])


def _augmenter(seed: int):
    from monai import transforms as mt

    t = mt.Compose([
        mt.RandScaleIntensity(factors=0.15, prob=0.2),
        mt.RandShiftIntensity(offsets=0.15, prob=0.2),
        mt.RandGaussianNoise(prob=0.15, std=0.05),
        mt.RandGaussianSmooth(sigma_x=(0.4, 1.0), sigma_y=(0.4, 1.0), sigma_z=(0.4, 1.0), prob=0.1),
    ])
    t.set_random_state(seed)
    return t


class Sampler:
    def __init__(self, scans: List[Scan], cfg, seed: int):
        self.cfg, self.rng = cfg, np.random.default_rng(seed)
        self.groups = {g: [s for s in scans if s.group == g and s.objects] for g in GROUP_WEIGHTS}
        self.groups = {g: v for g, v in self.groups.items() if v}
        w = np.array([GROUP_WEIGHTS[g] for g in self.groups])
        self.group_p = w / w.sum()
        self.aug = _augmenter(seed)

    def sample(self):
        rng = self.rng
        for _ in range(20):
            group = list(self.groups)[rng.choice(len(self.groups), p=self.group_p)]
            scan = self.groups[group][rng.integers(len(self.groups[group]))]
            name, get, box = scan.objects[rng.integers(len(scan.objects))]
            obj = get()
            grid = choose_grid(rng, scan, box, obj, self.cfg)
            gt = grid.sample(obj.astype(np.float32)) > 0.5
            if gt.sum() < 8:
                continue
            image = enc.image_channel(grid, scan.array, scan.ct)
            flips = tuple(a for a in range(3) if rng.random() < 0.5)
            if flips:
                image, gt = np.flip(image, flips).copy(), np.flip(gt, flips).copy()
            image = np.asarray(self.aug(image[None]))[0].astype(np.float32)
            marks, prev = first_prompt(rng, gt)
            return image, gt, marks, prev
        raise RuntimeError("could not sample a training object")


def _batch(samples, prevs=None) -> torch.Tensor:
    xs = [enc.crop_channels_from_arrays(img, prev if prevs is None else prevs[n], marks)
          for n, (img, gt, marks, prev) in enumerate(samples)]
    return torch.from_numpy(np.stack(xs))


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits, target.long())
    p = torch.softmax(logits, 1)[:, 1]
    t = target.float()
    dims = tuple(range(1, p.ndim))
    dice = (2 * (p * t).sum(dims) + 1e-5) / (p.sum(dims) + t.sum(dims) + 1e-5)
    return ce + (1 - dice.mean())


def train(out: Path, minutes: float = 55.0, resume: bool = False, threads: Optional[int] = 2, device: str = "cpu",
          seed: int = 0, batch_size: int = 2, lr: float = 2e-3, iterations: Optional[int] = None,
          limit_openkbp: Optional[int] = None, export_every_s: float = 600.0, data_root=None, log=print) -> Path:
    out = Path(out)
    work = out / "training"
    work.mkdir(parents=True, exist_ok=True)
    configure_threads(threads)
    dev = select_device(device)
    cfg = mf.default_config()
    torch.manual_seed(seed)
    net = mf.network_from(cfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    it, elapsed = 0, 0.0
    latest = work / "checkpoint_latest.pth"
    if resume and latest.is_file():
        ck = load_checkpoint(latest)
        net.load_state_dict(ck["network_weights"])
        opt.load_state_dict(ck["optimizer_state"])
        it, elapsed = int(ck["iteration"]), float(ck["elapsed_s"])
        log(f"resumed at iteration {it} ({elapsed / 60:.1f} min done)")
    scans = training_scans(data_root, limit_openkbp=limit_openkbp, log=log)
    sampler = Sampler(scans, cfg, seed + 7919 * it)
    budget = float(minutes) * 60.0
    start = time.perf_counter() - elapsed
    last_save, last_export = time.perf_counter(), time.perf_counter()
    losses: List[float] = []

    def save_latest():
        with atomic_path(latest) as tmp:
            torch.save({"network_weights": net.state_dict(), "optimizer_state": opt.state_dict(), "iteration": it,
                        "elapsed_s": time.perf_counter() - start}, tmp)

    def export(final: bool):
        info = {"iterations": it, "minutes": round((time.perf_counter() - start) / 60, 1), "batch_size": batch_size,
                "lr": lr, "seed": seed, "device": str(dev), "threads": threads, "final": final,
                "scans": len(scans), "objects": sum(len(s.objects) for s in scans),
                "held_out": "OpenKBP case number % 5 == 0 (Resources/Splits/openkbp_validation.json), "
                            "TotalSegmentator example_ct_dicom + example_seg_dicom, BraTS FLAIR edema"}
        mf.save(out, dict(cfg, training=info), net, extra={"iteration": it})

    net.train()
    while True:
        frac = (time.perf_counter() - start) / budget
        if (iterations is not None and it >= iterations) or (iterations is None and frac >= 1.0):
            break
        cur_lr = lr * min(1.0, (it + 1) / 50.0) * max(0.0, 1.0 - min(frac, 0.999)) ** 0.9
        for g in opt.param_groups:
            g["lr"] = cur_lr
        samples = [sampler.sample() for _ in range(batch_size)]
        prevs = [s[3] for s in samples]
        rounds = int(sampler.rng.choice(ROUNDS[0], p=ROUNDS[1]))
        for _ in range(rounds):
            with torch.no_grad():
                pred = net(_batch(samples, prevs).to(dev)).argmax(1).cpu().numpy().astype(bool)
            for n, (img, gt, marks, prev) in enumerate(samples):
                prevs[n] = pred[n].astype(np.float32)
                add_correction(marks, pred[n], gt)
        x = _batch(samples, prevs).to(dev)
        y = torch.from_numpy(np.stack([s[1] for s in samples])).to(dev)
        loss = dice_ce_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        opt.step()
        it += 1
        losses.append(float(loss.detach()))
        if it % 25 == 0:
            t = time.perf_counter() - start
            log(f"it {it}  loss {np.mean(losses[-25:]):.4f}  lr {cur_lr:.2e}  {t / 60:.1f} min  {t / max(it, 1):.2f} s/it")
        now = time.perf_counter()
        if now - last_save > 60:
            save_latest()
            last_save = now
        if now - last_export > export_every_s:
            export(final=False)
            last_export = now
    save_latest()
    export(final=True)
    (work / "log_summary.json").write_text(json.dumps({"iterations": it, "final_loss": float(np.mean(losses[-50:])) if losses else None}))
    log(f"done: {it} iterations in {(time.perf_counter() - start) / 60:.1f} min -> {out}")
    return out
