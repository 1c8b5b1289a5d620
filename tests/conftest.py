"""Shared fixtures: every test gets its own cache folder and never sees a real FER2013 unless it asks for one."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FER_UTILS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def synthetic_small():
    from fer_utils.synthetic import make_synthetic

    return make_synthetic(700, seed=1)


def train_broken_and_unbroken(recipe, data, tmp_path, monkeypatch) -> tuple[dict, dict]:
    """Train ``recipe`` on ``data`` twice: unbroken into ``a.keras``, and into ``b.keras`` stopped right after the first
    epoch's checkpoint, then rerun to the end. The training records of both."""
    import fer_utils.training as training

    unbroken = training.train(recipe, data, tmp_path / "a.keras", verbose=0)
    real_write = training.write_atomic

    def write_then_die(path, text):  # the machine stops right after the first epoch's checkpoint
        real_write(path, text)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "write_atomic", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        training.train(recipe, data, tmp_path / "b.keras", verbose=0)
    monkeypatch.setattr(training, "write_atomic", real_write)
    assert json.loads((tmp_path / "b.keras.ckpt" / "state.json").read_text())["epoch"] == 1
    return unbroken, training.train(recipe, data, tmp_path / "b.keras", verbose=0)


def pixels_text(image: np.ndarray) -> str:
    """A face as fer2013.csv writes it."""
    return " ".join(map(str, image.reshape(-1)))
