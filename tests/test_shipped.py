"""Every shipped model loads safely from a clean clone and agrees with its model card."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import keras
import numpy as np
import pytest

from fer_utils.constants import EMOTIONS, NETWORKS_DIR, PROJECT_ROOT, SHIPPED_DIR
from fer_utils.evaluation import evaluate
from fer_utils.litert import LiteRTNetwork, keras_path, litert_path
from fer_utils.loader import file_sha256, load_fer2013
from fer_utils.models import load_model
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.scenes import astronaut_bgr
from fer_utils.shipped import (
    DEFAULT_NETWORK,
    LIVE_NETWORK,
    PACKAGED,
    default_model_path,
    live_model_path,
    shipped_models,
)
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
    assert litert_path(path).is_file(), f"{path.name} ships no .tflite: run python -m fer_utils export --model {path}"
    faces = np.concatenate([np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8),
                            make_synthetic(12, seed=1).images])
    expected = np.asarray(load_model(path)(faces, training=False))
    np.testing.assert_allclose(LiteRTNetwork(litert_path(path))(faces), expected, atol=1e-5)


def test_notebook_02_trains_the_shipped_lenet_by_default():
    """Notebook 02 says its defaults retrain models/lenet.keras on FER2013: they make the recipe that model records."""
    from fer_utils.recipe import Recipe
    from fer_utils.shipped import read_info
    from fer_utils.workbook import NOTEBOOKS, notebook_parameters

    p = notebook_parameters(NOTEBOOKS / "02_train_lenet.ipynb")
    # EPOCHS = None: 30 on FER2013 (3 on the synthetic default), as its parameters cell says
    notebook = Recipe(model=p["MODEL"], model_kwargs=p["MODEL_KWARGS"], epochs=p["EPOCHS"] or 30,
                      class_weight=p["CLASS_WEIGHT"], seed=p["SEED"])
    assert Recipe.from_dict(read_info(SHIPPED["lenet"])["recipe"]) == notebook


def test_the_networks_of_models_in_models_live_in_the_package_and_nowhere_else(tmp_path, monkeypatch):
    for name, path in SHIPPED.items():
        assert litert_path(path) == NETWORKS_DIR / f"{name}.tflite" and keras_path(litert_path(path)) == path
    assert not list(SHIPPED_DIR.glob("*.tflite")), "a network kept twice: models/ holds .keras files and cards only"
    monkeypatch.chdir(PROJECT_ROOT)
    assert litert_path("models/vgg8.keras") == NETWORKS_DIR / "vgg8.tflite"  # a relative path to models/ as well
    own = tmp_path / "own.keras"  # anyone else's model: its network beside it
    assert litert_path(own) == tmp_path / "own.tflite" and keras_path(tmp_path / "own.tflite") == own
    assert litert_path(tmp_path / "x.tflite") == tmp_path / "x.tflite"


def test_the_packaged_networks_are_the_defaults_and_what_the_wheel_carries():
    """PACKAGED names the default and the live model, each once: they must be shipped models, what
    default_model_path() and live_model_path() give here, and exactly the networks pyproject.toml puts into the wheel."""
    assert set(PACKAGED) <= set(SHIPPED) and len(set(PACKAGED)) == len(PACKAGED)
    assert default_model_path().stem == DEFAULT_NETWORK and live_model_path().stem == LIVE_NETWORK
    package_data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    listed = [f for f in package_data["fer_utils"] if f.startswith("networks/")]
    assert sorted(listed) == sorted(f"networks/{name}.tflite" for name in PACKAGED)
    assert all((NETWORKS_DIR / f"{name}.tflite").is_file() for name in PACKAGED)


def test_shipped_models_rank_by_the_cards_flip_and_shift_accuracy(tmp_path, monkeypatch):
    """Best first by the README's headline column: a network ahead on plain accuracy alone comes after an ensemble
    ahead with TTA, as vgg8_distilled does after vgg8x2_resnet; a model without a card comes last."""
    for name, plain, shift in (("single", 0.686, 0.692), ("ensemble", 0.683, 0.697)):
        (tmp_path / f"{name}.keras").write_bytes(b"")
        results = {"plain": {"accuracy": plain}, "tta_shift": {"accuracy": shift}}
        (tmp_path / f"{name}.json").write_text(json.dumps({"results": results}))
    (tmp_path / "uncarded.keras").write_bytes(b"")
    monkeypatch.setattr("fer_utils.shipped.SHIPPED_DIR", tmp_path)
    assert list(shipped_models()) == ["ensemble", "single", "uncarded"]


def test_the_rule_for_a_default_keeps_the_cheaper_unless_a_costlier_gains_beyond_noise_and_loses_nowhere():
    """Two generated models of different cost, judged on two datasets of 2,000 faces: the costlier one replaces the
    cheaper only with a gain beyond noise on one and no loss beyond noise on the other."""
    from fer_utils.evaluation import paired_comparison
    from fer_utils.shipped import choose_default

    rng = np.random.default_rng(0)
    emotions = rng.integers(0, 7, 2000)
    cheap = np.where(rng.random(2000) < 0.6, emotions, (emotions + 1) % 7)

    def better_by(n: int) -> np.ndarray:  # the cheap answers with n more mistakes fixed (n < 0: made)
        out = cheap.copy()
        idx = np.flatnonzero(cheap != emotions)[:n] if n > 0 else np.flatnonzero(cheap == emotions)[:-n]
        out[idx] = emotions[idx] if n > 0 else (emotions[idx] + 1) % 7
        return np.eye(7)[out]

    def rule(costly_on: dict[str, int]) -> tuple[str, list[dict]]:
        answers = {"cheap": {d: np.eye(7)[cheap] for d in costly_on},
                   "costly": {d: better_by(n) for d, n in costly_on.items()}}
        return choose_default({"costly": 4e8, "cheap": 1e8}, lambda a, b: {
            d: paired_comparison(emotions, answers[a][d], answers[b][d]) for d in costly_on})

    assert rule({"PublicTest": 80, "collection": 0})[0] == "costly"  # a gain beyond noise, no loss
    assert rule({"PublicTest": 3, "collection": 4})[0] == "cheap"  # gains within noise: the cheaper serves
    assert rule({"PublicTest": 80, "collection": -80})[0] == "cheap"  # a gain here, a loss beyond noise there
    name, (step,) = rule({"PublicTest": 0, "collection": 80})
    assert name == "costly" and step["candidate"] == "costly" and step["serving"] == "cheap" and step["replaces"]
    assert step["comparisons"]["collection"]["mcnemar_p"] < 0.05 and step["comparisons"]["PublicTest"]["mcnemar_p"] == 1
    with pytest.raises(ValueError, match="no candidate"):
        choose_default({}, None)


def test_more_accuracy_from_answering_the_common_emotion_is_no_gain_under_the_rule():
    """wild-faces' trap: on faces that are 70% neutral, a model that always answers neutral is 10 points more accurate
    than one right on 60% of every emotion, with McNemar's p tiny, but its macro-F1 collapses: not beyond noise."""
    from fer_utils.evaluation import paired_comparison
    from fer_utils.shipped import beyond_noise, choose_default

    rng = np.random.default_rng(1)
    emotions = np.where(rng.random(3000) < 0.7, 6, rng.integers(0, 6, 3000))
    honest = np.eye(7)[np.where(rng.random(3000) < 0.6, emotions, (emotions + 1) % 7)]
    neutral = np.eye(7)[np.full(3000, 6)]
    c = paired_comparison(emotions, neutral, honest)
    assert c["difference"] > 0.08 and c["mcnemar_p"] < 1e-10 and c["macro_f1_difference_ci"][1] < 0
    assert beyond_noise(c) == 0
    assert choose_default({"honest": 1e8, "neutral": 2e8}, lambda a, b: {"collection": c})[0] == "honest"


