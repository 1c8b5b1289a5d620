"""The networks, in plain Keras layers. Every model takes raw uint8 48x48 gray faces and returns 7 probabilities.

Scaling and augmentation live inside the model, so training, evaluation, the recognizer and the webcam can never
preprocess differently. Augmentation layers are active only in training; every layer is a built-in one, so each
saved model loads with ``safe_mode=True``.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from fer_utils.atomic import atomic_path
from fer_utils.constants import EMOTIONS, SIDE
from fer_utils.litert import litert_path
from fer_utils.quiet import quiet_native_logs, quiet_tensorflow_log
from fer_utils.shipped import INFO_NAME, check_model_file, read_info

with quiet_native_logs():  # TensorFlow's oneDNN start-up line, which TF_CPP_MIN_LOG_LEVEL does not hide
    import keras
    from keras import layers

TTA_MODES = ("flip", "shift")
SHIFTS = ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))  # pixels (dx, dy); chosen on PublicTest (see the vgg8 card)


def tta_views(images: np.ndarray, tta: bool | str = False) -> list[np.ndarray]:
    """The views of uint8 ``(N, 48, 48)`` faces that test-time augmentation averages over: the faces alone
    (``tta=False``); them and their mirror images (``True`` or ``"flip"``); or both, each also moved 2 px left,
    right, up and down, edges replicated (``"shift"``: 10 views)."""
    if tta is True:
        tta = "flip"
    if tta not in (False, None, *TTA_MODES):
        raise ValueError(f"tta must be False, True or one of {list(TTA_MODES)}; got {tta!r}")
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (48, 48):
        raise ValueError(f"images must have shape (N, 48, 48); got {images.shape}")
    shifts = SHIFTS if tta == "shift" else SHIFTS[:1]
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)), mode="edge") if tta == "shift" else None
    views = []
    for dx, dy in shifts:
        view = images if padded is None else padded[:, 2 - dy:50 - dy, 2 - dx:50 - dx]
        views += [np.ascontiguousarray(view)] + ([np.ascontiguousarray(view[:, :, ::-1])] if tta else [])
    return views


def predict_proba(model: keras.Model, images: np.ndarray, *, tta: bool | str = False, batch_size: int = 512) -> np.ndarray:
    """Seven probabilities per face for uint8 ``(N, 48, 48)`` faces, averaged over the :func:`tta_views`."""
    return predict_views(model, tta_views(images, tta), batch_size)


def predict_views(model: keras.Model, views: list[np.ndarray], batch_size: int = 512) -> np.ndarray:
    """The mean of ``model``'s probabilities over several views of the same faces, in float64."""
    with quiet_tensorflow_log():  # each model predicts with its own graph: comparing several is not retracing by mistake
        return np.mean([np.asarray(model.predict(v, batch_size=batch_size, verbose=0), np.float64) for v in views], axis=0)


MODELS = ("lenet", "vgg", "resnet")


def build_augmentation(strength: float = 1.0, seed: int = 0, erasing: float = 0.0, photometric: float = 0.0) -> keras.Sequential:
    """Random horizontal flip, rotation, shift, zoom and contrast; with ``erasing``, random erasing; with
    ``photometric``, also what webcams change: brightness, blur and sensor noise. Identity outside training."""
    extra = [layers.RandomErasing(erasing, scale=(0.02, 0.2), value_range=(0, 1), seed=seed + 5)] if erasing else []
    if photometric:
        extra += [
            layers.RandomBrightness(0.3 * photometric, value_range=(0, 1), seed=seed + 6),
            layers.RandomGaussianBlur(0.5 * photometric, kernel_size=5, sigma=1.0, value_range=(0, 1), seed=seed + 7),
            layers.GaussianNoise(0.04 * photometric, seed=seed + 8),  # about 10 grey levels
        ]
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),  # the default also flips vertically: faces are never upside down
            layers.RandomRotation(0.05 * strength, fill_mode="nearest", seed=seed + 1),
            layers.RandomTranslation(0.1 * strength, 0.1 * strength, fill_mode="nearest", seed=seed + 2),
            layers.RandomZoom(0.1 * strength, fill_mode="nearest", seed=seed + 3),
            layers.RandomContrast(0.2 * strength, value_range=(0, 1), seed=seed + 4),
            *extra,
        ],
        name="augmentation",
    )


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input((SIDE, SIDE), dtype="uint8", name="face")
    x = layers.Reshape((SIDE, SIDE, 1))(inputs)
    x = layers.Rescaling(1 / 255, name="scale")(x)
    return inputs, x


