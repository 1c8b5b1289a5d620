"""Model cards carry the recipe, the figures and a command that parses back into the same recipe."""

from __future__ import annotations

import io
import json
import shlex
from contextlib import redirect_stdout

import pytest

from fer_utils.__main__ import build_parser, main
from fer_utils.card import reproduce, write_card
from fer_utils.data import load_data
from fer_utils.evaluation import CORRUPTIONS, evaluate
from fer_utils.models import load_model
from fer_utils.shipped import read_info
from fer_utils.training import train


def test_card_records_figures_and_a_rerunnable_command(tmp_path, synthetic_small):
    kwargs = {"filters": [4, 8], "units": [16]}
    train("lenet", synthetic_small, tmp_path / "tiny.keras", epochs=2, model_kwargs=kwargs, verbose=0)
    (tmp_path / "tiny.tflite").unlink()  # a model saved before .tflite files shipped: its card writes one
    card = write_card(tmp_path / "tiny.keras", synthetic_small, ablation=[{"idea": "baseline", "accuracy": 0.5}])
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert saved["results"]["plain"]["n"] == len(synthetic_small.split("PublicTest"))
    cm = saved["results"]["plain"]["confusion_matrix"]
    assert sum(map(sum, cm)) == saved["results"]["plain"]["n"]
    md = (tmp_path / "tiny.md").read_text()
    assert (tmp_path / "tiny.tflite").stat().st_size > 0
    assert f"{card['results']['plain']['accuracy']:.4f}" in md and "| baseline | 0.5 |" in md
    assert set(saved["results"]) == {"plain", "tta", "tta_shift"}
    assert list(saved["corruptions"]["accuracy"]) == ["clean", *CORRUPTIONS]
    assert saved["corruptions"]["accuracy"]["clean"] == saved["results"]["plain"]["accuracy"]
    assert "## Robustness" in md and f"{saved['corruptions']['mean']:.4f}" in md
    assert saved["machine"]["backend"] == "tensorflow" and "Keras on tensorflow" in md
    seconds = read_info(tmp_path / "tiny.keras")["history"]["seconds"]
    assert saved["train_faces_per_second"] == pytest.approx(2 * saved["data"]["n_train"] / sum(seconds))
    assert f"{saved['train_faces_per_second']:.0f} faces/s" in md and "CPU-hours" in md
    assert saved["results"]["tta_shift"]["tta"] == "shift" and f"{card['results']['tta_shift']['macro_f1']:.4f}" in md
    argv = shlex.split(card["command"].replace('"$FER2013_PATH"', "data.csv"))[3:]
    args = build_parser().parse_args(argv)
    recipe = read_info(tmp_path / "tiny.keras")["recipe"]
    assert (args.model, args.epochs, args.seed, args.model_kwargs) == ("lenet", 2, 0, kwargs)
    assert args.learning_rate == recipe["learning_rate"] and args.batch_size == recipe["batch_size"]
    with redirect_stdout(io.StringIO()) as out:
        assert main(["evaluate", "--model", str(tmp_path / "tiny.keras"), "--data", "synthetic", "--tta", "shift", "--json"]) == 0
    printed = json.loads(out.getvalue())  # the JSON alone
    expected = evaluate(load_model(tmp_path / "tiny.keras"), load_data("synthetic"), "PublicTest", tta="shift")
    assert printed["tta"] == "shift" and printed["accuracy"] == expected["accuracy"]
    rows = reproduce(tmp_path, synthetic_small, tmp_path / "again")
    assert rows[0]["model"] == "tiny" and 0 <= rows[0]["reproduced_accuracy"] <= 1


def test_ensemble_is_one_model_averaging_its_members(tmp_path, synthetic_small):
    import keras
    import numpy as np

    tiny = {"filters": [4, 8], "units": [16]}
    # two seeds of one architecture (both Keras models are named "vgg") and a second architecture
    for name, model, seed in [("lenet", "lenet", 0), ("vgg", "vgg", 0), ("vgg_seed1", "vgg", 1)]:
        train(model, synthetic_small, tmp_path / f"{name}.keras", epochs=1, seed=seed, model_kwargs=tiny, verbose=0)
    members = [str(tmp_path / f"{name}.keras") for name in ("lenet", "vgg", "vgg_seed1")]
    assert main(["ensemble", *members, "--out", str(tmp_path / "both.keras")]) == 0
    both = keras.models.load_model(tmp_path / "both.keras", safe_mode=True, compile=False)
    faces = synthetic_small.images[:16]
    expected = np.mean([np.asarray(load_model(m)(faces, training=False)) for m in members], axis=0)
    np.testing.assert_allclose(np.asarray(both(faces, training=False)), expected, rtol=1e-5, atol=1e-6)
    card = write_card(tmp_path / "both.keras", synthetic_small, against=members[1])  # meant to replace vgg alone
    assert card["members"] == ["lenet.keras", "vgg.keras", "vgg_seed1.keras"]
    alone = evaluate(load_model(members[1]), synthetic_small, "PublicTest", tta="shift")
    shift = card["comparison"]["tta_shift"]
    assert card["comparison"]["against"] == "vgg" and shift["against_accuracy"] == pytest.approx(alone["accuracy"])
    assert shift["difference"] == pytest.approx(card["results"]["tta_shift"]["accuracy"] - alone["accuracy"])
    assert "## Against `vgg`, the model it was meant to replace" in (tmp_path / "both.md").read_text()
    assert card["params"] == both.count_params()
    assert "average of the probabilities of `lenet.keras`, `vgg.keras`, `vgg_seed1.keras`" in (tmp_path / "both.md").read_text()
    assert main(["ensemble", members[0], "--out", str(tmp_path / "one.keras")]) == 2  # one member is not an ensemble


def test_prior_correction_divides_probabilities_by_the_prior(tmp_path, synthetic_small):
    import numpy as np
    import pytest

    from fer_utils.models import build_ensemble, correct_priors, load_model

    train("lenet", synthetic_small, tmp_path / "tiny.keras", epochs=1, model_kwargs={"filters": [4, 8], "units": [16]},
          verbose=0)
    model = load_model(tmp_path / "tiny.keras")
    faces = synthetic_small.images[:32]
    prior = np.array([0.14, 0.015, 0.14, 0.25, 0.17, 0.11, 0.175])
    p = np.asarray(model(faces, training=False), np.float64)
    q = np.asarray(correct_priors(model, prior, 1.0)(faces, training=False), np.float64)
    expected = p / prior
    np.testing.assert_allclose(q, expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(correct_priors(model, prior, 0.0)(faces, training=False)), p, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(faces, training=False)), p, atol=1e-7)  # the original is untouched
    with pytest.raises(ValueError, match="positive emotion shares"):
        correct_priors(model, prior[:6], 1.0)
    other = load_model(tmp_path / "tiny.keras")
    other.name = "other"
    with pytest.raises(ValueError, match="not an ensemble"):
        correct_priors(build_ensemble([model, other]), prior, 1.0)
    out = tmp_path / "tiny_prior.keras"
    assert main(["correct-priors", "--model", str(tmp_path / "tiny.keras"), "--tau", "0.5", "--data", "synthetic",
                 "--out", str(out)]) == 0
    card = write_card(out, synthetic_small)
    assert card["prior_correction"]["tau"] == 0.5 and len(card["prior_correction"]["prior"]) == 7
    assert "to the power 0.5" in (tmp_path / "tiny_prior.md").read_text()
