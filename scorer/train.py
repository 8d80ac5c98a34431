"""The top-k stage's real training loop, in plain PyTorch.

Training-free scores only rank architectures; the few best are then trained
for real so the user sees actual accuracies. The default recipe is
NAS-Bench-201's (SGD with Nesterov momentum 0.9, lr 0.1 annealed to 0 with a
per-iteration cosine, weight decay 5e-4, batch 256, 12 epochs), so numbers are
comparable with the benchmark's "12 epochs" (hp="12") entries.

Data arrive as whole tensors (the dataset plug-ins load splits into memory)
or as a map-style Dataset streamed from disk (read through a DataLoader whose
batches are our own index lists). Shuffling and augmentation happen here, in
the main process, from one seeded `torch.Generator`, so a run is reproducible
given the seed and the net's initial weights, and both kinds of data give the
same weights.

A run can hand out its whole state after every epoch (`checkpoint`) and be
resumed from it (`resume`): the resumed run ends bitwise where an
uninterrupted one would, so a killed worker loses at most one epoch.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:  # typing has TypeIs from 3.13 on; annotations are postponed, so this never runs
    from typing_extensions import TypeIs

logger = logging.getLogger(__name__)

Split = tuple[torch.Tensor, torch.Tensor]  # (inputs N×C×H×W float, targets N int64)
Data = Union[Split, Dataset]  # or a map-style Dataset of (C×H×W float tensor, int label)
EpochCallback = Callable[["EpochMetrics"], Optional[bool]]
CheckpointCallback = Callable[[dict], Optional[bool]]
CHECKPOINT_FORMAT = 1


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


def _is_split(data: Data) -> TypeIs[Split]:
    """Whole tensors (inputs, targets); otherwise `data` is a Dataset."""
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)


def _dataset_len(dataset: Dataset) -> int:
    """A map-style Dataset's length: ours define __len__, which the DataLoader's samplers need."""
    return len(dataset)  # type: ignore[arg-type]  # the stub has no __len__: torch makes it optional


def _size(data: Data) -> int:
    return len(data[1]) if _is_split(data) else _dataset_len(data)


def _batches(data: Data, batches: list[torch.Tensor], num_workers: int, seed: int) -> Iterator[Split]:
    """(inputs, targets) for each index tensor in `batches`, in that order.

    The DataLoader gets its own seeded generator (it only seeds its workers) so
    it never draws from the global RNG: tensors and Datasets leave it alike.
    """
    if _is_split(data):
        inputs, targets = data
        for idx in batches:
            yield inputs[idx], targets[idx]
        return
    loader = DataLoader(data, batch_sampler=[idx.tolist() for idx in batches], num_workers=num_workers,
                        persistent_workers=False, generator=torch.Generator().manual_seed(seed))
    for x, y in loader:
        yield x, torch.as_tensor(y, dtype=torch.int64)


@torch.no_grad()
def evaluate(net: nn.Module, data: Data, batch_size: int, device: torch.device,
             num_workers: int = 0) -> tuple[float, float]:
    """(mean loss, accuracy in percent) of `net` on `data`, in eval mode."""
    net.eval()
    n = _size(data)
    total_loss, correct = 0.0, 0
    if _is_split(data):
        inputs, targets = data
        batches: Any = ((inputs[s : s + batch_size], targets[s : s + batch_size]) for s in range(0, n, batch_size))
    else:
        batches = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                             persistent_workers=False, generator=torch.Generator().manual_seed(0))
    for x, y in batches:
        y = torch.as_tensor(y, dtype=torch.int64)
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        logits = net(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = max(n, 1)
    return total_loss / n, 100.0 * correct / n


def _check_split(name: str, data: Data) -> None:
    if not _is_split(data):
        if _dataset_len(data) == 0:
            raise ValueError(f"{name} split is empty")
        x, _ = data[0]
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            raise ValueError(f"{name} items must be (C×H×W tensor, label), got {type(x).__name__} "
                             f"of shape {tuple(getattr(x, 'shape', ()))}")
        return
    inputs, targets = data
    if inputs.dim() != 4:
        raise ValueError(f"{name} inputs must be N×C×H×W, got shape {tuple(inputs.shape)}")
    if targets.dim() != 1 or len(targets) != len(inputs):
        raise ValueError(f"{name} targets must be a vector of {len(inputs)} labels, got {tuple(targets.shape)}")
    if len(targets) == 0:
        raise ValueError(f"{name} split is empty")


def _cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor on the CPU: the state outlives this epoch and any device."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def check_resume(state: dict, config: TrainConfig, steps_per_epoch: int) -> None:
    """Refuse a state this run cannot continue bitwise; the message says what differs."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"cannot resume: unknown checkpoint format {got!r} (this knas writes {CHECKPOINT_FORMAT})")
    ours = {k: v for k, v in asdict(config).items() if k != "device"}
    theirs = {k: v for k, v in dict(state.get("config") or {}).items() if k != "device"}
    if ours != theirs:
        diff = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k, "<missing>") != theirs.get(k, "<missing>"))
        details = ", ".join(f"{k}: checkpoint {theirs.get(k, '<missing>')!r} vs run {ours.get(k, '<missing>')!r}"
                            for k in diff)
        raise ValueError(f"cannot resume: the checkpoint was taken with a different training config ({details})")
    epoch = state.get("epoch")
    if not isinstance(epoch, int) or not 0 <= epoch <= config.epochs or len(state.get("epochs", ())) != epoch:
        raise ValueError(f"cannot resume: checkpoint epoch {epoch!r} is not in [0, {config.epochs}] "
                         f"or does not match its {len(state.get('epochs', ()))} recorded epochs")
    if state.get("step") != epoch * steps_per_epoch:
        raise ValueError(f"cannot resume: checkpoint is at step {state.get('step')!r}, but {epoch} epochs of this "
                         f"training set take {epoch * steps_per_epoch} steps (was the training set changed?)")


