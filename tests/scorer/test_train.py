"""The top-k training loop on a tiny separable problem (fast, CPU)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from scorer.train import (
    EpochMetrics,
    TrainConfig,
    TrainResult,
    augment_batch,
    cosine_lr,
    evaluate,
    train_network,
)


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 3×8×8 images: bright top half vs bright bottom half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.5 * torch.randn(n, 3, 8, 8, generator=g)
    x[y == 0, :, :4, :] += 1.0
    x[y == 1, :, 4:, :] += 1.0
    return x, y.long()


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((2, 1)),
        nn.Flatten(),
        nn.Linear(16, 2),
    )


TRAIN, VALID, TEST = make_split(256, 1), make_split(128, 2), make_split(128, 3)
FAST = TrainConfig(epochs=4, batch_size=32, lr=0.05, seed=0)


def test_training_beats_chance():
    net = tiny_net()
    _, before = evaluate(net, VALID, 64, torch.device("cpu"))
    assert before < 70.0  # this init is near chance
    result = train_network(net, TRAIN, VALID, TEST, FAST)
    assert isinstance(result, TrainResult)
    assert len(result.epochs) == 4
    assert result.valid_acc is not None and result.valid_acc > 90.0
    assert result.test_acc is not None and result.test_acc > 90.0
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert not result.stopped_early
    assert result.seconds > 0
    assert all(0.0 <= m.train_acc <= 100.0 and 0.0 <= m.valid_acc <= 100.0 for m in result.epochs)


def test_defaults_are_nas_bench_201_recipe():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay) == (
        12, 256, 0.1, 0.9, True, 5e-4,
    )
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)


def test_cosine_schedule_goes_from_lr_to_zero():
    total = 8 * 12
    assert cosine_lr(0.1, 0, total) == pytest.approx(0.1)
    assert cosine_lr(0.1, total // 2, total) == pytest.approx(0.05)
    assert cosine_lr(0.1, total - 1, total) < 1e-3
    lrs = [cosine_lr(0.1, s, total) for s in range(total)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_lr_reported_per_epoch_anneals_to_zero():
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.1, seed=0)  # 4 steps per epoch, 12 in all
    result = train_network(tiny_net(), TRAIN, VALID, None, cfg)
    lrs = [m.lr for m in result.epochs]
    assert lrs == pytest.approx([cosine_lr(0.1, s, 12) for s in (3, 7, 11)])
    assert lrs[-1] < 0.1 * (math.pi / 12) ** 2  # ~0 at the last iteration
    assert result.test_acc is None


def test_optimizer_starts_at_base_lr(monkeypatch: pytest.MonkeyPatch):
    seen: list[float] = []
    real_step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        assert self.param_groups[0]["nesterov"] and self.param_groups[0]["momentum"] == 0.9
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    train_network(tiny_net(), TRAIN, VALID, None, TrainConfig(epochs=2, batch_size=64))
    assert len(seen) == 8
    assert seen[0] == pytest.approx(0.1)
    assert seen[-1] == pytest.approx(cosine_lr(0.1, 7, 8))
    assert seen[-1] < 0.005


def test_on_epoch_sees_every_epoch_in_order():
    seen: list[EpochMetrics] = []
    result = train_network(tiny_net(), TRAIN, VALID, TEST, FAST, on_epoch=seen.append)
    assert [m.epoch for m in seen] == [1, 2, 3, 4]
    assert seen == result.epochs


def test_returning_false_stops_after_that_epoch():
    calls: list[int] = []

    def stop_after_two(m: EpochMetrics) -> bool:
        calls.append(m.epoch)
        return m.epoch < 2

    result = train_network(tiny_net(), TRAIN, VALID, TEST, FAST, on_epoch=stop_after_two)
    assert calls == [1, 2]
    assert [m.epoch for m in result.epochs] == [1, 2]
    assert result.stopped_early
    assert result.valid_acc == result.epochs[-1].valid_acc
    assert result.test_acc is None


def test_same_seed_same_metrics():
    def run(seed: int) -> list[tuple]:
        cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=seed)
        res = train_network(tiny_net(7), TRAIN, VALID, TEST, cfg, augment=True)
        return [(m.train_loss, m.train_acc, m.valid_loss, m.valid_acc, m.lr) for m in res.epochs] + [(res.test_acc,)]

    assert run(3) == run(3)
    assert run(3) != run(4)  # the seed drives shuffling and augmentation


def test_augmentation_keeps_shapes_and_content():
    g = torch.Generator().manual_seed(0)
    for size in (8, 16, 32):
        x = torch.randn(16, 3, size, size)
        out = augment_batch(x, g)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert not torch.equal(out, x)  # something was cropped or flipped
    # a crop never invents values: every output pixel is an input pixel or padding zero
    x = torch.arange(1, 1 + 2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    out = augment_batch(x, g)
    for i in range(2):
        allowed = set(x[i].flatten().tolist()) | {0.0}
        assert set(out[i].flatten().tolist()) <= allowed


def test_augmented_training_still_learns():
    result = train_network(tiny_net(), TRAIN, VALID, None, FAST, augment=True)
    assert result.valid_acc > 80.0


def test_to_dict_is_json_friendly():
    import json

    result = train_network(tiny_net(), TRAIN, VALID, TEST, TrainConfig(epochs=1, batch_size=64))
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["epochs"][0]["epoch"] == 1
    assert set(data["epochs"][0]) == {
        "epoch", "train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "seconds",
    }


def test_rejects_malformed_data():
    x, y = TRAIN
    with pytest.raises(ValueError):
        train_network(tiny_net(), (x[:, 0], y), VALID, None, FAST)
    with pytest.raises(ValueError):
        train_network(tiny_net(), (x, y[:-1]), VALID, None, FAST)


class ItemDataset(torch.utils.data.Dataset):
    """A split served item by item, as the on-disk datasets serve it: (C×H×W tensor, int label)."""

    def __init__(self, split: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.images, self.labels = split

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].clone(), int(self.labels[i])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_dataset_and_tensors_give_bitwise_same_weights(num_workers: int):
    cfg = TrainConfig(epochs=2 if num_workers else 3, batch_size=48, lr=0.05, seed=2)  # 256/48: a short last batch
    runs = []
    for wrap in (lambda s: s, ItemDataset):
        torch.manual_seed(0)
        net = tiny_net(5)
        result = train_network(net, wrap(TRAIN), wrap(VALID), wrap(TEST), cfg, augment=True, num_workers=num_workers)
        runs.append((net.state_dict(), result, torch.get_rng_state()))
    (a, ra, rng_a), (b, rb, rng_b) = runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda r: [{k: v for k, v in m.to_dict().items() if k != "seconds"} for m in r.epochs]  # noqa: E731
    assert strip(ra) == strip(rb) and ra.test_acc == rb.test_acc
    assert torch.equal(rng_a, rng_b)  # the DataLoader did not draw from the global RNG


def test_evaluate_accepts_a_dataset():
    net = tiny_net(3)
    cpu = torch.device("cpu")
    assert evaluate(net, ItemDataset(VALID), 50, cpu) == evaluate(net, VALID, 50, cpu)


def test_rejects_malformed_datasets():
    x, y = TRAIN
    with pytest.raises(ValueError, match="empty"):
        train_network(tiny_net(), ItemDataset((x[:0], y[:0])), VALID, None, FAST)
    with pytest.raises(ValueError, match="C×H×W"):
        train_network(tiny_net(), ItemDataset((x[:, 0], y)), VALID, None, FAST)
