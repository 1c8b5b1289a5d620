"""Train any model on FER data: official splits, seeded, checkpointed every epoch, resumable after a kill.

Train on Training, select the epoch on PublicTest, never look at PrivateTest. A labelled collection of your own faces
(:func:`fer_utils.collection.load_faces`) has no PublicTest: a seeded hold-out of its faces, stratified by emotion and
optionally grouped by person, chooses the epoch instead (the model's card then reports on it before and after
fine-tuning: :func:`fer_utils.card.write_card`). The checkpoint folder ``<out>.ckpt/`` holds the last epoch (with
optimizer state) and the best one so far; rerunning the same command resumes from it, in this session or a later
one (in another clone, from the file :func:`write_resume` makes). When training ends the best epoch is saved to
``out`` in float32 with its training record, and the checkpoint folder is removed.

Every choice of a run is one field of :class:`Recipe`: ``train``'s keywords, the command line's flags and the
cards' commands are all made from it. Training runs on any Keras backend (``KERAS_BACKEND=jax`` on a GPU needs no
TensorFlow); on JAX with several devices, batches are split across them with Keras' ``DataParallel``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from fer_utils.atomic import atomic_path, write_atomic
from fer_utils.constants import EMOTIONS
from fer_utils.distill import distiller
from fer_utils.litert import quiet_native_logs
from fer_utils.loader import FERData
from fer_utils.models import build_model, count_flops, load_model, save_model, walk_layers
from fer_utils.recipe import Recipe
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


def validation_split(data: FERData, seed: int = 0, *, holdout: float = 0.2,
                     group_by: str | None = None) -> tuple[FERData, FERData]:
    """(train, validation): Training and PublicTest. For a labelled face collection, its train/ and test/ folders
    where it has both, else its faces less a seeded ``holdout`` share of them (:func:`holdout_mask`: stratified by
    emotion; with ``group_by``, whole people, see :func:`people`). Other data without PublicTest: a seeded 10% of
    Training."""
    if group_by is not None and data.files is None:
        raise ValueError(f"group_by={group_by!r} needs the faces' file names, which {data.label} has not: it applies "
                         "to a collection of your own faces (--data FOLDER)")
    if "PublicTest" in data.split_names:
        return data.split("Training"), data.split("PublicTest")
    if data.collection is not None:
        present = np.unique(data.emotions[data.emotions >= 0])
        if len(present) < 2:
            raise ValueError(f"{data.label} has faces of one emotion only ({', '.join(EMOTIONS[e] for e in present)}): "
                             "training needs at least two emotions; add folders of the others")
        if {"Training", "Test"} <= set(data.split_names):
            if group_by is not None:
                warnings.warn(f"group_by={group_by!r} is not used: the collection's test/ folder is the hold-out",
                              stacklevel=2)
            return data.split("Training"), data.split("Test")
        hold = holdout_mask(data.emotions, holdout, seed, None if group_by is None else people(data.files, group_by))
        return data.take(~hold), data.take(hold)
    train = data.split("Training")
    rng = np.random.default_rng(seed)
    hold = np.zeros(len(train), bool)
    hold[rng.permutation(len(train))[: max(1, len(train) // 10)]] = True
    return train.take(~hold), train.take(hold)


def holdout_mask(emotions: np.ndarray, fraction: float, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Which faces to hold out (a boolean mask): about ``fraction`` of each emotion's faces, seeded. With ``groups``
    (the person of each face) whole people: the first of ``round(1 / fraction)`` folds of scikit-learn's
    StratifiedGroupKFold, so that no person is on both sides. Every emotion is on both sides, or a ValueError says
    which is not and what to add."""
    emotions = np.asarray(emotions)
    present, counts = np.unique(emotions, return_counts=True)
    if (counts < 2).any():
        e, n = EMOTIONS[present[counts < 2][0]], counts[counts < 2][0]
        raise ValueError(f"too few faces for a hold-out of every emotion: {e} has {n}; each emotion needs at least 2 "
                         f"(one to learn from, one to test on): add faces of {e}, or move them out of the collection")
    hold = np.zeros(len(emotions), bool)
    if groups is None:
        rng = np.random.default_rng(seed)
        for e, n in zip(present, counts, strict=True):
            rows = rng.permutation(np.flatnonzero(emotions == e))
            hold[rows[: min(max(1, round(fraction * n)), n - 1)]] = True
        return hold
    groups = np.asarray(groups)
    n_folds, n_people = max(2, round(1 / fraction)), len(np.unique(groups))
    if n_people < n_folds:
        raise ValueError(f"too few people for a hold-out of whole people: group_by found {n_people}, a {fraction:.0%} "
                         f"hold-out needs at least {n_folds}; add faces of more people, or raise holdout")
    folds = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # an emotion with fewer faces than folds: checked below, where it matters
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        hold[next(folds.split(emotions, emotions, groups))[1]] = True
    for side, name in ((hold, "hold-out"), (~hold, "faces to learn from")):
        missing = np.setdiff1d(present, emotions[side])
        if len(missing):
            e = EMOTIONS[missing[0]]
            raise ValueError(f"too few faces for a hold-out of every emotion: grouped by person, the {name} have no "
                             f"{e} face; add {e} faces of more people")
    return hold


