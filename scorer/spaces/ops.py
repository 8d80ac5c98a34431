"""The one op vocabulary of the NATS-Bench cells and the blocks built from it.

Definitions follow NATS-Bench's published networks (xautodl `cell_operations`)
so parameter counts match the benchmark; the tests pin those counts.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# Order matters: it is the benchmark's enumeration order of cell ops.
OP_NAMES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The `none` op: contributes nothing, but keeps the graph's shape."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.c_in == self.c_out:
            return x[:, :, :: self.stride, :: self.stride].mul(0.0)
        shape = list(x[:, :, :: self.stride, :: self.stride].shape)
        shape[1] = self.c_out
        return x.new_zeros(shape)


class FactorizedReduce(nn.Module):
    """Skip connection that must change channels (and maybe resolution)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.relu = nn.ReLU(inplace=False)
        if stride == 2:
            halves = [c_out // 2, c_out - c_out // 2]
            self.convs = nn.ModuleList(nn.Conv2d(c_in, h, 1, stride=2, bias=False) for h in halves)
            self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0)
        elif stride == 1:
            self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        else:
            raise ValueError(f"invalid stride {stride}")
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = self.relu(x)
            y = self.pad(x)
            out = torch.cat([self.convs[0](x), self.convs[1](y[:, :, 1:, 1:])], dim=1)
        else:
            out = self.conv(x)
        return self.bn(out)


class AvgPool(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.preprocess = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0)
        self.op = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x if self.preprocess is None else self.preprocess(x))


def _skip(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)


OPS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "none": Zero,
    "skip_connect": _skip,
    "nor_conv_1x1": lambda c_in, c_out, stride: ReLUConvBN(c_in, c_out, 1, stride, 0),
    "nor_conv_3x3": lambda c_in, c_out, stride: ReLUConvBN(c_in, c_out, 3, stride, 1),
    "avg_pool_3x3": AvgPool,
}
assert tuple(OPS) == OP_NAMES


class ResNetBasicBlock(nn.Module):
    """The fixed reduction block between stages of the macro skeleton."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        if stride == 2:
            self.downsample: nn.Module | None = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(c_in, c_out, 1, bias=False),
            )
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1, 1, 0)
        else:
            self.downsample = None
        self.out_dim = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


Genotype = tuple[tuple[tuple[str, int], ...], ...]  # per node: ((op, input node), ...)


class Cell(nn.Module):
    """A NAS-Bench-201 cell: node i sums one op applied to every earlier node."""

    def __init__(self, genotype: Genotype, c_in: int, c_out: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.inputs: list[list[tuple[int, int]]] = []  # per node: (layer index, input node)
        for node in genotype:
            wiring = []
            for op_name, src in node:
                layer = OPS[op_name](c_in, c_out, 1) if src == 0 else OPS[op_name](c_out, c_out, 1)
                wiring.append((len(self.layers), src))
                self.layers.append(layer)
            self.inputs.append(wiring)
        self.out_dim = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for wiring in self.inputs:
            nodes.append(sum(self.layers[i](nodes[src]) for i, src in wiring))
        return nodes[-1]


class MacroNet(nn.Module):
    """Stem, three stages of cells split by two reduction blocks, then a linear head.

    `channels[i]` is the width of layer i; `reductions[i]` marks the ResNet blocks.
    Returns logits only (the benchmark's code returns (features, logits)).
    """

    def __init__(
        self,
        genotype: Genotype,
        channels: list[int],
        reductions: list[bool],
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0])
        )
        c_prev = channels[0]
        self.cells = nn.ModuleList()
        for c_curr, reduction in zip(channels, reductions):
            cell = ResNetBasicBlock(c_prev, c_curr, 2) if reduction else Cell(genotype, c_prev, c_curr)
            self.cells.append(cell)
            c_prev = cell.out_dim
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def feature_blocks(self) -> list[nn.Module]:
        """The chain whose outputs block-wise proxies (AZ-NAS) read: the stem, then every cell."""
        return [self.stem, *self.cells]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        out = self.global_pooling(self.lastact(feature)).flatten(1)
        return self.classifier(out)


def stage_reductions(cells_per_stage: int) -> list[bool]:
    n = cells_per_stage
    return [False] * n + [True] + [False] * n + [True] + [False] * n
