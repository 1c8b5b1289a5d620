"""Every shipped model loads safely from a clean clone and agrees with its model card."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from fer_utils.evaluation import evaluate
from fer_utils.loader import file_sha256, load_fer2013
from fer_utils.models import load_model, shipped_models
from fer_utils.synthetic import make_synthetic

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


@pytest.mark.parametrize("name", list(SHIPPED))
def test_each_shipped_model_ships_its_tflite_and_it_gives_the_keras_probabilities(name):
    from fer_utils.litert import LiteRTNetwork, litert_path

    path = SHIPPED[name]
    assert litert_path(path).is_file(), f"{path.name} ships no .tflite: run python -m fer_utils export {path}"
    faces = np.concatenate([np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8),
                            make_synthetic(12, seed=1).images])
    expected = np.asarray(load_model(path)(faces, training=False))
    np.testing.assert_allclose(LiteRTNetwork(litert_path(path))(faces), expected, atol=1e-5)


def test_lenet_is_shipped():
    assert "lenet" in SHIPPED


def _real_fer2013_of(card: dict) -> str:
    """$FER2013_PATH when it is the very file the card was measured on; otherwise skip (another copy, such as
    Kaggle's original CSV, differs from ours by JPEG rounding, so its figures differ slightly)."""
    path = os.environ.get("FER2013_PATH")
    if not path or not os.path.isfile(path):
        pytest.skip("set FER2013_PATH to a real FER2013 file")
    if file_sha256(path) != card["data"]["sha256"]:  # the digest training records in every model
        pytest.skip(f"{path} is not the copy of FER2013 the cards were measured on (sha256 {card['data']['sha256']})")
    return path


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(SHIPPED))
def test_evaluate_reproduces_the_card_on_publictest(name):
    card = json.loads(SHIPPED[name].with_suffix(".json").read_text())
    data = load_fer2013(_real_fer2013_of(card))
    got = evaluate(load_model(SHIPPED[name]), data, "PublicTest")
    want = card["results"]["plain"]
    # a face or two may flip on another CPU's kernels: 0.001 is under four faces of 3,589
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-3)
    assert got["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-3)


@pytest.mark.realdata
def test_evaluate_command_reproduces_the_flagship_headline():
    name = next(iter(SHIPPED))  # best first
    card = json.loads(SHIPPED[name].with_suffix(".json").read_text())
    cmd = [sys.executable, "-m", "fer_utils", "evaluate", "--model", str(SHIPPED[name]), "--data",
           _real_fer2013_of(card), "--split", "PublicTest", "--tta", "shift", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout[run.stdout.index("{"):])
    want = card["results"]["tta_shift"]
    assert got["n"] == want["n"] == 3589
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-3)
    assert got["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-3)