def _head(x, units: tuple[int, ...], dropout: float):
    for u in units:
        x = layers.Dropout(dropout)(x)
        x = layers.Dense(u, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(len(EMOTIONS))(x)
    # float32 softmax even under mixed_bfloat16: probabilities must sum to 1 at full precision
    return layers.Activation("softmax", dtype="float32", name="emotion")(x)


def build_lenet(filters: tuple[int, int] = (64, 128), units: tuple[int, ...] = (512, 256), dropout: float = 0.4,
                augment: float = 1.0, seed: int = 0) -> keras.Model:
    """LeNet-5's layout for 48x48: two stages of 5x5 conv and 2x2 max-pool, then fully connected layers.

    Wider than the 1998 original (6/16 filters) and with batch norm and dropout; the two-stage layout is kept.
    """
    inputs, x = _inputs()
    if augment:
        x = build_augmentation(augment, seed)(x)
    for f in filters:
        x = layers.Conv2D(f, 5, padding="valid", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, _head(x, units, dropout), name="lenet")


def build_vgg(filters: tuple[int, ...] = (64, 128, 256, 512), units: tuple[int, ...] = (512,), dropout: float = 0.4,
              augment: float = 1.0, erasing: float = 0.0, photometric: float = 0.0, seed: int = 0) -> keras.Model:
    """A VGG-style net: per stage two 3x3 conv + batch norm + ReLU, then max-pool; global average pool head.

    ``erasing`` is the share of training faces that get a random rectangle blanked (random erasing);
    ``photometric`` the strength of brightness, blur and noise augmentation (see :func:`build_augmentation`).
    """
    inputs, x = _inputs()
    if augment:
        x = build_augmentation(augment, seed, erasing, photometric)(x)
    for f in filters:
        for _ in range(2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, units, dropout), name="vgg")


