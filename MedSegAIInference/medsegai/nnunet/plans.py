"""nnU-Net v2 plans.json / dataset.json, old (TotalSegmentator) and new (architecture block) formats.

Everything the runner needs is pulled into one typed :class:`ModelConfig`, so the rest of the
pipeline never looks at raw JSON.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import InvalidModelError
from ..reliability import declared_body_regions

_SUPPORTED_NETWORKS = ("PlainConvUNet", "ResidualEncoderUNet")


@dataclass
class NetworkSpec:
    class_name: str  # "PlainConvUNet" | "ResidualEncoderUNet"
    n_stages: int
    features_per_stage: List[int]
    kernel_sizes: List[List[int]]
    strides: List[List[int]]
    n_conv_per_stage: List[int]  # encoder: convs (plain) or residual blocks (ResEnc) per stage
    n_conv_per_stage_decoder: List[int]
    conv_bias: bool = True
    norm: str = "InstanceNorm3d"
    norm_kwargs: Dict[str, Any] = field(default_factory=lambda: {"eps": 1e-5, "affine": True})
    dropout_p: float = 0.0
    nonlin_kwargs: Dict[str, Any] = field(default_factory=lambda: {"inplace": True})
    nonlin: str = "LeakyReLU"  # "LeakyReLU" | "ReLU"


@dataclass
class IntensityProperties:
    mean: float
    std: float
    percentile_00_5: float
    percentile_99_5: float


INPUT_ORIENTATION_KEY = "medsegai_input_orientation"
CANONICAL_RAS = "closest_canonical_ras"


@dataclass
class ModelConfig:
    configuration: str
    patch_size: Tuple[int, ...]
    spacing: Tuple[float, ...]  # after transpose_forward, i.e. in the network's axis order
    transpose_forward: Tuple[int, ...]
    transpose_backward: Tuple[int, ...]
    normalization_schemes: List[str]
    use_mask_for_norm: List[bool]
    intensity_properties: Dict[int, IntensityProperties]
    network: NetworkSpec
    resampling_data_kwargs: Dict[str, Any]
    resampling_probabilities_kwargs: Dict[str, Any]
    # from dataset.json
    labels: Dict[str, Any]  # name -> int (or list for region-based training)
    channel_names: Dict[str, str]
    file_ending: str = ".nii.gz"
    # MedSegAI-trained models see their input in the closest canonical (RAS) orientation, as
    # TotalSegmentator's do; plain nnU-Net models see the array as stored.
    canonical_input: bool = False
    # The body regions the model was trained on (medsegai_body_regions), for the out-of-region
    # warning; None: it declares none (nnU-Net's and TotalSegmentator's models).
    body_regions: Optional[List[str]] = None

    @property
    def num_input_channels(self) -> int:
        return len(self.channel_names)

    @property
    def label_names(self) -> Dict[int, str]:
        return {int(v): k for k, v in self.labels.items() if not isinstance(v, (list, tuple))}

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def region_based(self) -> bool:
        return any(isinstance(v, (list, tuple)) for v in self.labels.values())


def _resolve_configuration(plans: dict, name: str) -> dict:
    """Merge ``inherits_from`` chains the way nnU-Net's PlansManager does."""
    confs = plans.get("configurations", {})
    if name not in confs:
        raise InvalidModelError(
            f"plans.json has no configuration '{name}' (it has: {', '.join(confs) or 'none'})."
        )
    conf = copy.deepcopy(confs[name])
    seen = {name}
    while "inherits_from" in conf:
        parent_name = conf.pop("inherits_from")
        if parent_name in seen or parent_name not in confs:
            raise InvalidModelError(f"plans.json configuration '{name}' inherits from unknown '{parent_name}'.")
        seen.add(parent_name)
        parent = copy.deepcopy(confs[parent_name])
        parent.update(conf)
        conf = parent
    return conf


def _norm_name(value: Optional[str]) -> str:
    if not value:
        return "none"
    return value.rsplit(".", 1)[-1]


