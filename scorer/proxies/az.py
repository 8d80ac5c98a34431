"""AZ-NAS's three data proxies: expressivity, progressivity, trainability.

Lee & Ham, AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture
Search, CVPR 2024. All three read the outputs of the network's blocks (stem,
then each cell: `feature_blocks`) from the shared train-mode forward of the
probe batch, so together they cost about one extra backward pass:

- expressivity: for each block output, the entropy of the normalised
  eigenvalue spectrum of its channel covariance (pixels x samples as
  observations); summed over blocks. Features spread over many directions
  score high; collapsed ones low.
- progressivity: the smallest step in that entropy from one block to the
  next; a network should grow more expressive with depth.
- trainability: for each pair of consecutive blocks, a Rademacher vector v
  is pulled back through the later block, g = (d out/d in)^T v, and the
  largest singular value s of the channel cross-covariance of g and v
  estimates the block's Jacobian norm; the score -s - 1/s + 2 is 0 at s = 1
  (gradients neither vanish nor explode) and lower either side. Averaged
  over block pairs. A block that passes its input through unchanged, or
  ignores it, scores -inf, as in the authors' definition.

The paper's fourth component, complexity, is our `flops`.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .probe import probe_for

RADEMACHER_SEED = 0  # a fixed draw: the score must not depend on the caller's RNG


def _rows(feature: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, C): one row per sample and pixel (a view for channels-last tensors)."""
    return feature.detach().permute(0, 2, 3, 1).reshape(-1, feature.shape[1])


def spectral_entropy(feature: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance (0 for constant features)."""
    rows = _rows(feature)
    rows = rows - rows.mean(0, keepdim=True)
    covariance = (rows.T @ rows).double() / len(rows)  # C x C: the small part runs in float64
    eigenvalues = torch.linalg.eigvalsh(covariance).clamp(min=0)
    total = eigenvalues.sum()
    if total <= 0:
        return 0.0
    p = eigenvalues[eigenvalues > 0] / total
    return float(-(p * p.log()).sum())


def block_entropies(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[float]:
    outputs = probe_for(net, inputs, targets).block_outputs()
    return [spectral_entropy(f) for f in outputs]


def jacobian_norm_score(pulled_back: torch.Tensor, v: torch.Tensor) -> float:
    """-s - 1/s + 2 for s the top singular value of the channel cross-covariance of g and v."""
    if pulled_back.shape[2:] != v.shape[2:]:  # a strided block: fold the extra pixels into channels
        pulled_back = F.pixel_unshuffle(pulled_back, pulled_back.shape[2] // v.shape[2])
    g, u = _rows(pulled_back), _rows(v)
    s = float(torch.linalg.svdvals((g.T @ u).double() / len(u)).max())
    return -s - 1.0 / (s + 1e-6) + 2.0


def _rademacher(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A fixed +-1 vector of `size` entries; blocks of equal size share one (drawing is costly)."""
    generator = torch.Generator(device=device).manual_seed(RADEMACHER_SEED)
    return torch.randint(0, 2, (size,), generator=generator, device=device).to(dtype).mul_(2).sub_(1)


def expressivity(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(sum(block_entropies(net, inputs, targets)))


def progressivity(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    entropies = block_entropies(net, inputs, targets)
    if len(entropies) < 2:
        raise ValueError("progressivity needs a network of at least two blocks")
    return min(b - a for a, b in zip(entropies, entropies[1:]))


def trainability(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    outputs = probe_for(net, inputs, targets).block_outputs()
    if len(outputs) < 2:
        raise ValueError("trainability needs a network of at least two blocks")
    scores, draws = [], {}
    for f_in, f_out in zip(outputs, outputs[1:]):
        if f_out.numel() not in draws:
            draws[f_out.numel()] = _rademacher(f_out.numel(), f_out.dtype, f_out.device)
        v = draws[f_out.numel()].view(f_out.shape)
        (g,) = torch.autograd.grad(f_out, f_in, grad_outputs=v, retain_graph=True, allow_unused=True)
        if g is None or (g.shape == v.shape and torch.equal(g, v)):  # ignores its input, or is the identity
            return -math.inf
        scores.append(jacobian_norm_score(g, v))
    return sum(scores) / len(scores)
