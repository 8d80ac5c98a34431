"""The top-k stage's real training loop, in plain PyTorch.

Training-free scores only rank architectures; the few best are then trained
for real so the user sees actual accuracies. The default recipe is
NAS-Bench-201's (SGD with Nesterov momentum 0.9, lr 0.1 annealed to 0 with a
per-iteration cosine, weight decay 5e-4, batch 256, 12 epochs), so numbers are
comparable with the benchmark's "12 epochs" (hp="12") entries.

Data arrive as whole tensors (the dataset plug-ins load splits into memory),
so batching, shuffling and augmentation happen here on tensors: no DataLoader,
no torchvision. Shuffling and augmentation draw from one seeded
`torch.Generator`, so a run is reproducible given the seed and the net's
initial weights.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

Split = tuple[torch.Tensor, torch.Tensor]  # (inputs N×C×H×W float, targets N int64)
EpochCallback = Callable[["EpochMetrics"], Optional[bool]]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class EpochMetrics:
    """One epoch; accuracies in percent; `lr` is the rate used by the epoch's last step."""

    epoch: int  # 1-based
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    lr: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """The whole run; `valid_acc` is the last epoch's, `test_acc` is None without test data or when stopped early."""

    epochs: list[EpochMetrics] = field(default_factory=list)
    valid_acc: Optional[float] = None
    test_acc: Optional[float] = None
    seconds: float = 0.0
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return {
            "epochs": [m.to_dict() for m in self.epochs],
            "valid_acc": self.valid_acc,
            "test_acc": self.test_acc,
            "seconds": self.seconds,
            "stopped_early": self.stopped_early,
        }


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """Learning rate at 0-based `step` of `total_steps`: base_lr at step 0, near 0 at the last step."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total_steps))


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding (H//8 px: 4 for 32 px images) and a random horizontal flip.

    Random numbers come from `generator` (a CPU generator) so runs are reproducible
    whatever the device of `x`.
    """
    n, _, h, w = x.shape
    pad = h // 8
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]  # N×H
        cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]  # N×W
        batch = torch.arange(n, device=x.device)[:, None, None]
        # advanced indices around a slice: result is N×H×W×C
        x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


@torch.no_grad()
def evaluate(net: nn.Module, data: Split, batch_size: int, device: torch.device) -> tuple[float, float]:
    """(mean loss, accuracy in percent) of `net` on `data`, in eval mode."""
    net.eval()
    inputs, targets = data
    total_loss, correct = 0.0, 0
    for start in range(0, len(targets), batch_size):
        x = inputs[start : start + batch_size].to(device, non_blocking=True)
        y = targets[start : start + batch_size].to(device, non_blocking=True)
        logits = net(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = max(len(targets), 1)
    return total_loss / n, 100.0 * correct / n


def _check_split(name: str, data: Split) -> None:
    inputs, targets = data
    if inputs.dim() != 4:
        raise ValueError(f"{name} inputs must be N×C×H×W, got shape {tuple(inputs.shape)}")
    if targets.dim() != 1 or len(targets) != len(inputs):
        raise ValueError(f"{name} targets must be a vector of {len(inputs)} labels, got {tuple(targets.shape)}")
    if len(targets) == 0:
        raise ValueError(f"{name} split is empty")


def train_network(
    net: nn.Module,
    train_data: Split,
    valid_data: Split,
    test_data: Optional[Split],
    config: TrainConfig,
    on_epoch: Optional[EpochCallback] = None,
    augment: bool = False,
) -> TrainResult:
    """Train `net` in place and report per-epoch and final metrics.

    `on_epoch` is called after every epoch; returning False stops the run there
    (this is how cancellation reaches training), the result then has
    `stopped_early=True` and no test evaluation is spent on it.
    """
    _check_split("train", train_data)
    _check_split("valid", valid_data)
    if test_data is not None:
        _check_split("test", test_data)

    device = torch.device(config.device)
    net.to(device)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )
    generator = torch.Generator().manual_seed(config.seed)

    inputs, targets = train_data
    n = len(targets)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    result = TrainResult()
    run_start = time.perf_counter()
    step = 0
    lr = config.lr

    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        net.train()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            x = inputs[idx].to(device, non_blocking=True)
            y = targets[idx].to(device, non_blocking=True)
            if augment:
                x = augment_batch(x, generator)
            lr = cosine_lr(config.lr, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            logits = net(x)
            loss = criterion(logits, y)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(y)
            correct += (logits.detach().argmax(1) == y).sum().item()

        valid_loss, valid_acc = evaluate(net, valid_data, config.batch_size, device)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=loss_sum / n,
            train_acc=100.0 * correct / n,
            valid_loss=valid_loss,
            valid_acc=valid_acc,
            lr=lr,
            seconds=time.perf_counter() - epoch_start,
        )
        result.epochs.append(metrics)
        result.valid_acc = valid_acc
        logger.debug("epoch %d/%d: %s", epoch, config.epochs, metrics)
        if on_epoch is not None:
            keep_going = on_epoch(metrics)
            if keep_going is not None and not keep_going:
                result.stopped_early = True
                break

    if test_data is not None and not result.stopped_early:
        _, result.test_acc = evaluate(net, test_data, config.batch_size, device)
    result.seconds = time.perf_counter() - run_start
    return result
