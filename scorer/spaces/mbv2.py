"""`mbv2`: a MobileNetV2-style macro space of inverted-residual stages (docs/spaces.md).

The skeleton (Sandler et al. 2018, as the training-free literature searches it:
Zen-NAS, ZiCo, AZ-NAS): a 3x3 stem conv (16 channels), five stages of
inverted-residual blocks, a 1x1 conv head, global average pooling and a linear
classifier. Each stage picks, for all its blocks at once (Zen-NAS's granularity),

    depth d in (1, 2, 3, 4)      expansion e in (1, 3, 6)      kernel k in (3, 5, 7)
    width w from a per-stage set (STAGES)

and the head picks its width h. An arch string lists the stages then the head:

    d1-w16-e1-k3|d2-w24-e6-k3|d3-w40-e6-k5|d3-w80-e6-k3|d2-w128-e6-k7|h1024

Index: a mixed-radix number over the fields in the order written (stage 1's d
varies slowest, the head fastest); index 0 is the smallest arch. There are
144^5 * 4 = 247,669,456,896 archs, so the space is never enumerated: `all()`
refuses, `sample` draws the fields directly.

Strides depend on the input side only (never on the arch): the stem has stride 1
up to 32 px and 2 above; the stages have strides (1, 2, 2, 2, 1), the first
stage 2 instead of 1 above 64 px, so CIFAR's 32 px ends at 4x4 and 224 px at 7x7.

`params` and `flops` are pure-Python formulas equal to the built net's parameter
count and to the `flops` proxy's multiply-accumulate count (tests pin both).
"""
from __future__ import annotations

import random
import re
from typing import Iterable, Sequence

from .base import InvalidArchError, SearchSpace

STEM_WIDTH = 16
DEPTHS = (1, 2, 3, 4)
EXPANSIONS = (1, 3, 6)
KERNELS = (3, 5, 7)
# Per stage: (stride at <= 64 px, width choices). MobileNetV2's CIFAR widths 16..320 fall across these sets.
STAGES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (1, (8, 12, 16, 24)),
    (2, (16, 24, 32, 40)),
    (2, (32, 40, 48, 64)),
    (2, (64, 80, 96, 128)),
    (1, (96, 128, 160, 192)),
)
HEADS = (256, 512, 1024, 1280)
FIELDS = ("d", "w", "e", "k")  # the canonical order of a stage's fields
EXAMPLE = "d1-w16-e1-k3|d2-w24-e6-k3|d3-w40-e6-k5|d3-w80-e6-k3|d2-w128-e6-k7|h1024"

Stage = tuple[int, int, int, int]  # (depth, width, expansion, kernel)


def _stage(values: Iterable[int]) -> Stage:
    """A stage from its four field values in FIELDS order."""
    d, w, e, k = values
    return d, w, e, k


def _choices(stage: int) -> dict[str, tuple[int, ...]]:
    return {"d": DEPTHS, "w": STAGES[stage][1], "e": EXPANSIONS, "k": KERNELS}


_RADICES: tuple[int, ...] = tuple(
    [len(_choices(s)[f]) for s in range(len(STAGES)) for f in FIELDS] + [len(HEADS)])
SIZE = 1
for _radix in _RADICES:
    SIZE *= _radix


_CANONICAL = re.compile(r"\|".join([r"d(\d+)-w(\d+)-e(\d+)-k(\d+)"] * len(STAGES) + [r"h(\d+)"]))
_SETS = [frozenset(_choices(s)[f]) for s in range(len(STAGES)) for f in FIELDS] + [frozenset(HEADS)]


def parse(arch: str) -> tuple[tuple[Stage, ...], int]:
    """(stages, head) of an arch string, or InvalidArchError naming the stage and field at fault.

    Spaces and case are ignored and a stage's fields may come in any order; `format_arch`
    writes the canonical form.
    """
    match = _CANONICAL.fullmatch(arch) if isinstance(arch, str) else None
    if match:  # the fast path: a canonical string (what the sampler and the store hold)
        values = [int(v) for v in match.groups()]
        if all(v in choices for v, choices in zip(values, _SETS)):
            return tuple(tuple(values[i:i + 4]) for i in range(0, 4 * len(STAGES), 4)), values[-1]  # type: ignore
    return _parse_slowly(arch)


