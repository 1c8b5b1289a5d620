"""Models take raw faces, learn the synthetic default above chance, save/load safely, and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
import zipfile

import keras
import numpy as np
import pytest
from conftest import train_broken_and_unbroken

from fer_utils.card import write_card
from fer_utils.evaluation import evaluate
from fer_utils.models import build_model, count_flops, load_model, predict_proba, save_model
from fer_utils.recipe import Recipe, class_weights
from fer_utils.shipped import read_info
from fer_utils.synthetic import make_synthetic
from fer_utils.training import train

TINY = {"filters": [8, 16], "units": [32]}


def test_models_take_raw_uint8_faces_and_output_probabilities():
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    for name in ("lenet", "vgg"):
        model = build_model(name)
        proba = np.asarray(model(faces, training=False))
        assert proba.shape == (5, 7)
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        assert count_flops(model) > 1e6


def test_augmentation_only_in_training():
    model = build_model("lenet", **TINY)
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    aug = model.get_layer("augmentation")
    x = faces[..., None].astype("float32") / 255
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    assert not np.allclose(np.asarray(aug(x, training=True)), x)


@pytest.mark.slow
def test_small_cnn_learns_synthetic_default(tmp_path):
    data = make_synthetic(1000, seed=1)
    kwargs = {"filters": [8, 16], "units": [32], "dropout": 0.1, "augment": 0}
    info = train("lenet", data, tmp_path / "m.keras", epochs=15, batch_size=32, learning_rate=3e-3, model_kwargs=kwargs,
                 verbose=0)
    model = load_model(tmp_path / "m.keras")
    result = evaluate(model, data, "PrivateTest")  # never seen in training nor selection
    test = data.split("PrivateTest")
    majority = np.bincount(test.emotions).max() / len(test)
    assert result["accuracy"] > majority + 0.2, (result["accuracy"], majority)
    assert info["best_epoch"] >= 1 and len(info["history"]["val_accuracy"]) == 15
    saved = read_info(tmp_path / "m.keras")
    assert saved["history"] == json.loads(json.dumps(info["history"]))
    assert saved["data"]["synthetic"] is True and saved["recipe"]["model_kwargs"] == kwargs
    assert not (tmp_path / "m.keras.ckpt").exists()


def test_save_is_atomic_and_load_rejects_corrupt_files(tmp_path):
    model = build_model("lenet", **TINY)
    path = save_model(model, tmp_path / "m.keras", {"note": "x"})
    assert read_info(path) == {"note": "x"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.tflite"]  # no temp file left behind
    stale = tmp_path / "m.tflite"
    stale.write_bytes(b"an older export")
    save_model(model, path, litert=False)
    assert not stale.exists()  # never a .tflite of another model beside it
    faces = np.zeros((2, 48, 48), np.uint8)
    np.testing.assert_allclose(predict_proba(load_model(path), faces), predict_proba(model, faces), atol=1e-6)
    with zipfile.ZipFile(path) as z:
        assert "config.json" in z.namelist()
    (tmp_path / "bad.keras").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_model(tmp_path / "bad.keras")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="must end in .keras"):
        save_model(model, tmp_path / "m.h5")


def test_class_weights_favour_rare_emotions():
    emotions = np.array([0] * 90 + [1] * 10)
    w = class_weights(emotions, "balanced")
    assert w[1] > w[0] and class_weights(emotions, "sqrt")[1] == pytest.approx(np.sqrt(w[1]))
    assert class_weights(emotions, None) is None
    with pytest.raises(ValueError, match="class_weight"):
        class_weights(emotions, "bogus")


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "m.keras"
    cmd = [sys.executable, "-m", "fer_utils", "train", "--arch", "lenet", "--out", str(out), "--epochs", "25",
           "--data", "synthetic", "--synthetic-size", "300", "--arch-kwargs", json.dumps({"filters": [4, 8], "units": [16]})]
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    state = tmp_path / "m.keras.ckpt" / "state.json"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run was not killed mid-way"
    done = json.loads(state.read_text())["epoch"]
    assert 2 <= done < 25 and not out.exists()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"resuming from {out}.ckpt after epoch {done} of 25" in rerun.stdout
    info = read_info(out)
    assert len(info["history"]["val_accuracy"]) == 25
    assert keras.models.load_model(out, safe_mode=True) is not None


def test_a_resumed_run_draws_like_an_unbroken_one(tmp_path, monkeypatch):
    """Augmentation (random erasing included) and dropout draw from (seed, epoch), not from state a checkpoint
    loses: stopped after its first epoch and rerun, a run ends with the very weights of an unbroken one."""
    recipe = Recipe(model="vgg", model_kwargs={"filters": [4, 8], "units": [16], "erasing": 0.5}, epochs=2,
                    batch_size=32)
    unbroken, resumed = train_broken_and_unbroken(recipe, make_synthetic(200, seed=0), tmp_path, monkeypatch)
    for k in ("loss", "accuracy", "val_accuracy"):
        assert resumed["history"][k] == unbroken["history"][k], k
    a, b = load_model(tmp_path / "a.keras"), load_model(tmp_path / "b.keras")
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_mixed_precision_warns_on_a_cpu_without_bf16(tmp_path, monkeypatch):
    import fer_utils.training as training

    data = make_synthetic(n=70, seed=0)
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without AVX512-BF16"):
        train("lenet", data, tmp_path / "bf16.keras", epochs=1, mixed_precision=True, model_kwargs=TINY, verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train("lenet", data, tmp_path / "bf16b.keras", epochs=1, mixed_precision=True, model_kwargs=TINY, verbose=0)
    assert not [w for w in caught if "AVX512-BF16" in str(w.message)]


def _stop_after_first_epoch(monkeypatch, run) -> None:
    """Call ``run`` (a training run) as if the machine stopped right after its first epoch's checkpoint."""
    import fer_utils.training as training

    real_write = training.write_atomic

    def write_then_die(path, text):
        real_write(path, text)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "write_atomic", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(training, "write_atomic", real_write)


