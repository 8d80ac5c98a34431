"""The proxy registry: every built-in proxy declared once, here. Torch-free.

Each declaration is the proxy's metadata (ProxyInfo) and a lazy "module:function" reference to
its maths, imported on the first `PROXIES.get`; the proxy modules hold only the maths. Listing,
aliases, options and versions (what the API, spec validation and the score cache need) never
import torch. A site plug-in (KNAS_PLUGINS) registers the same way, once:
`PROXIES.add(ProxyInfo(...), fn_or_reference, *aliases)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..registry import Registry

ProxyFn = Callable[..., float]  # (net, inputs, targets) -> float, higher = predicted better


@dataclass(frozen=True)
class ProxyInfo:
    """Everything known about a proxy without importing its maths."""

    name: str
    description: str
    needs_labels: bool = True
    paper: str = ""
    components: tuple[str, ...] = ()  # set for rank-aggregating proxies (scored per component)
    records: tuple[str, ...] = ()  # what the shared forward must record for it (probe.RECORDS)
    shares_forward: bool = False  # starts from probe's shared train-mode forward of the batch (implied by records)
    version: int = 1  # bump when the implementation changes what it computes: cached scores then miss
    options: frozenset[str] = frozenset()  # keys of a job's `proxy.options` it reads (others are refused)

    def __post_init__(self) -> None:
        if self.records and not self.shares_forward:
            object.__setattr__(self, "shares_forward", True)


PROXIES: Registry[ProxyInfo, ProxyFn] = Registry("proxy")

_KNAS = "Xu et al., KNAS: Green Neural Architecture Search, ICML 2021"
_ZERO_COST = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021"
_NASWOT = "Mellor et al., Neural Architecture Search without Training, ICML 2021"
_AZ_NAS = "Lee & Ham, AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search, CVPR 2024"
_RELU_KERNEL, _BLOCK_OUTPUTS = "relu_kernel", "block_outputs"  # scorer/proxies/probe.py's records

PROXIES.add(ProxyInfo(
    "mgm", "mean of the Gram matrix of per-sample gradients (KNAS)", paper=_KNAS,
), "scorer.proxies.mgm:mgm", "knas")
PROXIES.add(ProxyInfo(
    "mgm-offdiag", "Gram-matrix mean over pairs i != j only (unbiased KNAS)", paper=_KNAS,
), "scorer.proxies.mgm:mgm_offdiag")
PROXIES.add(ProxyInfo(
    "grad_norm", "sum of the L2 norms of conv/linear weight gradients", paper=_ZERO_COST, shares_forward=True,
), "scorer.proxies.grad_norm:grad_norm", "grad-norm")
PROXIES.add(ProxyInfo(
    "snip", "sum of |w * dL/dw| over conv/linear weights (SNIP saliency)",
    paper="Lee et al., SNIP: Single-shot Network Pruning based on Connection Sensitivity, ICLR 2019",
    shares_forward=True,
), "scorer.proxies.snip:snip")
PROXIES.add(ProxyInfo(
    "synflow", "synaptic flow: sum |w * dR/dw| of the |weights|, BN-free net on an all-ones input",
    needs_labels=False,
    paper="Tanaka et al., Pruning neural networks without any data by iteratively conserving synaptic flow, "
          "NeurIPS 2020",
), "scorer.proxies.synflow:synflow")
PROXIES.add(ProxyInfo(
    "naswot", "log|det| of the kernel of ReLU activation codes (NASWOT)", needs_labels=False, paper=_NASWOT,
    records=(_RELU_KERNEL,),
), "scorer.proxies.naswot:naswot", "nwot")
PROXIES.add(ProxyInfo(
    "params", "number of trainable parameters", needs_labels=False,
), "scorer.proxies.params:params", "param_count")
PROXIES.add(ProxyInfo(
    "flops", "multiply-accumulates of one forward pass of one sample", needs_labels=False,
), "scorer.proxies.flops:flops", "macs")
PROXIES.add(ProxyInfo(
    "zico", "sum over layers of log(sum mean|g| / std(g)) across mini-batches (ZiCo)",
    paper="Li et al., ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients, ICLR 2023",
), "scorer.proxies.zico:zico")
PROXIES.add(ProxyInfo(
    "jacov", "eigen-spectrum of the correlation of input Jacobians (jacov)", needs_labels=False,
    paper="Mellor et al., Neural Architecture Search without Training, arXiv:2006.04647v1", shares_forward=True,
), "scorer.proxies.jacov:jacov", "jacob_cov")
PROXIES.add(ProxyInfo(
    "expressivity", "sum over blocks of the spectral entropy of the feature covariance (AZ-NAS)",
    needs_labels=False, paper=_AZ_NAS, records=(_BLOCK_OUTPUTS,),
), "scorer.proxies.az:expressivity")
PROXIES.add(ProxyInfo(
    "progressivity", "smallest block-to-block gain in feature spectral entropy (AZ-NAS)",
    needs_labels=False, paper=_AZ_NAS, records=(_BLOCK_OUTPUTS,),
), "scorer.proxies.az:progressivity")
PROXIES.add(ProxyInfo(
    "trainability", "closeness to 1 of each block's Jacobian spectral norm, averaged (AZ-NAS)",
    needs_labels=False, paper=_AZ_NAS, records=(_BLOCK_OUTPUTS,),
), "scorer.proxies.az:trainability")
# AZ-NAS's own four (complexity = flops) plus the gradient-kernel family this product is built on:
# chosen a priori, before measuring them on NAS-Bench-201 (scorer/proxies/ensemble.py).
_ENSEMBLE = ("mgm", "zico", "expressivity", "progressivity", "trainability", "flops")
PROXIES.add(ProxyInfo(
    "ensemble", f"rank aggregation (sum of log-ranks) of {', '.join(_ENSEMBLE)}", paper=_AZ_NAS,
    components=_ENSEMBLE,
), "scorer.proxies.ensemble:ensemble")