def _network_from_new_format(arch: dict) -> NetworkSpec:
    cls = arch.get("network_class_name", "").rsplit(".", 1)[-1]
    kw = arch.get("arch_kwargs", {})
    if cls not in _SUPPORTED_NETWORKS:
        raise InvalidModelError(f"Network class '{cls}' is not supported (supported: {', '.join(_SUPPORTED_NETWORKS)}).")
    n_stages = int(kw["n_stages"])
    enc_key = "n_conv_per_stage" if cls == "PlainConvUNet" else "n_blocks_per_stage"
    dropout_p = 0.0
    if kw.get("dropout_op"):
        dropout_p = float((kw.get("dropout_op_kwargs") or {}).get("p", 0.0))
    conv_op = _norm_name(kw.get("conv_op"))
    if conv_op != "Conv3d":
        raise InvalidModelError(f"Only 3D models are supported; this model uses {conv_op}.")
    _refuse_unbuilt_options(cls, kw)
    return NetworkSpec(
        class_name=cls,
        n_stages=n_stages,
        features_per_stage=[int(f) for f in kw["features_per_stage"]],
        kernel_sizes=[list(map(int, k)) for k in kw["kernel_sizes"]],
        strides=[list(map(int, s)) if isinstance(s, (list, tuple)) else [int(s)] * 3 for s in kw["strides"]],
        n_conv_per_stage=[int(n) for n in kw[enc_key]],
        n_conv_per_stage_decoder=[int(n) for n in kw["n_conv_per_stage_decoder"]],
        conv_bias=bool(kw.get("conv_bias", True)),
        norm=_norm_name(kw.get("norm_op")),
        norm_kwargs=dict(kw.get("norm_op_kwargs") or {}),
        dropout_p=dropout_p,
        nonlin_kwargs=dict(kw.get("nonlin_kwargs") or {}),
        nonlin=_norm_name(kw.get("nonlin")) if kw.get("nonlin") else "LeakyReLU",
    )


def _refuse_unbuilt_options(cls: str, kw: dict) -> None:
    """Options of dynamic-network-architectures that network.py does not build: refuse them rather
    than build a different network whose checkpoint might still load."""
    unbuilt = [k for k in ("bottleneck_channels", "stem_channels", "stochastic_depth_p", "squeeze_excitation")
               if kw.get(k)]
    if cls == "ResidualEncoderUNet" and _norm_name(kw.get("block")) not in ("none", "BasicBlockD"):
        unbuilt.append(f"block={_norm_name(kw.get('block'))}")
    if kw.get("nonlin_first"):
        unbuilt.append("nonlin_first")
    if unbuilt:
        raise InvalidModelError(f"{cls} with {', '.join(unbuilt)} is not supported.")


def architecture_from_plans(plans: dict, configuration: str) -> Tuple[NetworkSpec, Tuple[int, ...]]:
    """The network and patch size of one configuration, without the dataset and preprocessing
    fields that :func:`parse_model_config` also requires (nnInteractive's plans need only these)."""
    try:
        conf = _resolve_configuration(plans, configuration)
        network = (
            _network_from_new_format(conf["architecture"]) if "architecture" in conf else _network_from_old_format(conf)
        )
        patch_size = tuple(int(p) for p in conf["patch_size"])
    except InvalidModelError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InvalidModelError(f"plans.json is incomplete or malformed ({type(exc).__name__}: {exc}).") from None
    problems = _network_problems(network)
    if len(patch_size) != 3:
        problems.append("patch_size must be 3D")
    if problems:
        raise InvalidModelError("The model's plans are inconsistent: " + "; ".join(problems) + ".")
    return network, patch_size


def _network_from_old_format(conf: dict) -> NetworkSpec:
    cls = conf.get("UNet_class_name", "PlainConvUNet")
    if cls not in _SUPPORTED_NETWORKS:
        raise InvalidModelError(f"Network class '{cls}' is not supported (supported: {', '.join(_SUPPORTED_NETWORKS)}).")
    kernels = [list(map(int, k)) for k in conf["conv_kernel_sizes"]]
    if len(kernels[0]) != 3:
        raise InvalidModelError("Only 3D models are supported; this plans file describes a 2D configuration.")
    n_stages = len(kernels)
    base = int(conf["UNet_base_num_features"])
    cap = int(conf["unet_max_num_features"])
    # The old plans carry the rule, not the list: nnU-Net doubles features per stage up to the cap.
    features = [min(base * 2 ** i, cap) for i in range(n_stages)]
    return NetworkSpec(
        class_name=cls,
        n_stages=n_stages,
        features_per_stage=features,
        kernel_sizes=kernels,
        strides=[list(map(int, s)) for s in conf["pool_op_kernel_sizes"]],
        n_conv_per_stage=[int(n) for n in conf["n_conv_per_stage_encoder"]],
        n_conv_per_stage_decoder=[int(n) for n in conf["n_conv_per_stage_decoder"]],
        conv_bias=True,
        norm="InstanceNorm3d",
        norm_kwargs={"eps": 1e-5, "affine": True},
        dropout_p=0.0,
        nonlin_kwargs={"inplace": True},
    )