def test_a_run_resumes_in_another_precision(tmp_path, monkeypatch):
    """Started in mixed_bfloat16 on one machine, finished in float32 on another: same weights and optimizer state."""
    import fer_utils.training as training

    data = make_synthetic(n=70, seed=0)
    out = tmp_path / "m.keras"
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: True)
    _stop_after_first_epoch(monkeypatch, lambda: train("lenet", data, out, epochs=3, mixed_precision=True,
                                                       model_kwargs=TINY, verbose=0))
    saved = load_model(tmp_path / "m.keras.ckpt" / "last.keras", compile=True)
    assert training._precision(saved) == "mixed_bfloat16"
    try:
        keras.mixed_precision.set_global_policy("float32")
        rebuilt = training.with_precision(saved, json.loads((tmp_path / "m.keras.ckpt" / "state.json").read_text())["recipe"], 2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert training._precision(rebuilt) == "float32"
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt.get_weights(), saved.get_weights(), strict=True))
    assert int(rebuilt.optimizer.iterations) == int(saved.optimizer.iterations) > 0
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(rebuilt.optimizer.variables, saved.optimizer.variables, strict=True))

    with pytest.raises(ValueError, match="another recipe"):  # the rest of the recipe still has to match
        train("lenet", data, out, epochs=4, mixed_precision=False, model_kwargs=TINY, verbose=0)
    info = train("lenet", data, out, epochs=3, mixed_precision=False, model_kwargs=TINY, verbose=0)
    assert info["precision_epochs"] == {"mixed_bfloat16": 1, "float32": 2}
    assert len(info["history"]["val_accuracy"]) == 3 and training._precision(load_model(out)) == "float32"
    write_card(out, data)
    assert "Epochs by precision: 1 in mixed_bfloat16, 2 in float32" in (tmp_path / "m.md").read_text()


def test_a_run_carries_over_to_another_session_in_one_small_resume_file(tmp_path, monkeypatch, capsys):
    """A session ends mid-run: `resume-file` packs the checkpoint into OUT.resume.npz (bfloat16), a fresh clone has
    only that file, and the same command resumes from it, keeps the history, and deletes it when the run ends."""
    import shutil

    import fer_utils.training as training
    from fer_utils.__main__ import main
    from fer_utils.recipe import Recipe

    data = make_synthetic(n=70, seed=0)
    out, ckpt = tmp_path / "m.keras", tmp_path / "m.keras.ckpt"
    _stop_after_first_epoch(monkeypatch, lambda: train("lenet", data, out, epochs=3, model_kwargs=TINY, verbose=0))
    assert main(["resume-file", "--out", str(out)]) == 0
    resume = tmp_path / "m.resume.npz"
    assert f"wrote {resume}" in capsys.readouterr().out
    saved = load_model(ckpt / "last.keras", compile=True)
    first = json.loads((ckpt / "state.json").read_text())["history"]["val_accuracy"]
    shutil.rmtree(ckpt)  # a fresh clone: the checkpoint folder is never committed, the resume file is

    recipe = Recipe(model="lenet", epochs=3, model_kwargs=TINY)
    state = training._restore_resume(out, ckpt, recipe, steps_per_epoch=1)
    restored = load_model(ckpt / "last.keras", compile=True)
    for a, b in zip(restored.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2**-8, atol=1e-30)  # bfloat16 keeps 8 bits of mantissa
    assert int(restored.optimizer.iterations) == int(saved.optimizer.iterations) > 0
    assert state["epoch"] == 1 and state["best_epoch"] == 1
    with pytest.raises(ValueError, match="another recipe"):
        training._restore_resume(out, tmp_path / "other.ckpt", Recipe(model="lenet", epochs=4, model_kwargs=TINY), 1)
    shutil.rmtree(ckpt)

    info = train("lenet", data, out, epochs=3, model_kwargs=TINY, verbose=0)  # the same command, next session
    assert len(info["history"]["val_accuracy"]) == 3 and info["history"]["val_accuracy"][:1] == first
    assert not resume.exists() and not ckpt.exists() and out.exists()
    assert main(["resume-file", "--out", str(out)]) == 2  # no run in progress: a one-line error
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("setting, expected", [(None, "1"), ("0", "0")])
def test_importing_fer_utils_turns_onednn_on_unless_told_otherwise(setting, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = "import os, fer_utils; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == expected, run.stderr


def test_photometric_augmentation_changes_light_blur_and_noise_only_in_training(tmp_path):
    model = build_model("vgg", filters=[4, 8], units=[8], photometric=1.0)
    aug = model.get_layer("augmentation")
    names = [type(layer).__name__ for layer in aug.layers]
    assert {"RandomBrightness", "RandomGaussianBlur", "GaussianNoise"} <= set(names)
    faces = make_synthetic(70, seed=0).images[:8]
    x = faces[..., None].astype("float32") / 255
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    brightness = aug.layers[names.index("RandomBrightness")]
    assert np.abs(np.asarray(brightness(x, training=True)).mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3))).max() > 0.01
    save_model(model, tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras", safe_mode=True).get_layer("augmentation") is not None
    assert "RandomBrightness" not in [type(layer).__name__ for layer in build_model("vgg", filters=[4, 8]).get_layer("augmentation").layers]
