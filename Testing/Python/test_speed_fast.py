"""``--speed fast``: the detection of bf16 units against the CPU's own flags, the path chosen, and its
labels against exact mode on the bundled (trained) model, on whatever CPU runs the test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import medsegai
from medsegai.cli import main
from medsegai.evaluate import dice
from medsegai.inference.device import cpu_has_bf16_units
from medsegai.inference.speed import choose_speed
from medsegai.io.read import read_image
from medsegai.run_request import RunRequest, RunRequestError


def _flags() -> set:
    text = Path("/proc/cpuinfo").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("flags"))
    return set(line.split(":", 1)[1].split())


def test_bf16_units_are_detected_as_the_cpu_reports_them():
    # AVX-512 without BF16 (Skylake-X) must not count: the capability string alone says "AVX512" there.
    flags = _flags()
    assert cpu_has_bf16_units() == bool({"avx512_bf16", "amx_bf16"} & flags), sorted(f for f in flags if "avx" in f)


def test_the_path_chosen_for_each_device():
    cpu = choose_speed("fast", torch.device("cpu"))
    if cpu_has_bf16_units():
        assert cpu.precision == "bf16" and "bf16 units" in cpu.note
    else:
        assert cpu.precision == "fp32" and "exact mode" in cpu.note and "no bf16 units" in cpu.note
    assert choose_speed("fast", torch.device("cuda")).precision == "fp16"
    assert choose_speed("exact", torch.device("cpu")).note is None


def test_fast_keeps_exact_modes_labels_and_says_what_it_chose(ts_ref):
    image = read_image(ts_ref / "example_ct_sm.nii.gz")
    exact = medsegai.segment(image, model="medsegai_ct_demo", device="cpu")
    fast = medsegai.segment(image, model="medsegai_ct_demo", device="cpu", speed="fast")
    assert any(n.startswith("speed fast:") for n in fast.notes), fast.notes
    assert not any(n.startswith("speed fast:") for n in exact.notes)
    if not cpu_has_bf16_units():  # fast is exact here: identical labels
        np.testing.assert_array_equal(fast.labels.array, exact.labels.array)
        return
    for s in exact.present_segments():
        ref = exact.labels.array == s.value
        if ref.sum() >= 1000:
            assert dice(fast.labels.array == s.value, ref) >= 0.99, s.name


def test_bad_speed_options_are_one_line_errors(ts_ref, tmp_path, capsys):
    with pytest.raises(RunRequestError, match="Unknown speed"):
        RunRequest(model="medsegai_ct_demo", speed="ludicrous").validate()
    with pytest.raises(RunRequestError, match="chooses the precision itself"):
        RunRequest(model="medsegai_ct_demo", speed="fast", precision="fp32").validate()
    code = main(["segment", "-i", str(ts_ref / "example_ct_sm.nii.gz"), "-o", str(tmp_path / "o"), "--speed", "fast",
                 "--precision", "fp32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "chooses the precision itself" in err[0]
    assert not (tmp_path / "o").exists()


def test_the_cli_prints_the_chosen_path(ts_ref, tmp_path, capsys):
    assert main(["segment", "-i", str(ts_ref / "example_ct_sm.nii.gz"), "-o", str(tmp_path / "o"), "--speed", "fast",
                 "--ml", "-d", "cpu"]) == 0
    assert "note: speed fast:" in capsys.readouterr().out


def test_full_resolution_layers_stay_fp32_under_bf16_autocast():
    from medsegai.inference.mixed_precision import keep_full_resolution_in_fp32
    from medsegai.nnunet.model_folder import load_model_folder
    from medsegai.resources import resource_path

    model = load_model_folder(resource_path("Models", "medsegai_ct_demo", "MedSegAITrainer__nnUNetPlans__3d_fullres"))
    net = model.make_network(0)
    x = torch.randn(1, 1, *model.config.patch_size)
    keys = list(net.state_dict())
    with torch.inference_mode():
        plain = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert net(x).dtype == torch.bfloat16
        keep_full_resolution_in_fp32(net)
        keep_full_resolution_in_fp32(net)  # a kept network is marked once, not wrapped twice
        assert torch.equal(net(x), plain)  # outside autocast: exact mode is untouched
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(x)
    assert mixed.dtype == torch.float32 and list(net.state_dict()) == keys
    # bf16 in the inner stages only: close to fp32 but not bit-identical (it did run in bf16 there).
    assert 0 < (mixed - plain).abs().max() < 0.05 * plain.abs().max()


def test_the_pointwise_head_under_autocast_is_the_fp32_convolution_as_a_product():
    """speed fast runs the 1x1x1 head as a matrix product (no oneDNN reorder); outside autocast the
    convolution itself runs, bit for bit."""
    from medsegai.inference.mixed_precision import keep_in_fp32

    torch.manual_seed(0)
    for bias in (True, False):
        head = torch.nn.Conv3d(8, 5, 1, bias=bias)
        x = torch.randn(2, 8, 6, 7, 9)
        with torch.inference_mode():
            reference = head(x)
            keep_in_fp32([head])
            assert torch.equal(head(x), reference)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                product = head(x.bfloat16())
        assert product.dtype == torch.float32 and product.shape == reference.shape
        # the bf16 input is rounded, so compare against the convolution of that same rounded input
        with torch.inference_mode():
            rounded = torch.nn.functional.conv3d(x.bfloat16().float(), head.weight, head.bias)
        assert torch.allclose(product, rounded, rtol=1e-5, atol=1e-5)