def parse_model_config(plans: dict, dataset: dict, configuration: str) -> ModelConfig:
    try:
        conf = _resolve_configuration(plans, configuration)
        network = (
            _network_from_new_format(conf["architecture"]) if "architecture" in conf else _network_from_old_format(conf)
        )
        fg = plans.get("foreground_intensity_properties_per_channel", {})
        props = {
            int(ch): IntensityProperties(
                float(p["mean"]), float(p["std"]), float(p["percentile_00_5"]), float(p["percentile_99_5"])
            )
            for ch, p in fg.items()
        }
        channel_names = dataset.get("channel_names") or dataset.get("modality")
        if not channel_names:
            raise InvalidModelError("dataset.json has no channel_names.")
        labels = dataset.get("labels")
        if not isinstance(labels, dict):
            raise InvalidModelError(f"dataset.json labels must map each name to its value, not a {type(labels).__name__}.")
        if not labels or "background" not in labels:
            raise InvalidModelError("dataset.json has no labels (or no 'background' label).")
        cfg = ModelConfig(
            configuration=configuration,
            patch_size=tuple(int(p) for p in conf["patch_size"]),
            spacing=tuple(float(s) for s in conf["spacing"]),
            transpose_forward=tuple(int(t) for t in plans.get("transpose_forward", (0, 1, 2))),
            transpose_backward=tuple(int(t) for t in plans.get("transpose_backward", (0, 1, 2))),
            normalization_schemes=list(conf["normalization_schemes"]),
            use_mask_for_norm=[bool(u) for u in conf.get("use_mask_for_norm", [False])],
            intensity_properties=props,
            network=network,
            resampling_data_kwargs=dict(conf.get("resampling_fn_data_kwargs") or {}),
            resampling_probabilities_kwargs=dict(conf.get("resampling_fn_probabilities_kwargs") or {}),
            labels=labels,
            channel_names={str(k): str(v) for k, v in channel_names.items()},
            file_ending=dataset.get("file_ending", ".nii.gz"),
            canonical_input=plans.get(INPUT_ORIENTATION_KEY) == CANONICAL_RAS,
            body_regions=declared_body_regions(plans),
        )
    except InvalidModelError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise InvalidModelError(f"plans.json/dataset.json are incomplete or malformed ({type(exc).__name__}: {exc}).") from None
    _check_consistency(cfg)
    return cfg


def _network_problems(n: NetworkSpec) -> List[str]:
    problems = []
    for name, seq, want in (
        ("features_per_stage", n.features_per_stage, n.n_stages),
        ("kernel_sizes", n.kernel_sizes, n.n_stages),
        ("strides", n.strides, n.n_stages),
        ("n_conv_per_stage", n.n_conv_per_stage, n.n_stages),
        ("n_conv_per_stage_decoder", n.n_conv_per_stage_decoder, n.n_stages - 1),
    ):
        if len(seq) != want:
            problems.append(f"{name} has {len(seq)} entries, expected {want}")
    return problems


def _check_consistency(cfg: ModelConfig) -> None:
    problems = _network_problems(cfg.network)
    if len(cfg.patch_size) != 3 or len(cfg.spacing) != 3:
        problems.append("patch_size and spacing must be 3D")
    if any(p < 1 for p in cfg.patch_size):
        problems.append(f"patch_size {list(cfg.patch_size)} has a size below 1")
    if any(not math.isfinite(s) or s <= 0 for s in cfg.spacing):
        problems.append(f"spacing {list(cfg.spacing)} is not positive")
    channels = len(cfg.channel_names)
    if len(cfg.normalization_schemes) != channels:
        # each input channel has its own normalisation: a mismatch would index past the image's channels
        problems.append(f"normalization_schemes has {len(cfg.normalization_schemes)} entries for {channels} input "
                        "channel(s) (dataset.json channel_names)")
    for scheme in cfg.normalization_schemes:
        if scheme not in ("CTNormalization", "ZScoreNormalization", "NoNormalization", "RescaleTo01Normalization",
                          "RGBTo01Normalization"):
            problems.append(f"unknown normalization scheme {scheme}")
    if "CTNormalization" in cfg.normalization_schemes and not cfg.intensity_properties:
        problems.append("CTNormalization needs foreground_intensity_properties_per_channel")
    if problems:
        raise InvalidModelError("The model's plans are inconsistent: " + "; ".join(problems) + ".")
