"""Parameters and MACs of the NATS-Bench networks (ops.MacroNet) by formula, without torch.

Counted as the `params` proxy (every parameter) and the `flops` proxy (conv and linear
layers only, out_elements * in_channels / groups * k^2) count the built net; the tests
compare both with the built networks. Every cell op runs at stride 1 (cells keep the
resolution); the ResNet blocks between stages halve it.
"""
from __future__ import annotations

from typing import Sequence

Genotype = Sequence[Sequence[tuple[str, int]]]


def _op(op: str, c_in: int, c_out: int, pixels: int) -> tuple[int, int]:
    """(params, MACs) of one stride-1 cell op of ops.OPS on a `pixels`-pixel map."""
    if op == "none":
        return 0, 0
    if op == "skip_connect" or op == "avg_pool_3x3":  # identity / plain pooling, or a 1x1 conv + BN
        if c_in == c_out:
            return 0, 0
        return c_in * c_out + 2 * c_out, pixels * c_out * c_in
    kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[op]
    return kernel * kernel * c_in * c_out + 2 * c_out, pixels * c_out * c_in * kernel * kernel


def _cell(genotype: Genotype, c_in: int, c_out: int, pixels: int) -> tuple[int, int]:
    params = macs = 0
    for node in genotype:
        for op, src in node:
            p, m = _op(op, c_in if src == 0 else c_out, c_out, pixels)
            params, macs = params + p, macs + m
    return params, macs


def macro_net_cost(genotype: Genotype, channels: Sequence[int], reductions: Sequence[bool], num_classes: int,
                   in_shape: Sequence[int]) -> tuple[int, int]:
    """(params, MACs of one sample's forward) of `ops.MacroNet(genotype, channels, reductions, ...)`."""
    c_in, height, width = int(in_shape[0]), int(in_shape[1]), int(in_shape[2])
    c = channels[0]
    params = 9 * c_in * c + 2 * c  # stem conv + BN
    macs = height * width * c * c_in * 9
    cells: dict[tuple[int, int, int], tuple[int, int]] = {}  # equal cells cost the same: count each once
    for c_out, reduction in zip(channels, reductions):
        if reduction:  # ResNetBasicBlock(c, c_out, 2): two 3x3 conv + BN, avg-pool then 1x1 conv shortcut
            out_h, out_w = (height - 1) // 2 + 1, (width - 1) // 2 + 1
            params += 9 * c * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c * c_out
            macs += out_h * out_w * c_out * 9 * (c + c_out) + (height // 2) * (width // 2) * c_out * c
            height, width = out_h, out_w
        else:
            key = (c, c_out, height * width)
            if key not in cells:
                cells[key] = _cell(genotype, c, c_out, height * width)
            params, macs = params + cells[key][0], macs + cells[key][1]
        c = c_out
    params += 2 * c + c * num_classes + num_classes  # last BN, classifier
    macs += c * num_classes
    return params, macs
