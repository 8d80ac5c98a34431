"""Checkpoints: a run resumed from disk ends bitwise where an uninterrupted run ends."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from scorer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scorer.data import load_split
from scorer.scoring import build_candidate
from scorer.train import TrainConfig, train_network

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
CONFIG = TrainConfig(epochs=4, batch_size=32, lr=0.05, seed=5)


def _subset(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_split("digits", split)
    return x[:n].clone(), y[:n].clone()


TRAIN, VALID, TEST = _subset("train", 96), _subset("valid", 32), _subset("test", 32)


def net(seed: int = 1) -> torch.nn.Module:
    return build_candidate("nats-tss", ARCH, seed, 10, (1, 16, 16))


def curve(result) -> list[dict]:
    return [{k: v for k, v in m.to_dict().items() if k != "seconds"} for m in result.epochs]


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def uninterrupted():
    """4 epochs in one go, keeping every epoch's state in memory."""
    states: list[dict] = []
    model = net()
    result = train_network(model, TRAIN, VALID, TEST, CONFIG, augment=True, checkpoint=states.append)
    return model, result, states


def test_resume_from_disk_is_bitwise_identical(uninterrupted, tmp_path: Path):
    full_net, full, _ = uninterrupted
    path = tmp_path / "job" / "trainings" / "7" / "checkpoint.pt"

    def save_after_two(state: dict) -> bool:
        save_checkpoint(state, path)
        return state["epoch"] < 2  # the worker "dies" after epoch 2

    first = train_network(net(), TRAIN, VALID, TEST, CONFIG, augment=True, checkpoint=save_after_two)
    assert first.stopped_early and [m.epoch for m in first.epochs] == [1, 2]

    torch.manual_seed(12345)  # the new process's RNG is not the old one's
    fresh = net(seed=99)  # different initial weights, thrown away by the resume
    resumed = train_network(fresh, TRAIN, VALID, TEST, CONFIG, augment=True, resume=load_checkpoint(path))
    assert_same_weights(fresh, full_net)
    assert curve(resumed) == curve(full)
    assert resumed.valid_acc == full.valid_acc and resumed.test_acc == full.test_acc
    assert not resumed.stopped_early


def test_in_memory_states_are_snapshots(uninterrupted):
    """The state handed out after epoch 2 does not change while training goes on."""
    full_net, full, states = uninterrupted
    assert [s["epoch"] for s in states] == [1, 2, 3, 4]
    assert states[1]["step"] == 2 * 3
    fresh = net(seed=3)
    resumed = train_network(fresh, TRAIN, VALID, TEST, CONFIG, augment=True, resume=states[1])
    assert_same_weights(fresh, full_net)
    assert curve(resumed) == curve(full)


def test_resume_after_last_epoch_only_tests(uninterrupted):
    full_net, full, states = uninterrupted
    fresh = net(seed=4)
    result = train_network(fresh, TRAIN, VALID, TEST, CONFIG, augment=True, resume=states[-1])
    assert_same_weights(fresh, full_net)
    assert curve(result) == curve(full)
    assert result.valid_acc == full.valid_acc and result.test_acc == full.test_acc


def test_state_holds_only_cpu_tensors_and_plain_values(uninterrupted, tmp_path: Path):
    _, full, states = uninterrupted
    state = states[0]
    assert state["format"] == 1 and state["config"]["epochs"] == 4
    assert state["epochs"] == [full.epochs[0].to_dict()]
    save_checkpoint(state, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)  # would raise on any other type
    assert loaded.keys() == state.keys()
    assert all(t.device.type == "cpu" for t in loaded["model"].values())
    assert torch.equal(loaded["generator"], state["generator"])


def test_checkpoint_comes_before_on_epoch_and_can_stop():
    calls: list[str] = []

    def checkpoint(state: dict) -> bool:
        calls.append(f"checkpoint {state['epoch']}")
        return state["epoch"] < 2

    result = train_network(net(), TRAIN, VALID, TEST, replace(CONFIG, epochs=3), checkpoint=checkpoint,
                           on_epoch=lambda m: calls.append(f"on_epoch {m.epoch}"))
    assert calls == ["checkpoint 1", "on_epoch 1", "checkpoint 2"]
    assert result.stopped_early and result.test_acc is None and len(result.epochs) == 2


def test_refuses_a_state_it_cannot_continue(uninterrupted):
    _, _, states = uninterrupted
    with pytest.raises(ValueError, match="lr: checkpoint 0.05 vs run 0.1"):
        train_network(net(), TRAIN, VALID, None, replace(CONFIG, lr=0.1), resume=states[1])
    with pytest.raises(ValueError, match="format"):
        train_network(net(), TRAIN, VALID, None, CONFIG, resume={**states[1], "format": 2})
    with pytest.raises(ValueError, match="training set"):
        train_network(net(), (TRAIN[0][:64], TRAIN[1][:64]), VALID, None, CONFIG, resume=states[1])
    with pytest.raises(ValueError, match="epoch"):
        train_network(net(), TRAIN, VALID, None, replace(CONFIG, epochs=3), resume=states[3])


def test_device_may_differ(uninterrupted):
    _, _, states = uninterrupted
    state = {**states[2], "config": {**states[2]["config"], "device": "cuda:3"}}
    result = train_network(net(), TRAIN, VALID, None, CONFIG, resume=state)
    assert [m.epoch for m in result.epochs] == [1, 2, 3, 4]


def test_save_is_atomic(uninterrupted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _, _, states = uninterrupted
    path = tmp_path / "a" / "b" / "checkpoint.pt"
    save_checkpoint(states[0], path)
    save_checkpoint(states[1], path)  # overwrites
    assert load_checkpoint(path)["epoch"] == 2
    assert sorted(os.listdir(path.parent)) == ["checkpoint.pt"]

    def torn_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(states[2], path)
    assert load_checkpoint(path)["epoch"] == 2  # the previous checkpoint survives
    assert sorted(os.listdir(path.parent)) == ["checkpoint.pt"]  # no temporary left behind


def test_missing_or_corrupt_file_is_a_checkpoint_error(uninterrupted, tmp_path: Path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    good = tmp_path / "good.pt"
    save_checkpoint(uninterrupted[2][0], good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)
    torch.save({"epoch": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(tmp_path / "other.pt")