def build_resnet(filters: tuple[int, ...] = (32, 64, 128, 256), units: tuple[int, ...] = (256,), dropout: float = 0.3,
                 augment: float = 1.0, erasing: float = 0.0, photometric: float = 0.0, seed: int = 0) -> keras.Model:
    """A small ResNet: a 3x3 stem, then per stage one residual block of two 3x3 convs (the first of each later stage
    with stride 2 instead of max-pooling, a 1x1 projection on the skip), global average pool head. With the default
    filters it costs about what vgg8 costs (285 vs 235 MFLOPs a face) and errs differently: an ensemble member.
    """
    inputs, x = _inputs()
    if augment:
        x = build_augmentation(augment, seed, erasing, photometric)(x)
    x = layers.Conv2D(filters[0], 3, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for i, f in enumerate(filters):
        stride = 1 if i == 0 else 2
        skip = x
        if stride != 1 or skip.shape[-1] != f:
            skip = layers.BatchNormalization()(layers.Conv2D(f, 1, strides=stride, use_bias=False)(skip))
        y = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(f, 3, padding="same", use_bias=False)(y))
        x = layers.ReLU()(layers.Add()([skip, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, units, dropout), name="resnet")


def build_model(name: str, **kwargs) -> keras.Model:
    """Build a model by name: one of :data:`MODELS`."""
    builders = {"lenet": build_lenet, "vgg": build_vgg, "resnet": build_resnet}
    if name not in builders:
        raise ValueError(f"model {name!r} is unknown; expected one of {list(builders)}")
    return builders[name](**kwargs)


def build_ensemble(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model that averages the probabilities of ``members``: same uint8 input, one file, one call."""
    names = [m.name for m in members]
    if len(members) < 2 or len(set(names)) != len(names):
        raise ValueError(f"members must be two or more models with distinct names; got {names}")
    inputs = keras.Input((SIDE, SIDE), dtype="uint8", name="face")
    return keras.Model(inputs, layers.Average(name="emotion")([m(inputs) for m in members]), name=name)


def save_ensemble(member_paths: list[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Average the saved models at ``member_paths`` into one ``.keras`` file; returns the record stored inside."""
    members = [load_model(p) for p in member_paths]
    for member, p in zip(members, member_paths, strict=True):
        # two seeds of one recipe share the name "vgg", which Keras refuses inside one model; the file stem differs
        member.name = re.sub(r"\W", "_", Path(p).stem)
    ensemble = build_ensemble(members)
    infos = [read_info(p) for p in member_paths]
    info = {
        "model": "ensemble",
        "members": [Path(p).name for p in member_paths],
        "emotions": list(EMOTIONS),
        "train_seconds": sum(i.get("train_seconds") or 0 for i in infos),
        "machine": infos[0].get("machine"),
        "params": int(ensemble.count_params()),
        "flops": count_flops(ensemble),
        "data": infos[0].get("data"),
    }
    save_model(ensemble, out, info)
    return info


def correct_priors(model: keras.Model, prior: np.ndarray, tau: float) -> keras.Model:
    """A copy of ``model`` whose probabilities are divided by ``prior ** tau`` and renormalised (logit adjustment,
    Menon et al. 2021): rarer emotions (disgust, 1.5% of Training) are answered more often, which trades a little
    accuracy for recall on them. Done by moving the bias of the layer before the softmax, so the copy has the
    same layers, speed and file format.
    """
    prior = np.asarray(prior, np.float64)
    if prior.shape != (len(EMOTIONS),) or (prior <= 0).any():
        raise ValueError(f"prior must be {len(EMOTIONS)} positive emotion shares; got {prior}")
    if not isinstance(model.layers[-1], layers.Activation) or not isinstance(model.layers[-2], layers.Dense):
        raise ValueError(f"model {model.name!r} must end in Dense then softmax (a lenet or vgg), not an ensemble")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    kernel, bias = copy.layers[-2].get_weights()
    copy.layers[-2].set_weights([kernel, bias - tau * np.log(prior / prior.sum())])
    return copy


def count_flops(model: keras.Model) -> int:
    """Multiply-accumulates x2 of one forward pass on one face (convolutions and dense layers)."""
    flops = 0
    for layer in walk_layers(model):
        if isinstance(layer, layers.Conv2D):
            k = layer.kernel.shape
            out = layer.output.shape
            flops += 2 * k[0] * k[1] * k[2] * k[3] * out[1] * out[2]
        elif isinstance(layer, layers.Dense):
            flops += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(flops)


def walk_layers(model: keras.Model):
    """Every layer of ``model``, descending into nested models (the augmentation block, ensemble members)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer)
        else:
            yield layer


# ----------------------------------------------------------------------------------------------- saving


def save_model(model: keras.Model, path: str | os.PathLike, info: dict | None = None, *, litert: bool = True) -> Path:
    """Save atomically (temp file, then rename) as ``.keras``, with ``info`` (history, recipe) inside the file, and
    with ``litert`` its ``.tflite`` (:func:`~fer_utils.litert.litert_path`: beside it, or in ``fer_utils/networks/``
    for a model in ``models/``): what the recognizer runs, without TensorFlow. Without it, or where the export fails
    (another Keras backend with no TensorFlow installed), no stale ``.tflite`` of an older model stays there."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path {str(path)!r} must end in .keras (Keras 3 format)")
    beside = litert_path(path)
    beside.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(INFO_NAME, json.dumps(info or {}, indent=1, default=_json_default))
    if litert:
        try:
            export_litert(model, beside)
        except Exception as e:
            warnings.warn(f"saved {path} without {beside.name} ({type(e).__name__}: {e}); run `python -m fer_utils "
                          f"export {path}` where TensorFlow is installed", stacklevel=2)
    return path


def load_model(path: str | os.PathLike, *, compile: bool = False) -> keras.Model:
    """Load a ``.keras`` model with ``safe_mode=True``; a missing or corrupt file gets an error that says so."""
    path = check_model_file(path)
    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as e:
        raise ValueError(f"model file {path} could not be loaded ({type(e).__name__}: {e}); retrain it or restore it") from e


def export_litert(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write the inference graph (uint8 (N, 48, 48) faces in, any N; probabilities out) as a LiteRT ``.tflite`` file,
    atomically. LiteRT's XNNPACK kernels run one face 2-3x faster than TensorFlow on this CPU, with the same outputs
    (to 1e-6).
    """
    with atomic_path(path) as tmp, quiet_native_logs(), quiet_tensorflow_log():  # the converter's MLIR lines, "Assets written"
        model.export(tmp, format="litert", verbose=False)
    return Path(path)


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