def _parse_slowly(arch: str) -> tuple[tuple[Stage, ...], int]:
    if not isinstance(arch, str) or not arch.strip():
        raise InvalidArchError(f"mbv2 arch must be a string like {EXAMPLE!r}")
    parts = "".join(arch.split()).lower().split("|")
    if len(parts) != len(STAGES) + 1:
        raise InvalidArchError(f"mbv2 arch needs {len(STAGES)} stages and a head joined by '|' "
                               f"(like {EXAMPLE!r}), got {len(parts)} parts in {arch!r}")
    stages = []
    for number, part in enumerate(parts[:-1], start=1):
        choices = _choices(number - 1)
        values: dict[str, int] = {}
        for item in part.split("-"):
            field, digits = item[:1], item[1:]
            if field not in choices:
                raise InvalidArchError(f"stage {number} ({part!r}): {item!r} is not a field; a stage is "
                                       f"d<depth>-w<width>-e<expansion>-k<kernel>, like 'd2-w24-e6-k3'")
            if field in values:
                raise InvalidArchError(f"stage {number} ({part!r}): field {field!r} given twice")
            if not digits.isdigit() or int(digits) not in choices[field]:
                allowed = ", ".join(map(str, choices[field]))
                raise InvalidArchError(f"stage {number} ({part!r}): {_NAMES[field]} {digits!r} is not allowed; "
                                       f"stage {number} allows {field} in {{{allowed}}}")
            values[field] = int(digits)
        missing = [f for f in FIELDS if f not in values]
        if missing:
            raise InvalidArchError(f"stage {number} ({part!r}): missing {', '.join(_NAMES[f] for f in missing)}; "
                                   f"a stage is d<depth>-w<width>-e<expansion>-k<kernel>")
        stages.append((values["d"], values["w"], values["e"], values["k"]))
    head = parts[-1]
    if not (head[:1] == "h" and head[1:].isdigit() and int(head[1:]) in HEADS):
        raise InvalidArchError(f"the head ({head!r}, after the last '|') must be h<width> with width in "
                               f"{{{', '.join(map(str, HEADS))}}}")
    return tuple(stages), int(head[1:])


_NAMES = {"d": "depth", "w": "width", "e": "expansion", "k": "kernel"}


def format_arch(stages: Sequence[Stage], head: int) -> str:
    return "|".join(f"d{d}-w{w}-e{e}-k{k}" for d, w, e, k in stages) + f"|h{head}"


