"""The tile scores are added into the fp16 sums a few classes at a time (to bound memory); every
element must get exactly the sum and the rounding of nnU-Net's single ``logits[:, sl] += p``."""
from __future__ import annotations

import torch


def test_adding_in_class_chunks_is_bitwise_the_single_add():
    from medsegai.inference.sliding_window import _add_in_class_chunks

    g = torch.Generator().manual_seed(0)
    acc = (torch.randn((37, 20, 18, 16), generator=g) * 50).half()  # 37: not a multiple of the chunk
    p = torch.randn((37, 12, 10, 9), generator=g) * torch.logspace(-3, 3, 9)  # fp32, tiny to large
    sl = (slice(5, 17), slice(3, 13), slice(7, 16))
    expected = acc.clone()
    expected[(slice(None), *sl)] += p
    _add_in_class_chunks(acc, sl, p)
    assert acc.dtype == torch.float16
    assert torch.equal(acc.view(torch.int16), expected.view(torch.int16))
