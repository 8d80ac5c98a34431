"""Pickled data and benchmark files are code: one that others may write is refused, by name."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from scorer.trusted import UntrustedFileError, check_trusted


def test_group_or_world_writable_pickles_are_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}))
    os.chmod(path, 0o644)
    assert check_trusted(path) == path
    for mode in (0o664, 0o646, 0o666):
        os.chmod(path, mode)
        with pytest.raises(UntrustedFileError, match=f"chmod go-w {path}"):
            check_trusted(path)


def test_cifar_loading_checks_its_batches(tmp_path):
    from scorer.data.cifar import _read_batches

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}))
    os.chmod(path, 0o644)
    images, labels = _read_batches([path], "labels")
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, 1]
    os.chmod(path, 0o666)
    with pytest.raises(UntrustedFileError):
        _read_batches([path], "labels")