def people(files: np.ndarray, pattern: str) -> np.ndarray:
    """The person of each face: the first group of the regex ``pattern`` (else its whole match) searched in the
    face's file path. A path it does not match is a person of its own (counted in a warning); none matched is an
    error."""
    regex = re.compile(pattern)
    found = [regex.search(f) for f in files]
    unmatched = [str(f) for f, m in zip(files, found, strict=True) if m is None]
    if len(unmatched) == len(files):
        raise ValueError(f"group_by={pattern!r} matches none of the {len(files)} file names (e.g. {str(files[0])!r});"
                         r" its first group, or the whole match, names the person: e.g. '^(\w+?)_' for anna_happy_1.jpg")
    if unmatched:
        warnings.warn(f"group_by={pattern!r} matches {len(files) - len(unmatched)} of {len(files)} file names; the "
                      f"other {len(unmatched)} (e.g. {unmatched[0]!r}) count as a person each", stacklevel=2)
    first = 1 if regex.groups else 0
    return np.array([f"file {f}" if m is None else m.group(first) or m.group(0) for f, m in zip(files, found, strict=True)])


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
    one-hot (knowledge distillation at temperature 1: the teacher's answers are the soft half of the targets). With
    ``distill="consistent"`` one-hot: the teacher answers in each step instead (:mod:`fer_utils.distill`)."""
    onehot = keras.utils.to_categorical(part.emotions, len(EMOTIONS))
    if recipe.teacher is None or recipe.distill == "consistent":
        return onehot
    teacher = load_model(recipe.teacher)
    soft = np.mean([teacher.predict(v, batch_size=512, verbose=0) for v in (part.images, part.images[:, :, ::-1])], 0)
    return (recipe.teacher_weight * soft + (1 - recipe.teacher_weight) * onehot).astype("float32")


def train(model: str | Recipe, data: FERData, out: str | os.PathLike, *, verbose: int = 1, **fields) -> dict:
    """Train ``model`` (a :class:`Recipe`, or a name from :data:`fer_utils.models.MODELS` with the recipe's fields
    as keywords, e.g. ``epochs=3``) and save the best epoch to ``out``.

    Returns the training record also stored in the model file: recipe, machine, per-epoch history, best epoch,
    PublicTest (or hold-out) accuracy, parameters, FLOPs and training time; for a collection of faces, the files
    of its hold-out (``data["holdout_files"]``), which the model's card scores.
    """
    recipe = dataclasses.replace(model, **fields) if isinstance(model, Recipe) else Recipe(model=model, **fields)
    out = Path(out)
    train_part, val_part = validation_split(data, recipe.seed, holdout=recipe.holdout, group_by=recipe.group_by)
    if len(train_part) == 0:
        raise ValueError(f"data from {data.label} has no Training rows to learn from")
    if (train_part.emotions < 0).any():
        raise ValueError("Training rows without an emotion (the challenge's test.csv) cannot be trained on")
    val_name = "hold-out" if data.collection is not None else "PublicTest"
    start = load_model(recipe.init) if recipe.init else None
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
        if not state and resume_path(out).is_file():  # a run carried over from an earlier session
            state = _restore_resume(out, ckpt, recipe, steps_per_epoch)
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
            if start is not None:
                if [w.shape for w in start.weights] != [w.shape for w in net.weights]:
                    raise ValueError(f"init={recipe.init!r} is another network than the recipe's {recipe.model} "
                                     f"{recipe.model_kwargs}; pass the same --model and --model-kwargs it was trained with")
                net.set_weights(start.get_weights())
        state.setdefault("precision_epochs", {})
        # consistent distillation fits a Distiller around the student; the student is still what is saved
        trainer = net if recipe.distill == "precomputed" else distiller(
            net, load_model(recipe.teacher), teacher_weight=recipe.teacher_weight, mixup=recipe.mixup, seed=recipe.seed)
        for epoch in range(state["epoch"], recipe.epochs):
            # the order and the draws depend only on (seed, epoch), so a resumed run sees the same batches as an
            # unbroken one, augmented alike
            order = np.random.default_rng([recipe.seed, epoch]).permutation(len(train_part))
            restart_draws(trainer, recipe.seed, epoch)
            t0 = time.perf_counter()
            h = trainer.fit(
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
                    f"{val_name} acc {val_acc:.4f} (best {state['best_val_accuracy']:.4f} at {state['best_epoch']}), "
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
        "val_split": _val_split_text(data, recipe),
        "val_accuracy": state["best_val_accuracy"],
        "train_seconds": state["seconds"],
        "precision_epochs": state["precision_epochs"],
        "params": int(final.count_params()),
        "flops": count_flops(final),
        "data": data_record(data) | {"n_train": len(train_part), "n_val": len(val_part)},
    }
    if data.collection is not None:
        info["data"]["holdout_files"] = val_part.files.tolist()  # the card scores the same faces
    save_model(final, out, info)
    shutil.rmtree(ckpt, ignore_errors=True)
    resume_path(out).unlink(missing_ok=True)  # the run has ended: its carried-over state goes with its checkpoint
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


def _val_split_text(data: FERData, recipe: Recipe) -> str:
    """What chose the epoch, in words that follow "chosen on"."""
    if "PublicTest" in data.split_names:
        return "PublicTest"
    if data.collection is None:
        return "10% of Training"
    if {"Training", "Test"} <= set(data.split_names):
        return "the collection's test/ folder"
    people = f", grouped by person (group_by {recipe.group_by})" if recipe.group_by else ""
    return f"a {recipe.holdout:.0%} hold-out of the collection, stratified by emotion{people}"


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

RESUME_SUFFIX = ".resume.npz"
RESUME_MAX_BYTES = 8 * 2**20  # what one run may commit once per session


def resume_path(out: str | os.PathLike) -> Path:
    """Where a run's carried-over state lives: ``models/x.keras`` -> ``models/x.resume.npz``."""
    out = Path(out)
    return out.with_name(out.stem + RESUME_SUFFIX)


def _to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to bfloat16 (to nearest, ties to even), as the uint16 of its upper half."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _from_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_resume(out: str | os.PathLike) -> Path:
    """The state of the run writing ``out`` (its ``OUT.ckpt/``: last epoch's weights and optimizer state, history,
    best so far) as one small file to commit, ``OUT.resume.npz``: weights and optimizer moments in bfloat16
    (vgg8-size nets: about 6 MB), the step count exact. ``train`` with the same recipe resumes from it where there is
    no checkpoint folder (a fresh clone) and deletes it when the run ends."""
    out = Path(out)
    ckpt = Path(str(out) + ".ckpt")
    if not (ckpt / "state.json").is_file() or not (ckpt / "last.keras").is_file():
        raise FileNotFoundError(f"no checkpoint at {ckpt}: start the run with `python -m fer_utils train ... --out {out}`")
    net = load_model(ckpt / "last.keras", compile=True)
    arrays = {f"w{i}": _to_bfloat16(w) for i, w in enumerate(net.get_weights())}
    for i, v in enumerate(net.optimizer.variables):
        value = np.asarray(v)
        arrays[f"o{i}"] = value if value.dtype.kind in "iu" else _to_bfloat16(value)
    path = resume_path(out)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, state=np.array((ckpt / "state.json").read_text()), **arrays)
    if path.stat().st_size > RESUME_MAX_BYTES:
        warnings.warn(f"{path} is {path.stat().st_size / 2**20:.1f} MiB, more than the {RESUME_MAX_BYTES // 2**20} MiB "
                      "a run may commit", stacklevel=2)
    return path


