"""The torch modules of the `mbv2` space (mbv2.py holds the torch-free encoding and cost formulas)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand (absent for expansion 1), k x k depthwise, linear 1x1 projection.

    The identity shortcut is added where shapes allow it (stride 1, same width), as in MobileNetV2.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, kernel: int) -> None:
        super().__init__()
        mid = c_in * expansion
        layers = [conv_bn(c_in, mid, 1)] if expansion != 1 else []
        layers += [conv_bn(mid, mid, kernel, stride, groups=mid), conv_bn(mid, c_out, 1, relu=False)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


class MobileNetV2Net(nn.Module):
    """Stem, the stages' inverted-residual blocks, 1x1 head conv, global pooling, linear classifier."""

    def __init__(self, stages: Sequence[tuple[int, int, int, int]], head: int, num_classes: int, in_channels: int,
                 stem_width: int, stem_stride: int, stage_strides: Sequence[int]) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, stem_width, 3, stem_stride)
        blocks = []
        c = stem_width
        for (depth, width, expansion, kernel), stride in zip(stages, stage_strides):
            for i in range(depth):
                blocks.append(InvertedResidual(c, width, stride if i == 0 else 1, expansion, kernel))
                c = width
        self.blocks = nn.ModuleList(blocks)
        self.head = conv_bn(c, head, 1)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def feature_blocks(self) -> list[nn.Module]:
        """The chain whose outputs block-wise proxies (AZ-NAS) read: the stem, then every block."""
        return [self.stem, *self.blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        for block in self.blocks:
            feature = block(feature)
        return self.classifier(self.global_pooling(self.head(feature)).flatten(1))
