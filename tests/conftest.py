"""Shared fixtures: every test gets its own cache folder and never sees a real FER2013 unless it asks for one."""

from __future__ import annotations

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


def pixels_text(image: np.ndarray) -> str:
    """A face as fer2013.csv writes it."""
    return " ".join(map(str, image.reshape(-1)))