def train_network(
    net: nn.Module,
    train_data: Data,
    valid_data: Data,
    test_data: Optional[Data],
    config: TrainConfig,
    on_epoch: Optional[EpochCallback] = None,
    augment: bool = False,
    *,
    num_workers: int = 0,
    checkpoint: Optional[CheckpointCallback] = None,
    resume: Optional[dict] = None,
) -> TrainResult:
    """Train `net` in place and report per-epoch and final metrics.

    `on_epoch` is called after every epoch; returning False stops the run there
    (this is how cancellation reaches training), the result then has
    `stopped_early=True` and no test evaluation is spent on it.

    `checkpoint` gets the run's whole state (CPU copies) after each epoch's
    validation and before `on_epoch`; returning False stops the run the same
    way, without calling `on_epoch` for that epoch. `resume` takes such a state
    and continues after its epoch (the config may differ only in `device`).
    `num_workers` is the DataLoader's, for Dataset inputs.
    """
    _check_split("train", train_data)
    _check_split("valid", valid_data)
    if test_data is not None:
        _check_split("test", test_data)

    device = torch.device(config.device)
    n = _size(train_data)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if resume is not None:
        check_resume(resume, config, steps_per_epoch)

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
    result = TrainResult()
    step, first_epoch = 0, 1
    if resume is not None:
        net.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        step, first_epoch = resume["step"], resume["epoch"] + 1
        result.epochs = [EpochMetrics(**m) for m in resume["epochs"]]
        result.valid_acc = result.epochs[-1].valid_acc if result.epochs else None

    run_start = time.perf_counter()
    lr = config.lr

    for epoch in range(first_epoch, config.epochs + 1):
        epoch_start = time.perf_counter()
        net.train()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct = 0.0, 0
        for x, y in _batches(train_data, list(order.split(config.batch_size)), num_workers, config.seed + epoch):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
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

        valid_loss, valid_acc = evaluate(net, valid_data, config.batch_size, device, num_workers)
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
        if checkpoint is not None:
            state = {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch,
                "step": step,
                "model": _cpu_copy(net.state_dict()),
                "optimizer": _cpu_copy(optimizer.state_dict()),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "epochs": [m.to_dict() for m in result.epochs],
                "config": asdict(config),
            }
            keep_going = checkpoint(state)
            if keep_going is not None and not keep_going:
                result.stopped_early = True
                break
        if on_epoch is not None:
            keep_going = on_epoch(metrics)
            if keep_going is not None and not keep_going:
                result.stopped_early = True
                break

    if test_data is not None and not result.stopped_early:
        _, result.test_acc = evaluate(net, test_data, config.batch_size, device, num_workers)
    result.seconds = time.perf_counter() - run_start
    return result
