"""Consistent distillation: the teacher answers in each training step on the very view (augmented, mixed up) that the
student learns from; the run checkpoints and resumes exactly, saves a plain student, and runs under JAX."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import train_broken_and_unbroken

from fer_utils.__main__ import build_parser
from fer_utils.distill import distiller, in_global_policy
from fer_utils.models import build_ensemble, build_model, load_model, save_model, walk_layers
from fer_utils.recipe import Recipe
from fer_utils.shipped import read_info
from fer_utils.synthetic import make_synthetic

TINY = {"filters": [4, 8], "units": [16]}


def _student(**kwargs) -> keras.Model:
    net = build_model("vgg", **TINY, **kwargs)
    net.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    return net


def _teacher() -> keras.Model:
    return build_model("lenet", **TINY, seed=1)


def _as_faces(view) -> np.ndarray:
    """The uint8 faces the teacher is documented to see for a float view in [0, 1]."""
    return np.round(np.clip(np.asarray(view, np.float32), 0, 1) * 255).astype(np.uint8)[..., 0]


def test_the_teacher_answers_on_the_augmented_view_the_student_sees():
    faces = np.repeat(make_synthetic(70, seed=0).images[:4], 4, axis=0)  # each face four times
    teacher = _teacher()
    d = distiller(_student(dropout=0.0), teacher, mixup=0.4)
    state = [keras.ops.convert_to_numpy(v) for v in d.non_trainable_variables]  # the random layers' seeds among them
    out = {k: np.asarray(v) for k, v in d(faces, training=True).items()}
    for v, value in zip(d.non_trainable_variables, state, strict=True):
        v.assign(value)
    view, share = d.view(faces, training=True)  # the same draws again: the view of that step
    np.testing.assert_array_equal(np.asarray(share), out["mix"])
    np.testing.assert_allclose(out["teacher"], np.asarray(teacher(_as_faces(view), training=False)), atol=1e-6)
    np.testing.assert_allclose(out["student"], np.asarray(d.back(view, training=True)), atol=1e-6)
    # the teacher's answers on the step's views, not on the clean faces: the copies of a face get different answers
    clean = np.asarray(teacher(faces, training=False))
    assert np.abs(out["teacher"] - clean).max() > 1e-3
    assert np.abs(out["teacher"][0::4] - out["teacher"][1::4]).max() > 1e-3
    # outside training the distiller is the student alone (what validation measures)
    np.testing.assert_allclose(np.asarray(d(faces)), np.asarray(d.student(faces, training=False)), atol=1e-7)


def test_mixup_blends_each_face_with_its_partner_and_the_targets_alike():
    data = make_synthetic(70, seed=0)
    faces, onehot = data.images[:16], keras.utils.to_categorical(data.emotions[:16], 7)
    teacher = _teacher()
    d = distiller(_student(augment=0), teacher, teacher_weight=0.6, mixup=0.4)  # no augmentation: the view is known
    out = d(faces, training=True)
    share = np.asarray(out["mix"])
    assert (share >= 0.5).all() and (share <= 1).all() and share.min() < 0.9
    x = faces[..., None] / 255
    s = share[:, None, None, None]
    mixed = s * x + (1 - s) * x[::-1]  # each face with its partner in the reversed batch
    np.testing.assert_allclose(np.asarray(d.view(faces, training=False)[0]), x, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["teacher"]), np.asarray(teacher(_as_faces(mixed), training=False)),
                               atol=1e-6)
    labels = share[:, None] * onehot + (1 - share[:, None]) * onehot[::-1]
    expected = 0.6 * np.asarray(out["teacher"]) + 0.4 * labels
    np.testing.assert_allclose(np.asarray(d.targets(onehot, out)), expected, atol=1e-6)
    np.testing.assert_allclose(expected.sum(1), 1, rtol=1e-5)
    plain = distiller(_student(augment=0), teacher, mixup=0.0)(faces, training=True)
    np.testing.assert_array_equal(np.asarray(plain["mix"]), 1)
    np.testing.assert_allclose(np.asarray(plain["teacher"]), np.asarray(teacher(faces, training=False)), atol=1e-6)


def test_a_consistent_run_resumes_like_an_unbroken_one_and_saves_a_plain_student(tmp_path, monkeypatch):
    data = make_synthetic(200, seed=0)
    save_model(_teacher(), tmp_path / "teacher.keras", litert=False)
    recipe = Recipe(model="vgg", model_kwargs=TINY, epochs=2, batch_size=32, teacher=str(tmp_path / "teacher.keras"),
                    distill="consistent", mixup=0.4, teacher_weight=0.8)
    unbroken, resumed = train_broken_and_unbroken(recipe, data, tmp_path, monkeypatch)
    a, b = load_model(tmp_path / "a.keras"), load_model(tmp_path / "b.keras")
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))
    for k in ("loss", "accuracy", "val_accuracy"):  # the same augmentation, dropout and mixup draws after resuming
        assert resumed["history"][k] == unbroken["history"][k], k
    # the saved model is the student alone, laid out as the recipe's network, loading with safe_mode
    plain = build_model("vgg", **TINY)
    assert a.name == plain.name and [w.shape for w in a.weights] == [w.shape for w in plain.weights]
    assert [type(layer).__name__ for layer in walk_layers(a)] == [type(layer).__name__ for layer in walk_layers(plain)]
    assert keras.models.load_model(tmp_path / "a.keras", safe_mode=True).count_params() == plain.count_params()
    # validation measured the student: its accuracy on PublicTest at the best epoch is the saved model's
    val = data.split("PublicTest")
    accuracy = np.mean(np.asarray(a(val.images, training=False)).argmax(1) == val.emotions)
    assert unbroken["val_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert read_info(tmp_path / "a.keras")["recipe"]["distill"] == "consistent"


def test_the_teacher_computes_in_the_training_precision():
    members = [_teacher(), build_model("vgg", **TINY)]
    faces = make_synthetic(70, seed=0).images[:8]
    ensemble = build_ensemble(members)
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        copy = in_global_policy(ensemble)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    policies = {layer.name: layer.dtype_policy.name for layer in walk_layers(copy)}
    assert policies["emotion"] == "float32" and "mixed_bfloat16" in policies.values()
    assert copy.input.dtype == "uint8"
    assert all(np.array_equal(x, y) for x, y in zip(copy.get_weights(), ensemble.get_weights(), strict=True))
    p = np.asarray(copy(faces, training=False))
    np.testing.assert_allclose(p, np.asarray(ensemble(faces, training=False)), atol=0.05)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)


def test_the_recipe_spells_distillation_and_old_recipes_still_load():
    recipe = Recipe(model="vgg", teacher="models/t.keras", teacher_weight=1.0, distill="consistent", mixup=0.2)
    command = recipe.command(data="d.csv")
    assert "--distill consistent --mixup 0.2" in command
    args = build_parser().parse_args(shlex.split(command)[3:])
    assert Recipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)}) == recipe
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--distill" in help_text and "--mixup" in help_text and "Beta(alpha, alpha)" in help_text
    # a recipe recorded before these fields existed (a shipped card) loads with today's behaviour
    old = json.loads(open(os.path.join(os.path.dirname(__file__), "..", "models", "vgg8.json")).read())["recipe"]
    loaded = Recipe.from_dict(old)
    assert (loaded.distill, loaded.mixup) == ("precomputed", 0.0)
    assert loaded == Recipe.from_dict(loaded.to_dict()) and "--distill" not in loaded.command()
    with pytest.raises(ValueError, match="needs a teacher"):
        Recipe(distill="consistent")
    with pytest.raises(ValueError, match="mixup=0.2 needs distill='consistent'"):
        Recipe(teacher="t.keras", mixup=0.2)
    with pytest.raises(ValueError, match="distill='often' is unknown"):
        Recipe(teacher="t.keras", distill="often")


@pytest.mark.slow
def test_consistent_distillation_runs_under_jax(tmp_path):
    pytest.importorskip("jax")
    save_model(_teacher(), tmp_path / "teacher.keras", litert=False)
    out = tmp_path / "jax.keras"
    cmd = [sys.executable, "-m", "fer_utils", "train", "--arch", "vgg", "--data", "synthetic", "--synthetic-size", "200",
           "--out", str(out), "--epochs", "2", "--batch-size", "32", "--arch-kwargs", json.dumps(TINY), "--verbose", "0",
           "--teacher", str(tmp_path / "teacher.keras"), "--distill", "consistent", "--mixup", "0.2"]
    run = subprocess.run(cmd, env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    info = read_info(out)
    assert info["machine"]["backend"] == "jax" and info["recipe"]["mixup"] == 0.2
    assert len(info["history"]["val_accuracy"]) == 2 and np.isfinite(info["history"]["loss"]).all()
    assert [w.shape for w in load_model(out).weights] == [w.shape for w in build_model("vgg", **TINY).weights]
