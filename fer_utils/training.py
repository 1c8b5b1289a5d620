"""Train any model on FER data: official splits, seeded, checkpointed every epoch, resumable after a kill.

Train on Training, select the epoch on PublicTest, never look at PrivateTest. A labelled collection of your own faces
has no PublicTest: a seeded hold-out of its faces chooses the epoch instead (the rule: :func:`fer_utils.data.validation_split`;
the model's card then reports on it before and after fine-tuning: :func:`fer_utils.card.write_card`). The checkpoint folder ``<out>.ckpt/`` holds the last epoch (with
optimizer state) and the best one so far; rerunning the same command resumes from it, in this session or a later
one (in another clone, from the file :func:`write_resume` makes). When training ends the best epoch is saved to
``out`` in float32 with its training record, and the checkpoint folder is removed.

Every choice of a run is one field of :class:`Recipe`: ``train``'s keywords, the command line's flags and the
cards' commands are all made from it. Training runs on any Keras backend (``KERAS_BACKEND=jax`` on a GPU needs no
TensorFlow); on JAX with several devices, batches are split across them with Keras' ``DataParallel``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fer_utils.atomic import write_atomic
from fer_utils.constants import EMOTIONS
from fer_utils.data import validation_name, validation_split
from fer_utils.distill import distiller
from fer_utils.loader import FERData
from fer_utils.models import build_model, count_flops, load_model, predict_proba, save_model, walk_layers
from fer_utils.quiet import quiet_native_logs
from fer_utils.recipe import Recipe, class_weights
from fer_utils.resume import RESUME_MAX_BYTES, read_arrays, resume_path, write_arrays
from fer_utils.synthetic import GENERATED_MARKER

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


def targets(recipe: Recipe, part: FERData) -> np.ndarray:
    """One-hot emotions, or with a teacher ``teacher_weight`` of its flip-averaged probabilities plus the rest
    one-hot (knowledge distillation at temperature 1: the teacher's answers are the soft half of the targets). With
    ``distill="consistent"`` one-hot: the teacher answers in each step instead (:mod:`fer_utils.distill`)."""
    onehot = keras.utils.to_categorical(part.emotions, len(EMOTIONS))
    if recipe.teacher is None or recipe.distill == "consistent":
        return onehot
    soft = predict_proba(load_model(recipe.teacher), part.images, tta="flip")
    return (recipe.teacher_weight * soft + (1 - recipe.teacher_weight) * onehot).astype("float32")


def train(model: str | Recipe, data: FERData, out: str | os.PathLike, *, verbose: int = 1, **fields) -> dict:
    """Train ``model`` (a :class:`Recipe`, or a name from :data:`fer_utils.models.MODELS` with the recipe's fields
    as keywords, e.g. ``epochs=3``) and save the best epoch to ``out``.

    Returns the training record also stored in the model file: recipe, machine, per-epoch history, best epoch,
    PublicTest (or hold-out) accuracy, parameters, FLOPs and training time; for a collection of faces, the files
    of its hold-out (``data["holdout_files"]``), which the model's card scores.
    """
    recipe = dataclasses.replace(model, **fields) if isinstance(model, Recipe) else Recipe(model=model, **fields)
    out, ckpt = Path(out), checkpoint_dir(out)
    train_part, val_part = _parts(data, recipe)
    start = load_model(recipe.init) if recipe.init else None
    state = _read_state(ckpt, recipe)
    here = machine()
    precision = _precision_here(recipe, here)
    y_train, y_val = targets(recipe, train_part), keras.utils.to_categorical(val_part.emotions, len(EMOTIONS))
    keras.utils.set_random_seed(recipe.seed)
    steps_per_epoch = int(np.ceil(len(train_part) / recipe.batch_size))
    with _policy(precision, here["devices"]):
        if not state and resume_path(out).is_file():  # a run carried over from an earlier session
            state = _restore_resume(out, ckpt, recipe, steps_per_epoch)
        net, state = _resumed(ckpt, state, recipe, steps_per_epoch, verbose) if state else _started(
            recipe, start, steps_per_epoch)
        # consistent distillation fits a Distiller around the student; the student is still what is saved
        trainer = net if recipe.distill == "precomputed" else distiller(
            net, load_model(recipe.teacher), teacher_weight=recipe.teacher_weight, mixup=recipe.mixup, seed=recipe.seed)
        fit = {"validation_data": (val_part.images, y_val), "batch_size": recipe.batch_size, "verbose": verbose,
               "class_weight": class_weights(train_part.emotions, recipe.class_weight)}
        if verbose:
            print(f"{recipe.model} learns on {len(train_part)} faces; the epoch is chosen on "
                  f"{validation_name(data, recipe.holdout, recipe.group_by)} ({len(val_part)} faces)", flush=True)
        for epoch in range(state["epoch"], recipe.epochs):
            _train_epoch(trainer, (train_part.images, y_train), fit, recipe.seed, epoch, state)
            _checkpoint(net, ckpt, state, precision)
            if verbose:
                print(_epoch_line(state, recipe), flush=True)
        best = load_model(ckpt / "best.keras")
    final = build_model(recipe.model, seed=recipe.seed, **recipe.model_kwargs)  # float32 copy: runs on any CPU
    final.set_weights(best.get_weights())
    info = _record(recipe, data, (train_part, val_part), state, here) | {"params": int(final.count_params()),
                                                                         "flops": count_flops(final)}
    save_model(final, out, info)
    shutil.rmtree(ckpt, ignore_errors=True)
    resume_path(out).unlink(missing_ok=True)  # the run has ended: its carried-over state goes with its checkpoint
    return info


def checkpoint_dir(out: str | os.PathLike) -> Path:
    """Where a run keeps its last and best epochs while it trains: ``models/x.keras`` -> ``models/x.keras.ckpt/``."""
    return Path(str(out) + ".ckpt")


def _parts(data: FERData, recipe: Recipe) -> tuple[FERData, FERData]:
    """The faces to learn from and those that choose the epoch (:func:`fer_utils.data.validation_split`)."""
    train_part, val_part = validation_split(data, recipe.seed, holdout=recipe.holdout, group_by=recipe.group_by)
    if len(train_part) == 0:
        raise ValueError(f"data from {data.label} has no Training rows to learn from")
    if (train_part.emotions < 0).any():
        raise ValueError("Training rows without an emotion (the challenge's test.csv) cannot be trained on")
    return train_part, val_part


def _precision_here(recipe: Recipe, here: dict) -> str:
    """The dtype policy the recipe trains in on this machine, with a warning where bfloat16 would be emulated."""
    if recipe.mixed_precision and here["accelerator"] is None and cpu_has_bf16() is False:
        # measured on an AVX-512 Xeon without BF16: 12.7 s per batch of 64 in mixed_bfloat16, 1.4 s in float32
        warnings.warn("mixed_precision=True on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated and about 9x "
                      "slower than float32 here; train without --mixed-precision on this machine (a checkpoint started "
                      "with it resumes without it)", stacklevel=3)
    if recipe.batch_size % here["devices"]:
        raise ValueError(f"batch_size={recipe.batch_size} must be a multiple of the {here['devices']} devices it is "
                         "split across")
    return "mixed_bfloat16" if recipe.mixed_precision else "float32"


@contextlib.contextmanager
def _policy(precision: str, devices: int) -> Iterator[None]:
    """Keras' global dtype policy and, on several devices, data parallelism, inside the block only."""
    keras.mixed_precision.set_global_policy(precision)
    if devices > 1:  # JAX only: each batch is split across the devices, the weights are replicated
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.distribution.set_distribution(None)


def _started(recipe: Recipe, start: keras.Model | None, steps_per_epoch: int) -> tuple[keras.Model, dict]:
    """A new network of ``recipe`` (with the weights of ``start``, the model it fine-tunes) and a new state."""
    net = _compiled(recipe, steps_per_epoch)
    if start is not None:
        if [w.shape for w in start.weights] != [w.shape for w in net.weights]:
            raise ValueError(f"init={recipe.init!r} is another network than the recipe's {recipe.model} "
                             f"{recipe.model_kwargs}; pass the same --arch and --arch-kwargs it was trained with")
        net.set_weights(start.get_weights())
    state = {"recipe": recipe.to_dict(), "epoch": 0, "history": {}, "best_val_accuracy": -1.0, "best_epoch": 0,
             "seconds": 0.0, "precision_epochs": {}}
    return net, state


def _resumed(ckpt: Path, state: dict, recipe: Recipe, steps_per_epoch: int, verbose: int) -> tuple[keras.Model, dict]:
    """The checkpoint's last epoch, in the current precision and on the current devices, and its state."""
    net = load_model(ckpt / "last.keras", compile=True)
    precision = keras.mixed_precision.global_policy().name
    if _precision(net) != precision or keras.distribution.distribution() is not None:
        net = with_precision(net, recipe, steps_per_epoch)
    if verbose:
        print(f"resuming from {ckpt} after epoch {state['epoch']} of {recipe.epochs}, in {precision}")
    return net, state | {"precision_epochs": state.get("precision_epochs", {})}


def _train_epoch(trainer: keras.Model, faces: tuple[np.ndarray, np.ndarray], fit: dict, seed: int, epoch: int,
                 state: dict) -> None:
    """One epoch of ``trainer`` on ``faces`` (images, targets), added to ``state``'s history and time."""
    # the order and the draws depend only on (seed, epoch), so a resumed run sees the same batches as an unbroken
    # one, augmented alike
    order = np.random.default_rng([seed, epoch]).permutation(len(faces[0]))
    restart_draws(trainer, seed, epoch)
    t0 = time.perf_counter()
    h = trainer.fit(faces[0][order], faces[1][order], epochs=epoch + 1, initial_epoch=epoch, shuffle=False, **fit)
    seconds = time.perf_counter() - t0
    for k, v in h.history.items():
        state["history"].setdefault(k, []).append(float(v[-1]))
    state["history"].setdefault("seconds", []).append(seconds)
    state["seconds"] += seconds
    state["epoch"] = epoch + 1


def _checkpoint(net: keras.Model, ckpt: Path, state: dict, precision: str) -> None:
    """Save the epoch just trained as the last one (and the best so far, if it is), then the state that vouches
    for them."""
    state["precision_epochs"][precision] = state["precision_epochs"].get(precision, 0) + 1
    val_acc = state["history"]["val_accuracy"][-1]
    ckpt.mkdir(parents=True, exist_ok=True)
    if val_acc > state["best_val_accuracy"]:
        state["best_val_accuracy"], state["best_epoch"] = val_acc, state["epoch"]
        save_model(net, ckpt / "best.keras", litert=False)
    save_model(net, ckpt / "last.keras", litert=False)
    write_atomic(ckpt / "state.json", json.dumps(state, indent=1))  # written last: it vouches for the two files above


def _epoch_line(state: dict, recipe: Recipe) -> str:
    h = state["history"]
    return (f"epoch {state['epoch']}/{recipe.epochs}: train acc {h['accuracy'][-1]:.4f}, val acc "
            f"{h['val_accuracy'][-1]:.4f} (best {state['best_val_accuracy']:.4f} at {state['best_epoch']}), "
            f"{h['seconds'][-1]:.0f}s")


def _record(recipe: Recipe, data: FERData, parts: tuple[FERData, FERData], state: dict, here: dict) -> dict:
    """The training record saved in the model file (its card reads it)."""
    train_part, val_part = parts
    info = {
        "model": recipe.model,
        "emotions": list(EMOTIONS),
        "recipe": recipe.to_dict(),
        "machine": here,
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "val_split": validation_name(data, recipe.holdout, recipe.group_by),
        "val_accuracy": state["best_val_accuracy"],
        "train_seconds": state["seconds"],
        "precision_epochs": state["precision_epochs"],
        "data": data_record(data) | {"n_train": len(train_part), "n_val": len(val_part)},
    }
    if data.collection is not None:
        info["data"]["holdout_files"] = val_part.files.tolist()  # the card scores the same faces
    return info


def restart_draws(model: keras.Model, seed: int, epoch: int) -> None:
    """Restart every random draw of ``model`` (augmentation, dropout, mixup) from (``seed``, ``epoch``): a ``.keras``
    checkpoint keeps no random state, so without this a run resumed from one would draw differently from an unbroken
    one."""
    states = [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]
    for i, state in enumerate(states):
        start = np.random.default_rng([seed, epoch, i]).integers(2**31)
        state.assign(keras.ops.convert_to_tensor([start, 0], dtype=state.dtype))


def data_record(data: FERData) -> dict:
    """The data's file name and sha256 (see :attr:`FERData.origin`) and whether it is the synthetic default; for a
    collection of faces also how it was labelled, what it left out and skipped, and whether it was generated
    (:func:`fer_utils.synthetic.write_shifted_collection`) rather than real faces."""
    record = data.origin | {"synthetic": data.synthetic}
    if data.collection is not None:
        c = data.collection
        record["collection"] = {"convention": c.get("convention"), "left_out": c.get("left_out"),
                                "skipped": c.get("skipped"), "generated": (Path(c["root"]) / GENERATED_MARKER).is_file()}
    return record


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
    return _rebuilt(recipe, steps_per_epoch, saved.get_weights(), [np.asarray(v) for v in saved.optimizer.variables])


def _rebuilt(recipe: Recipe, steps_per_epoch: int, weights: list[np.ndarray], moments: list[np.ndarray]) -> keras.Model:
    """A new compiled network of ``recipe`` holding ``weights`` and the optimizer state ``moments``."""
    net = _compiled(recipe, steps_per_epoch)
    net.optimizer.build(net.trainable_variables)
    net.set_weights(weights)
    if [tuple(v.shape) for v in net.optimizer.variables] != [tuple(np.shape(m)) for m in moments]:
        raise ValueError("the checkpoint's optimizer state does not fit the network of its recipe; delete the "
                         "checkpoint folder to start over")
    for variable, value in zip(net.optimizer.variables, moments, strict=True):
        variable.assign(value)
    return net


def _read_state(ckpt: Path, recipe: Recipe) -> dict | None:
    f = ckpt / "state.json"
    if not f.exists() or not (ckpt / "last.keras").exists():
        return None
    state = json.loads(f.read_text())
    _check_same_recipe(state, recipe, ckpt)
    return state


def _check_same_recipe(state: dict, recipe: Recipe, where: Path) -> None:
    # the precision is how fast the same recipe runs on this machine, not part of it: a run started in
    # mixed_bfloat16 on one machine resumes in float32 on a machine without native bfloat16
    saved = dataclasses.replace(Recipe.from_dict(state.get("recipe", {})), mixed_precision=recipe.mixed_precision)
    if saved != recipe:
        raise ValueError(f"{where} was made with another recipe ({state.get('recipe')}); pass the same arguments to "
                         f"resume, or delete {where} to start over")


# ----------------------------------------------------------------------------------------------- across sessions


def write_resume(out: str | os.PathLike) -> Path:
    """The state of the run writing ``out`` (its ``OUT.ckpt/``: last epoch's weights and optimizer state, history,
    best so far) as one small file to commit, ``OUT.resume.npz`` (:mod:`fer_utils.resume`): weights and optimizer
    moments in bfloat16 (vgg8-size nets: about 6 MB), the step count exact. ``train`` with the same recipe resumes
    from it where there is no checkpoint folder (a fresh clone) and deletes it when the run ends."""
    out, ckpt = Path(out), checkpoint_dir(out)
    if not (ckpt / "state.json").is_file() or not (ckpt / "last.keras").is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt}: start the run with `python -m fer_utils train ... --out {out}`")
    net = load_model(ckpt / "last.keras", compile=True)
    groups = {"w": net.get_weights(), "o": [np.asarray(v) for v in net.optimizer.variables]}
    path = write_arrays(resume_path(out), groups, json.loads((ckpt / "state.json").read_text()))
    if path.stat().st_size > RESUME_MAX_BYTES:
        warnings.warn(f"{path} is {path.stat().st_size / 2**20:.1f} MiB, more than the {RESUME_MAX_BYTES // 2**20} MiB "
                      "a run may commit", stacklevel=2)
    return path


def _restore_resume(out: Path, ckpt: Path, recipe: Recipe, steps_per_epoch: int) -> dict:
    """``OUT.ckpt/`` rebuilt from ``OUT.resume.npz`` under the current precision; its state. The file holds the last
    epoch only (the best one's weights would not fit in 8 MB), so the last epoch becomes the best so far."""
    path = resume_path(out)
    try:
        groups, state = read_arrays(path)
    except ValueError as e:
        raise ValueError(f"{e}; delete it to start the run over") from e
    _check_same_recipe(state, recipe, path)
    net = _rebuilt(recipe, steps_per_epoch, groups["w"], groups.get("o", []))
    state["best_val_accuracy"], state["best_epoch"] = state["history"]["val_accuracy"][-1], state["epoch"]
    save_model(net, ckpt / "last.keras", litert=False)
    save_model(net, ckpt / "best.keras", litert=False)
    write_atomic(ckpt / "state.json", json.dumps(state, indent=1))
    return state