def _as_installed(monkeypatch, models_dir, networks_dir=NETWORKS_DIR):
    """This clone as an installed package sees itself: ``models_dir`` for models/, ``networks_dir`` for its networks."""
    models_dir, networks_dir = models_dir.resolve(), networks_dir.resolve()  # as the package's own paths are
    for module in ("fer_utils.litert", "fer_utils.shipped"):
        monkeypatch.setattr(f"{module}.SHIPPED_DIR", models_dir)
        monkeypatch.setattr(f"{module}.NETWORKS_DIR", networks_dir)
    monkeypatch.setattr("fer_utils.webcam.panel.SHIPPED_DIR", models_dir)
    return models_dir, networks_dir


def test_an_installed_package_recognises_faces_with_the_networks_it_carries(tmp_path, monkeypatch):
    from fer_utils.webcam import WebcamPanel

    _as_installed(monkeypatch, tmp_path / "site-packages" / "models")  # a wheel has no models/, so no cards
    networks = {name: NETWORKS_DIR / f"{name}.tflite" for name in PACKAGED}
    assert shipped_models() == networks
    assert default_model_path() == networks[DEFAULT_NETWORK] and live_model_path() == networks[LIVE_NETWORK]
    (face,) = EmotionRecognizer().predict(astronaut_bgr())
    assert face.emotion in EMOTIONS and face.probabilities.sum() == pytest.approx(1, abs=1e-5)
    monkeypatch.chdir(tmp_path)
    panel = WebcamPanel("browser")  # the live default, with every packaged network to choose from
    assert panel.recognizer.model_path == networks[LIVE_NETWORK] and panel.model_select.value == LIVE_NETWORK
    assert [v for _, v in panel.model_select.options] == list(PACKAGED)
    assert panel.out_dir == tmp_path / "runs" / "webcam"  # not site-packages
    panel.model_select.value = DEFAULT_NETWORK
    assert panel.recognizer.model_path == networks[DEFAULT_NETWORK]


