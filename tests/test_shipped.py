"""Every shipped model loads safely from a clean clone and agrees with its model card."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from fer_utils.models import shipped_models

SHIPPED = shipped_models()


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_model_loads_safely_and_matches_its_card(name):
    path = SHIPPED[name]
    model = keras.models.load_model(path, safe_mode=True, compile=False)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    proba = np.asarray(model(faces, training=False))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    card = json.loads(path.with_suffix(".json").read_text())
    for result in card["results"].values():
        cm = np.array(result["confusion_matrix"])
        assert cm.sum() == result["n"] == 3589  # the real PublicTest, not the synthetic default
        assert result["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert card["data"]["synthetic"] is False and card["params"] == model.count_params()


def test_lenet_is_shipped():
    assert "lenet" in SHIPPED