def strides(in_shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """(stem stride, per-stage strides) for an input of `in_shape` (C, H, W)."""
    side = min(int(s) for s in in_shape[1:])
    stem = 1 if side <= 32 else 2
    first = 2 if side > 64 else STAGES[0][0]
    return stem, (first, *(s for s, _ in STAGES[1:]))


def _out(size: int, stride: int) -> int:
    """Output side of a conv with kernel k, padding k // 2 (k odd), stride `stride`."""
    return (size - 1) // stride + 1


def cost(arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> tuple[int, int]:
    """(parameters, multiply-accumulates of one sample's forward) of the built net, by formula.

    Counted as the `flops` proxy counts: conv and linear layers only (no BN, activations,
    pooling, residual additions or biases); a conv costs out_elements * in_channels / groups * k^2.
    """
    stages, head = parse(arch)
    c_in, height, width = int(in_shape[0]), int(in_shape[1]), int(in_shape[2])
    stem_stride, stage_strides = strides(in_shape)
    height, width = _out(height, stem_stride), _out(width, stem_stride)
    c = STEM_WIDTH
    params = 9 * c_in * c + 2 * c
    macs = height * width * c * c_in * 9
    for (depth, c_out, expansion, kernel), stride in zip(stages, stage_strides):
        # the stage's first block: c -> c_out at `stride`; then depth - 1 equal blocks c_out -> c_out at stride 1
        mid = c * expansion
        if expansion != 1:  # 1x1 expansion conv + BN at the input resolution
            params += c * mid + 2 * mid
            macs += height * width * mid * c
        height, width = _out(height, stride), _out(width, stride)
        params += mid * kernel * kernel + 2 * mid + mid * c_out + 2 * c_out  # depthwise, projection, their BNs
        macs += height * width * mid * (kernel * kernel + c_out)
        mid = c_out * expansion
        block_params = mid * kernel * kernel + 2 * mid + mid * c_out + 2 * c_out
        block_macs = height * width * mid * (kernel * kernel + c_out)
        if expansion != 1:
            block_params += c_out * mid + 2 * mid
            block_macs += height * width * mid * c_out
        params += (depth - 1) * block_params
        macs += (depth - 1) * block_macs
        c = c_out
    params += c * head + 2 * head + head * num_classes + num_classes  # head conv + BN, classifier
    macs += height * width * head * c + head * num_classes
    return params, macs


def params(arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> int:
    return cost(arch, num_classes, in_shape)[0]


def flops(arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> int:
    return cost(arch, num_classes, in_shape)[1]


class MobileNetV2Space(SearchSpace):
    name = "mbv2"
    description = ("MobileNetV2-style macro space: 5 inverted-residual stages choosing depth, width, expansion, "
                   "kernel 3/5/7, and the head's width; too big to enumerate")
    example = EXAMPLE
    enumerable = False

    @property
    def size(self) -> int:
        return SIZE

    def arch(self, index: int) -> str:
        self._check_index(index)
        digits = []
        for radix in reversed(_RADICES):
            index, digit = divmod(index, radix)
            digits.append(digit)
        digits.reverse()
        stages = []
        for s in range(len(STAGES)):
            choices = _choices(s)
            stages.append(_stage(choices[f][digits[4 * s + i]] for i, f in enumerate(FIELDS)))
        return format_arch(stages, HEADS[digits[-1]])

    def index(self, arch: str) -> int:
        stages, head = parse(arch)
        index = 0
        for s, stage in enumerate(stages):
            choices = _choices(s)
            for f, value in zip(FIELDS, stage):
                index = index * len(choices[f]) + choices[f].index(value)
        return index * len(HEADS) + HEADS.index(head)

    def validate(self, arch: str) -> str:
        return format_arch(*parse(arch))

    def sample(self, rng: random.Random | int, n: int) -> list[str]:
        """`n` distinct archs, uniform over the space (each field drawn on its own), deterministic for an int seed."""
        if not 0 <= n <= self.size:
            raise ValueError(f"cannot sample {n} archs from {self.name}, which has {self.size}")
        rng = random.Random(rng) if isinstance(rng, int) else rng
        seen: dict[str, None] = {}
        while len(seen) < n:
            seen.setdefault(self.draw(rng))
        return list(seen)

    def draw(self, rng: random.Random) -> str:
        """One arch drawn uniformly."""
        stages = [_stage(rng.choice(_choices(s)[f]) for f in FIELDS) for s in range(len(STAGES))]
        return format_arch(stages, rng.choice(HEADS))

    def gene_sizes(self) -> tuple[int, ...]:
        return _RADICES  # per stage depth, width, expansion, kernel; then the head

    def genes(self, arch: str) -> tuple[int, ...]:
        stages, head = parse(arch)
        out = [_choices(s)[f].index(v) for s, stage in enumerate(stages) for f, v in zip(FIELDS, stage)]
        return (*out, HEADS.index(head))

    def from_genes(self, genes: Sequence[int]) -> str:
        stages = [_stage(_choices(s)[f][genes[4 * s + i]] for i, f in enumerate(FIELDS)) for s in range(len(STAGES))]
        return format_arch(stages, HEADS[genes[-1]])

    def cheapest_arch(self) -> str:
        """Index 0: every field at its smallest choice; params and MACs only grow with each field."""
        return self.arch(0)

    def cost(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> tuple[int, int]:
        return cost(arch, num_classes, in_shape)

    def build(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)):
        from .mbv2_net import MobileNetV2Net

        stages, head = parse(arch)
        stem_stride, stage_strides = strides(in_shape)
        return MobileNetV2Net(stages, head, num_classes, int(in_shape[0]), STEM_WIDTH, stem_stride, stage_strides)