def test_a_missing_network_names_the_fix_for_the_install_at_hand(tmp_path, monkeypatch):
    (tmp_path / "networks").mkdir()
    models, networks = _as_installed(monkeypatch, tmp_path / "models", tmp_path / "networks")
    with monkeypatch.context() as light:  # a light install: no Keras, so only reinstalling brings the networks back
        light.setitem(sys.modules, "keras", None)
        with pytest.raises(FileNotFoundError, match="no trained model.*reinstall fer_utils") as missing:
            default_model_path()
        assert "fer_utils train" not in str(missing.value)  # no advice to train a LeNet
        with pytest.raises(FileNotFoundError, match="vgg8.tflite does not exist; reinstall fer_utils"):
            LiteRTNetwork(networks / "vgg8.tflite")
        with pytest.raises(FileNotFoundError, match="where TensorFlow is installed"):  # anyone else's model
            LiteRTNetwork(tmp_path / "own.tflite")
    with pytest.raises(FileNotFoundError, match="no trained model.*reinstall fer_utils"):  # Keras, but no clone
        default_model_path()
    models.mkdir()  # a clone set up for training: export or train
    with pytest.raises(FileNotFoundError, match="train one with `python -m fer_utils train"):
        default_model_path()
    (models / "vgg8.keras").write_bytes(b"")
    fix = f"write it with `python -m fer_utils export --model {models / 'vgg8.keras'}`"
    with pytest.raises(FileNotFoundError, match=re.escape(fix)):
        LiteRTNetwork(networks / "vgg8.tflite")


@pytest.mark.realdata
def test_the_rule_for_a_default_chooses_the_defaults_the_package_names():
    """`defaults` on PublicTest and the development collections beside the clone (../shared/data/jaffe, wild-faces)
    chooses DEFAULT_NETWORK and LIVE_NETWORK: the names in shipped.py are the rule's outcome, not a hand's choice."""
    card = json.loads(SHIPPED[DEFAULT_NETWORK].with_suffix(".json").read_text())
    data = _real_fer2013_of(card)
    shared = PROJECT_ROOT.parent / "shared" / "data"
    if not all((shared / c).is_dir() for c in ("jaffe", "wild-faces")):
        pytest.skip(f"the development collections are not in {shared}")
    cmd = [sys.executable, "-m", "fer_utils", "defaults", "--data", data, "--collection", str(shared / "jaffe"),
           "--collection", str(shared / "wild-faces"), "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert (result["photo"]["model"], result["live"]["model"]) == (DEFAULT_NETWORK, LIVE_NETWORK)


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
    got = json.loads(run.stdout)  # the JSON alone on standard output
    want = card["results"]["tta_shift"]
    assert got["n"] == want["n"] == 3589
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-3)
    assert got["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-3)
