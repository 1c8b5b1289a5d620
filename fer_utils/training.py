"""Train any model on FER data: official splits, seeded, checkpointed every epoch, resumable after a kill.

Train on Training, select the epoch on PublicTest, never look at PrivateTest. The checkpoint folder
``<out>.ckpt/`` holds the last epoch (with optimizer state) and the best one so far; rerunning the same command
resumes from it, in this session or a later one. When training ends the best epoch is saved to ``out`` in
float32 with its training record, and the checkpoint folder is removed.

Every choice of a run is one field of :class:`Recipe`: ``train``'s keywords, the command line's flags and the
cards' commands are all made from it. Training runs on any Keras backend (``KERAS_BACKEND=jax`` on a GPU needs no
TensorFlow); on JAX with several devices, batches are split across them with Keras' ``DataParallel``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from fer_utils.atomic import write_atomic
from fer_utils.constants import EMOTIONS
from fer_utils.litert import quiet_native_logs
from fer_utils.loader import FERData
from fer_utils.models import build_model, count_flops, load_model, save_model, walk_layers
from fer_utils.recipe import Recipe

with quiet_native_logs():  # TensorFlow's oneDNN start-up line, which TF_CPP_MIN_LOG_LEVEL does not hide
    import keras


def cpu_has_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); None where /proc/cpuinfo is missing."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def machine() -> dict:
    """What trains here: the Keras backend, the accelerators Keras sees (None on a CPU), the CPU model and cores."""
    devices = keras.distribution.list_devices() if keras.backend.backend() == "jax" else []
    accelerators = [d for d in devices if not d.lower().startswith("cpu")]
    gpu = None
    if accelerators:
        import jax  # only on the JAX backend, where it is already imported

        gpu = f"{len(accelerators)} x {jax.devices()[0].device_kind}"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"backend": keras.backend.backend(), "accelerator": gpu, "cpu": cpu, "cores": os.cpu_count(),
            "devices": max(len(devices), 1)}


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


def targets(recipe: Recipe, part: FERData) -> np.ndarray:
    """One-hot emotions, or with a teacher ``teacher_weight`` of its flip-averaged probabilities plus the rest
    one-hot (knowledge distillation at temperature 1: the teacher's answers are the soft half of the targets)."""
    onehot = keras.utils.to_categorical(part.emotions, len(EMOTIONS))
    if recipe.teacher is None:
        return onehot
    teacher = load_model(recipe.teacher)
    soft = np.mean([teacher.predict(v, batch_size=512, verbose=0) for v in (part.images, part.images[:, :, ::-1])], 0)
    return (recipe.teacher_weight * soft + (1 - recipe.teacher_weight) * onehot).astype("float32")


def train(model: str | Recipe, data: FERData, out: str | os.PathLike, *, verbose: int = 1, **fields) -> dict:
    """Train ``model`` (a :class:`Recipe`, or a name from :data:`fer_utils.models.MODELS` with the recipe's fields
    as keywords, e.g. ``epochs=3``) and save the best epoch to ``out``.

    Returns the training record also stored in the model file: recipe, machine, per-epoch history, best epoch,
    PublicTest accuracy, parameters, FLOPs and training time.
    """
    recipe = dataclasses.replace(model, **fields) if isinstance(model, Recipe) else Recipe(model=model, **fields)
    out = Path(out)
    train_part, val_part = validation_split(data, recipe.seed)
    if len(train_part) == 0:
        raise ValueError(f"data from {data.label} has no Training rows to learn from")
    if (train_part.emotions < 0).any():
        raise ValueError("Training rows without an emotion (the challenge's test.csv) cannot be trained on")
    ckpt = Path(str(out) + ".ckpt")
    state = _read_state(ckpt, recipe)
    here = machine()
    precision = "mixed_bfloat16" if recipe.mixed_precision else "float32"
    if recipe.mixed_precision and here["accelerator"] is None and cpu_has_bf16() is False:
        # measured on an AVX-512 Xeon without BF16: 12.7 s per batch of 64 in mixed_bfloat16, 1.4 s in float32
        warnings.warn("mixed_precision=True on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated and about 9x "
                      "slower than float32 here; train without --mixed-precision on this machine (a checkpoint started "
                      "with it resumes without it)", stacklevel=2)
    if recipe.batch_size % here["devices"]:
        raise ValueError(f"batch_size={recipe.batch_size} must be a multiple of the {here['devices']} devices it is "
                         "split across")
    y_train, y_val = targets(recipe, train_part), keras.utils.to_categorical(val_part.emotions, len(EMOTIONS))
    weights = class_weights(train_part.emotions, recipe.class_weight)
    keras.utils.set_random_seed(recipe.seed)
    keras.mixed_precision.set_global_policy(precision)
    if here["devices"] > 1:  # JAX only: each batch is split across the devices, the weights are replicated
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        steps_per_epoch = int(np.ceil(len(train_part) / recipe.batch_size))
        if state:
            net = load_model(ckpt / "last.keras", compile=True)
            if _precision(net) != precision or here["devices"] > 1:
                net = with_precision(net, recipe, steps_per_epoch)
            if verbose:
                print(f"resuming from {ckpt} after epoch {state['epoch']} of {recipe.epochs}, in {precision}")
        else:
            state = {"recipe": recipe.to_dict(), "epoch": 0, "history": {}, "best_val_accuracy": -1.0, "best_epoch": 0,
                     "seconds": 0.0}
            net = _compiled(recipe, steps_per_epoch)
            if recipe.init:
                start = load_model(recipe.init)
                if [w.shape for w in start.weights] != [w.shape for w in net.weights]:
                    raise ValueError(f"init={recipe.init!r} is another network than the recipe's {recipe.model} "
                                     f"{recipe.model_kwargs}; pass the same --model and --model-kwargs it was trained with")
                net.set_weights(start.get_weights())
        state.setdefault("precision_epochs", {})
        for epoch in range(state["epoch"], recipe.epochs):
            # the order depends only on (seed, epoch), so a resumed run sees the same batches as an unbroken one
            order = np.random.default_rng([recipe.seed, epoch]).permutation(len(train_part))
            t0 = time.perf_counter()
            h = net.fit(
                train_part.images[order], y_train[order], batch_size=recipe.batch_size, epochs=epoch + 1,
                initial_epoch=epoch, shuffle=False, validation_data=(val_part.images, y_val), class_weight=weights,
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
                save_model(net, ckpt / "best.keras", litert=False)
            save_model(net, ckpt / "last.keras", litert=False)
            write_atomic(ckpt / "state.json", json.dumps(state, indent=1))  # written last: it vouches for the two files above
            if verbose:
                print(
                    f"epoch {epoch + 1}/{recipe.epochs}: train acc {state['history']['accuracy'][-1]:.4f}, "
                    f"PublicTest acc {val_acc:.4f} (best {state['best_val_accuracy']:.4f} at {state['best_epoch']}), "
                    f"{seconds:.0f}s",
                    flush=True,
                )
        best = load_model(ckpt / "best.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.distribution.set_distribution(None)
    final = build_model(recipe.model, seed=recipe.seed, **recipe.model_kwargs)  # float32 copy: runs on any CPU
    final.set_weights(best.get_weights())
    info = {
        "model": recipe.model,
        "emotions": list(EMOTIONS),
        "recipe": recipe.to_dict(),
        "machine": here,
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "val_split": "PublicTest" if "PublicTest" in data.split_names else "10% of Training",
        "val_accuracy": state["best_val_accuracy"],
        "train_seconds": state["seconds"],
        "precision_epochs": state["precision_epochs"],
        "params": int(final.count_params()),
        "flops": count_flops(final),
        "data": data_record(data) | {"n_train": len(train_part), "n_val": len(val_part)},
    }
    save_model(final, out, info)
    shutil.rmtree(ckpt, ignore_errors=True)
    return info


def data_record(data: FERData) -> dict:
    """The data's file name and sha256 (see :attr:`FERData.origin`) and whether it is the synthetic default."""
    return data.origin | {"synthetic": data.synthetic}


def _compiled(recipe: Recipe, steps_per_epoch: int) -> keras.Model:
    """A new network of ``recipe``, compiled with its optimizer: AdamW, linear warm-up then cosine decay."""
    net = build_model(recipe.model, seed=recipe.seed, **recipe.model_kwargs)
    steps = recipe.epochs * steps_per_epoch
    warmup = min(recipe.warmup_epochs * steps_per_epoch, steps // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(steps - warmup, 1), warmup_target=recipe.learning_rate, warmup_steps=warmup
    )
    net.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    return net


def _precision(net: keras.Model) -> str:
    """The dtype policy the network computes in (that of its first layer with weights)."""
    return next(layer for layer in walk_layers(net) if layer.weights).dtype_policy.name


def with_precision(saved: keras.Model, recipe: Recipe | dict, steps_per_epoch: int) -> keras.Model:
    """``saved`` (a compiled checkpoint of ``recipe``) rebuilt under the current dtype policy and distribution, with
    its weights and optimizer state (step count, moments): a loaded model keeps the policy it was saved with."""
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
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


def _read_state(ckpt: Path, recipe: Recipe) -> dict | None:
    f = ckpt / "state.json"
    if not f.exists() or not (ckpt / "last.keras").exists():
        return None
    state = json.loads(f.read_text())
    # the precision is how fast the same recipe runs on this machine, not part of it: a run started in
    # mixed_bfloat16 on one machine resumes in float32 on a machine without native bfloat16
    saved = dataclasses.replace(Recipe.from_dict(state.get("recipe", {})), mixed_precision=recipe.mixed_precision)
    if saved != recipe:
        raise ValueError(
            f"checkpoint {ckpt} was made with another recipe ({state.get('recipe')}); "
            f"pass the same arguments to resume, or delete {ckpt} to start over"
        )
    return state
