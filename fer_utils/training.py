"""Train any model on FER data: official splits, seeded, checkpointed every epoch, resumable after a kill.

Train on Training, select the epoch on PublicTest, never look at PrivateTest. The checkpoint folder
``<out>.ckpt/`` holds the last epoch (with optimizer state) and the best one so far; rerunning the same command
resumes from it, in this session or a later one. When training ends the best epoch is saved to ``out`` in
float32 with its training record, and the checkpoint folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from fer_utils.atomic import write_atomic
from fer_utils.loader import EMOTIONS, FERData
from fer_utils.models import build_model, count_flops, load_model, save_model, walk_layers

# Defaults of the recipe; every value is recorded in the saved model's info.
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
LABEL_SMOOTHING = 0.1
WARMUP_EPOCHS = 1


def cpu_has_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); None where /proc/cpuinfo is missing."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def validation_split(data: FERData, seed: int = 0) -> tuple[FERData, FERData]:
    """(train, validation): Training and PublicTest, or a seeded 10% of Training when there is no PublicTest."""
    if "PublicTest" in data.split_names:
        return data.split("Training"), data.split("PublicTest")
    train = data.split("Training")
    rng = np.random.default_rng(seed)
    hold = np.zeros(len(train), bool)
    hold[rng.permutation(len(train))[: max(1, len(train) // 10)]] = True
    return train.take(~hold), train.take(hold)


def class_weights(emotions: np.ndarray, mode: str | None) -> dict[int, float] | None:
    """None, ``"balanced"`` (n / (7 * count)) or ``"sqrt"`` (its square root: a milder boost for disgust)."""
    if mode is None or mode == "none":
        return None
    counts = np.bincount(emotions, minlength=len(EMOTIONS)).astype(float)
    w = len(emotions) / (len(EMOTIONS) * np.maximum(counts, 1))
    if mode == "sqrt":
        w = np.sqrt(w)
    elif mode != "balanced":
        raise ValueError(f"class_weight={mode!r} is unknown; expected None, 'balanced' or 'sqrt'")
    return {i: float(v) for i, v in enumerate(w)}


def train(
    model: str,
    data: FERData,
    out: str | os.PathLike,
    *,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    weight_decay: float = WEIGHT_DECAY,
    label_smoothing: float = LABEL_SMOOTHING,
    class_weight: str | None = None,
    seed: int = 0,
    mixed_precision: bool = False,
    model_kwargs: dict | None = None,
    verbose: int = 1,
) -> dict:
    """Train ``model`` (a name from :data:`fer_utils.models.MODELS`) and save the best epoch to ``out``.

    Returns the training record also stored in the model file: recipe, per-epoch history, best epoch,
    PublicTest accuracy, parameters, FLOPs and CPU time.
    """
    out = Path(out)
    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be at least 1")
    train_part, val_part = validation_split(data, seed)
    if len(train_part) == 0:
        raise ValueError(f"data from {data.source} has no Training rows to learn from")
    if (train_part.emotions < 0).any():
        raise ValueError("Training rows without an emotion (the challenge's test.csv) cannot be trained on")
    recipe = dict(
        model=model, model_kwargs=model_kwargs or {}, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        weight_decay=weight_decay, label_smoothing=label_smoothing, class_weight=class_weight, seed=seed,
        mixed_precision=mixed_precision, warmup_epochs=WARMUP_EPOCHS,
    )
    ckpt = Path(str(out) + ".ckpt")
    state = _read_state(ckpt, recipe)
    precision = "mixed_bfloat16" if mixed_precision else "float32"
    if mixed_precision and cpu_has_bf16() is False:
        # measured on an AVX-512 Xeon without BF16: 12.7 s per batch of 64 in mixed_bfloat16, 1.4 s in float32
        warnings.warn("mixed_precision=True on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated and about 9x "
                      "slower than float32 here; train without --mixed-precision on this machine (a checkpoint started "
                      "with it resumes without it)", stacklevel=2)
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(precision)
    try:
        steps_per_epoch = int(np.ceil(len(train_part) / batch_size))
        if state:
            net = load_model(ckpt / "last.keras", compile=True)
            if _precision(net) != precision:
                net = with_precision(net, recipe, steps_per_epoch)
            if verbose:
                print(f"resuming from {ckpt} after epoch {state['epoch']} of {epochs}, in {precision}")
        else:
            state = {"recipe": recipe, "epoch": 0, "history": {}, "best_val_accuracy": -1.0, "best_epoch": 0, "seconds": 0.0}
            net = _compiled(recipe, steps_per_epoch)
        state.setdefault("precision_epochs", {})
        y_train = keras.utils.to_categorical(train_part.emotions, len(EMOTIONS))
        y_val = keras.utils.to_categorical(val_part.emotions, len(EMOTIONS))
        weights = class_weights(train_part.emotions, class_weight)
        for epoch in range(state["epoch"], epochs):
            # the order depends only on (seed, epoch), so a resumed run sees the same batches as an unbroken one
            order = np.random.default_rng([seed, epoch]).permutation(len(train_part))
            t0 = time.perf_counter()
            h = net.fit(
                train_part.images[order], y_train[order], batch_size=batch_size, epochs=epoch + 1, initial_epoch=epoch,
                shuffle=False, validation_data=(val_part.images, y_val), class_weight=weights,
                verbose=verbose,
            )
            seconds = time.perf_counter() - t0
            for k, v in h.history.items():
                state["history"].setdefault(k, []).append(float(v[-1]))
            state["history"].setdefault("seconds", []).append(seconds)
            state["seconds"] += seconds
            state["epoch"] = epoch + 1
            state["precision_epochs"][precision] = state["precision_epochs"].get(precision, 0) + 1
            val_acc = state["history"]["val_accuracy"][-1]
            ckpt.mkdir(parents=True, exist_ok=True)
            if val_acc > state["best_val_accuracy"]:
                state["best_val_accuracy"], state["best_epoch"] = val_acc, epoch + 1
                save_model(net, ckpt / "best.keras")
            save_model(net, ckpt / "last.keras")
            write_atomic(ckpt / "state.json", json.dumps(state, indent=1))  # written last: it vouches for the two files above
            if verbose:
                print(
                    f"epoch {epoch + 1}/{epochs}: train acc {state['history']['accuracy'][-1]:.4f}, "
                    f"PublicTest acc {val_acc:.4f} (best {state['best_val_accuracy']:.4f} at {state['best_epoch']}), "
                    f"{seconds:.0f}s",
                    flush=True,
                )
        best = load_model(ckpt / "best.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    final = build_model(model, seed=seed, **recipe["model_kwargs"])  # float32 copy: runs on any CPU
    final.set_weights(best.get_weights())
    info = {
        "model": model,
        "emotions": list(EMOTIONS),
        "recipe": recipe,
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "val_split": "PublicTest" if "PublicTest" in data.split_names else "10% of Training",
        "val_accuracy": state["best_val_accuracy"],
        "train_seconds": state["seconds"],
        "precision_epochs": state["precision_epochs"],
        "params": int(final.count_params()),
        "flops": count_flops(final),
        "data": {"source": data.source, "synthetic": data.synthetic, "sha256": _sha256(data.source),
                 "n_train": len(train_part), "n_val": len(val_part)},
    }
    save_model(final, out, info)
    shutil.rmtree(ckpt, ignore_errors=True)
    return info


def _compiled(recipe: dict, steps_per_epoch: int) -> keras.Model:
    """A new network of ``recipe``, compiled with its optimizer: AdamW, linear warm-up then cosine decay."""
    net = build_model(recipe["model"], seed=recipe["seed"], **recipe["model_kwargs"])
    steps = recipe["epochs"] * steps_per_epoch
    warmup = min(recipe["warmup_epochs"] * steps_per_epoch, steps // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(steps - warmup, 1), warmup_target=recipe["learning_rate"], warmup_steps=warmup
    )
    net.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=recipe["weight_decay"]),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe["label_smoothing"]),
        metrics=["accuracy"],
    )
    return net


def _precision(net: keras.Model) -> str:
    """The dtype policy the network computes in (that of its first layer with weights)."""
    return next(layer for layer in walk_layers(net) if layer.weights).dtype_policy.name


def with_precision(saved: keras.Model, recipe: dict, steps_per_epoch: int) -> keras.Model:
    """``saved`` (a compiled checkpoint of ``recipe``) rebuilt under the current dtype policy, with its weights and
    optimizer state (step count, moments): a loaded model keeps the policy it was saved with."""
    net = _compiled(recipe, steps_per_epoch)
    net.optimizer.build(net.trainable_variables)
    net.set_weights(saved.get_weights())
    new, old = net.optimizer.variables, saved.optimizer.variables
    if [v.shape for v in new] != [v.shape for v in old]:
        raise ValueError("the checkpoint's optimizer state does not fit the network of its recipe; delete the "
                         "checkpoint folder to start over")
    for a, b in zip(new, old, strict=True):
        a.assign(b)
    return net


def _read_state(ckpt: Path, recipe: dict) -> dict | None:
    f = ckpt / "state.json"
    if not f.exists() or not (ckpt / "last.keras").exists():
        return None
    state = json.loads(f.read_text())
    # the precision is how fast the same recipe runs on this CPU, not part of it: a run started in mixed_bfloat16
    # on one machine resumes in float32 on a machine without native bfloat16 (the weights are float32 in both)
    if {**state.get("recipe", {}), "mixed_precision": None} != {**recipe, "mixed_precision": None}:
        raise ValueError(
            f"checkpoint {ckpt} was made with another recipe ({state.get('recipe')}); "
            f"pass the same arguments to resume, or delete {ckpt} to start over"
        )
    return state


def _sha256(source: str) -> str | None:
    p = Path(source)
    if not p.is_file():
        return None
    with open(p, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