def _restore_resume(out: Path, ckpt: Path, recipe: Recipe, steps_per_epoch: int) -> dict:
    """``OUT.ckpt/`` rebuilt from ``OUT.resume.npz`` under the current precision; its state. The file holds the last
    epoch only (the best one's weights would not fit in 8 MB), so the last epoch becomes the best so far."""
    path = resume_path(out)
    try:
        with np.load(path, allow_pickle=False) as z:
            state = json.loads(str(z["state"]))
            weights = [_from_bfloat16(z[f"w{i}"]) for i in range(sum(k[0] == "w" for k in z.files))]
            moments = [z[f"o{i}"] for i in range(sum(k[0] == "o" for k in z.files))]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a resume file of fer_utils ({e}); delete it to start the run over") from e
    _check_same_recipe(state, recipe, path)
    net = _compiled(recipe, steps_per_epoch)
    net.optimizer.build(net.trainable_variables)
    net.set_weights(weights)
    for variable, value in zip(net.optimizer.variables, moments, strict=True):
        variable.assign(value if value.dtype.kind in "iu" else _from_bfloat16(value))
    state["best_val_accuracy"], state["best_epoch"] = state["history"]["val_accuracy"][-1], state["epoch"]
    save_model(net, ckpt / "last.keras", litert=False)
    save_model(net, ckpt / "best.keras", litert=False)
    write_atomic(ckpt / "state.json", json.dumps(state, indent=1))
    return state
