"""Every figure the notebooks show: each ``plot_*`` function returns a matplotlib Figure and never calls ``show``.

Titles name the data (``data.label``), so anything drawn from the embedded default visibly says SYNTHETIC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from fer_utils.constants import DOWNLOAD_HINT, EMOTIONS
from fer_utils.loader import FERData

if TYPE_CHECKING:
    # the plots of a network import Keras where they run: they are handed a Keras model, so it is loaded by then,
    # and the data and video plots stay free of TensorFlow's 5-15 s import
    import keras  # handed a Keras model: loaded by then, and the other plots stay free of it


def _show_in_jupyter() -> None:
    """Give Figures a PNG display in IPython: figures made outside pyplot have none until a backend is activated."""
    try:  # IPython: there inside Jupyter, maybe not in a script that draws figures
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None:
        ip.display_formatter.formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


_show_in_jupyter()


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs):
    # a Figure outside pyplot: no global state, and Jupyter shows the returned figure exactly once
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kwargs)


PALETTE = dict(zip(EMOTIONS, sns.color_palette("tab10", len(EMOTIONS)), strict=True))


def banner(data: FERData):
    """An HTML notice for the top of a notebook: a loud warning for the synthetic default, the source otherwise."""
    from IPython.display import HTML  # IPython: as in _show_in_jupyter

    if data.synthetic:
        return HTML(
            '<div style="border:3px solid #c0392b;background:#fdecea;padding:10px;border-radius:6px">'
            f"<b>SYNTHETIC DATA.</b> No FER2013 was found, so this notebook runs on {len(data)} generated cartoon "
            "faces (the embedded default). Every number and figure below says nothing about FER2013; it only shows "
            f"that the code runs. {DOWNLOAD_HINT}</div>"
        )
    return HTML(f'<div style="border:2px solid #2e86c1;padding:8px;border-radius:6px">Data: <b>{data.label}</b> '
                f"({len(data)} faces, splits: {', '.join(data.split_names)}).</div>")


# ----------------------------------------------------------------------------------------------- the data


def plot_emotion_counts(data: FERData) -> Figure:
    """Table 1 as bars: faces per emotion, one bar per split, with each emotion's share of all faces."""
    table = data.counts().drop(index="total").drop(columns="total").drop(index="unknown", errors="ignore")
    fig, ax = _subplots(figsize=(10, 4.5))
    width = 0.8 / len(table.columns)
    x = np.arange(len(table))
    for k, split in enumerate(table.columns):
        ax.bar(x + (k - (len(table.columns) - 1) / 2) * width, table[split], width, label=split)
    total = table.sum(axis=1)
    for xi, share in enumerate(total / total.sum()):
        ax.annotate(f"{share:.1%}", (xi, table.iloc[xi].max()), ha="center", va="bottom", fontsize=9,
                    xytext=(0, 2), textcoords="offset points")
    ax.set(xticks=x, xticklabels=table.index, ylabel="faces", title=f"Faces per emotion and split - {data.label}")
    ax.legend(title="split")
    sns.despine(fig)
    return fig


def plot_face_grid(images: np.ndarray, titles: list[str] | None = None, ncols: int = 8, suptitle: str = "",
                   heatmaps: np.ndarray | None = None, size: float = 1.4) -> Figure:
    """Faces in a grid (exactly one axes per face), optionally titled and overlaid with [0, 1] heatmaps."""
    images = np.asarray(images)
    n = len(images)
    if n == 0:
        fig, ax = _subplots(figsize=(8, 1.2))
        ax.text(0.5, 0.5, "no faces to show", ha="center", va="center")
        ax.axis("off")
        fig.suptitle(suptitle)
        return fig
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(size * ncols, (size + 0.35 * (titles is not None)) * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.remove()
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        if heatmaps is not None:
            ax.imshow(heatmaps[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        ax.axis("off")
    fig.suptitle(suptitle)
    return fig


def plot_samples(data: FERData, per_emotion: int = 8, seed: int = 0) -> Figure:
    """A random sample of faces per emotion: one row per emotion."""
    rng = np.random.default_rng(seed)
    fig, axes = _subplots(len(EMOTIONS), per_emotion, figsize=(1.2 * per_emotion, 1.3 * len(EMOTIONS)), squeeze=False)
    for e, row in enumerate(axes):
        idx = np.flatnonzero(data.emotions == e)
        idx = rng.choice(idx, min(per_emotion, len(idx)), replace=False)
        for j, ax in enumerate(row):
            if j < len(idx):
                ax.imshow(data.images[idx[j]], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            sns.despine(ax=ax, left=True, bottom=True)
        row[0].set_ylabel(EMOTIONS[e], rotation=0, ha="right", va="center")
    fig.suptitle(f"Sample faces per emotion - {data.label}")
    return fig


def plot_mean_faces(data: FERData) -> Figure:
    """The mean face of each emotion (pixel-wise average), with how many faces went into it."""
    fig, axes = _subplots(1, len(EMOTIONS), figsize=(1.8 * len(EMOTIONS), 2.3))
    for e, ax in enumerate(axes):
        faces = data.images[data.emotions == e]
        if len(faces):
            ax.imshow(faces.mean(axis=0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{EMOTIONS[e]}\nn={len(faces)}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Mean face per emotion - {data.label}")
    return fig


def plot_intensity(data: FERData, max_faces: int = 2000, seed: int = 0) -> Figure:
    """Per emotion: the distribution of pixel values (left) and of per-face contrast, the pixel std (right)."""
    rng = np.random.default_rng(seed)
    rows = []
    for e, name in enumerate(EMOTIONS):
        faces = data.images[data.emotions == e]
        faces = faces[rng.permutation(len(faces))[:max_faces]].reshape(-1, 48 * 48)
        rows.append(pd.DataFrame({"emotion": name, "pixel": faces[:, ::16].ravel()}))  # every 16th pixel is plenty
    pixels = pd.concat(rows, ignore_index=True)
    contrast = pd.DataFrame({"emotion": np.array(EMOTIONS)[data.emotions[data.emotions >= 0]],
                             "pixel std": data.images[data.emotions >= 0].reshape(-1, 48 * 48).std(axis=1)})
    fig, (a, b) = _subplots(1, 2, figsize=(12, 4))
    kw = dict(hue="emotion", hue_order=EMOTIONS, palette=PALETTE, common_norm=False)
    sns.kdeplot(pixels, x="pixel", ax=a, clip=(0, 255), **kw)
    sns.kdeplot(contrast, x="pixel std", ax=b, clip=(0, None), legend=False, **kw)
    a.set(title="pixel values", xlim=(0, 255))
    b.set(title="contrast per face")
    fig.suptitle(f"Intensity per emotion - {data.label}")
    sns.despine(fig)
    return fig


def plot_duplicates(data: FERData, report, max_groups: int = 6) -> Figure:
    """Example duplicate groups, those spanning splits or disagreeing on the emotion first; each copy titled
    with its split and emotion."""
    g = report.groups
    if g.empty:
        return plot_face_grid([], suptitle=f"No exact duplicates - {data.label}")
    per = g.groupby("group")
    rank = (per["split"].nunique() > 1).astype(int) + 2 * (per["emotion"].nunique() > 1)
    chosen = rank.sort_values(ascending=False, kind="stable").index[:max_groups]
    rows = [g[g["group"] == k].head(4) for k in chosen]
    ncols = max(len(r) for r in rows)
    fig, axes = _subplots(len(rows), ncols, figsize=(1.7 * ncols, 1.9 * len(rows)), squeeze=False)
    for row, axs in zip(rows, axes, strict=True):
        for ax, (_, r) in zip(axs, row.iterrows(), strict=False):
            ax.imshow(data.images[r["row"]], cmap="gray", vmin=0, vmax=255)
            emotion = EMOTIONS[r["emotion"]] if r["emotion"] >= 0 else "?"
            ax.set_title(f"#{r['row']}\n{r['split']}, {emotion}", fontsize=8)
        for ax in axs:
            ax.axis("off")
    fig.suptitle(f"Exact duplicates (one group per row) - {data.label}")
    return fig


# ----------------------------------------------------------------------------------------------- scores


def plot_confusion(cm: np.ndarray, normalize: bool = False, title: str = "", rows: list[str] | None = None) -> Figure:
    """Confusion matrix heatmap (rows: true emotion, columns: predicted); ``normalize`` divides each row by its sum.
    ``rows`` names the true emotions when the matrix has fewer rows than seven (a collection without some)."""
    cm = np.asarray(cm, float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    fig, ax = _subplots(figsize=(7, 1.6 + 0.63 * len(cm)))
    sns.heatmap(shown, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", square=True, cbar=False,
                xticklabels=EMOTIONS, yticklabels=rows or EMOTIONS, ax=ax, vmin=0, vmax=1 if normalize else None)
    ax.set(xlabel="predicted emotion", ylabel="true emotion",
           title=title or ("Confusion matrix, row-normalised (recall on the diagonal)" if normalize else "Confusion matrix, counts"))
    return fig


def _one_vs_rest(emotions: np.ndarray, proba: np.ndarray, curve, title: str, xlabel: str, ylabel: str) -> Figure:
    fig, ax = _subplots(figsize=(6.5, 5.5))
    for i, e in enumerate(EMOTIONS):
        y = np.asarray(emotions) == i
        if 0 < y.sum() < len(y):
            x, yy, area = curve(y, np.asarray(proba)[:, i])
            ax.plot(x, yy, color=PALETTE[e], label=f"{e} (AUC {area:.3f})")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right" if "ROC" in title else "upper right", fontsize=8)
    sns.despine(fig)
    return fig


def _roc(y, p):
    fpr, tpr, _ = roc_curve(y, p)
    return fpr, tpr, auc(fpr, tpr)


def _pr(y, p):
    precision, recall, _ = precision_recall_curve(y, p)
    return recall, precision, auc(recall, precision)


def plot_roc(emotions: np.ndarray, proba: np.ndarray, title: str = "") -> Figure:
    """One-vs-rest ROC curve per emotion, with its AUC in the legend."""
    fig = _one_vs_rest(emotions, proba, _roc, title or "One-vs-rest ROC", "false positive rate", "true positive rate")
    fig.axes[0].plot([0, 1], [0, 1], ls=":", color="gray")
    return fig


def plot_pr(emotions: np.ndarray, proba: np.ndarray, title: str = "") -> Figure:
    """One-vs-rest precision-recall curve per emotion, with its area in the legend."""
    return _one_vs_rest(emotions, proba, _pr, title or "One-vs-rest precision-recall", "recall", "precision")


def plot_reliability(emotions: np.ndarray, proba: np.ndarray, n_bins: int = 10, title: str = "") -> Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal, ECE in the title, counts below."""
    # evaluation imports Keras: the data and video plots stay free of TensorFlow's 5-15 s import
    from fer_utils.evaluation import expected_calibration_error, reliability_table

    t = reliability_table(emotions, proba, n_bins)
    fig, (a, b) = _subplots(2, 1, figsize=(5.5, 6.5), height_ratios=(3, 1), sharex=True)
    a.bar(t["low"], t["accuracy"], width=1 / n_bins, align="edge", edgecolor="k", alpha=0.8, label="accuracy")
    a.plot(t["confidence"], t["confidence"], "o", color="C3", ms=4, label="mean confidence")
    a.plot([0, 1], [0, 1], ls=":", color="gray")
    a.set(ylabel="accuracy", ylim=(0, 1), title=f"{title or 'Reliability'} (ECE {expected_calibration_error(emotions, proba, n_bins):.3f})")
    a.legend(loc="upper left")
    b.bar(t["low"], t["count"], width=1 / n_bins, align="edge", edgecolor="k", color="gray")
    b.set(xlabel="confidence (top probability)", ylabel="faces", xlim=(0, 1))
    sns.despine(fig)
    return fig


def plot_tta(emotions: np.ndarray, proba: np.ndarray, proba_tta: np.ndarray, title: str = "") -> Figure:
    """Recall per emotion and overall accuracy, without and with test-time augmentation."""
    emotions = np.asarray(emotions)
    rows = []
    for name, p in (("off", proba), ("on", proba_tta)):
        correct = np.asarray(p).argmax(axis=1) == emotions
        rows += [{"emotion": e, "TTA": name, "recall": correct[emotions == i].mean()}
                 for i, e in enumerate(EMOTIONS) if (emotions == i).any()]
        rows.append({"emotion": "ALL (accuracy)", "TTA": name, "recall": correct.mean()})
    fig, ax = _subplots(figsize=(10, 4))
    sns.barplot(pd.DataFrame(rows), x="emotion", y="recall", hue="TTA", ax=ax)
    for c in ax.containers:
        ax.bar_label(c, fmt="%.2f", fontsize=7)
    ax.set(ylim=(0, 1.08), title=title or "Test-time augmentation off vs on")
    sns.despine(fig)
    return fig


def plot_corruptions(results: dict[str, dict], title: str = "") -> Figure:
    """Accuracy on clean faces and under each corruption, one bar per model: ``results`` maps a model's name to
    what :func:`fer_utils.evaluation.evaluate_corruptions` returned for it."""
    rows = [{"corruption": c, "model": f"{name} (mean {r['relative']:.0%} of clean)", "accuracy": acc}
            for name, r in results.items() for c, acc in r["accuracy"].items()]
    fig, ax = _subplots(figsize=(11, 4))
    sns.barplot(pd.DataFrame(rows), x="corruption", y="accuracy", hue="model", ax=ax)
    ax.set(ylim=(0, 1), title=title or "Accuracy under the corruption suite")
    ax.tick_params(axis="x", rotation=30)
    sns.despine(fig)
    return fig


def plot_predictions(faces: np.ndarray, emotions: np.ndarray, proba: np.ndarray, ncols: int = 6,
                     suptitle: str = "") -> Figure:
    """Faces titled with the true emotion and the predicted one with its probability."""
    proba = np.asarray(proba)
    titles = [f"true {EMOTIONS[t]}\npred {EMOTIONS[p.argmax()]} {p.max():.2f}" for t, p in zip(emotions, proba, strict=True)]
    return plot_face_grid(faces, titles, ncols=ncols, suptitle=suptitle, size=1.6)


def plot_gradcam(model: keras.Model, faces: np.ndarray, emotions: np.ndarray | None = None, ncols: int = 7,
                 suptitle: str = "Grad-CAM: where the network looks") -> Figure:
    """Grad-CAM heatmaps over faces for the predicted emotion; titles give true (if known) and predicted emotions."""
    # Keras: these plots are handed a Keras model, so it is loaded by then (see reliability above)
    from fer_utils.evaluation import gradcam
    from fer_utils.models import predict_proba

    proba = predict_proba(model, faces)
    titles = [(f"true {EMOTIONS[emotions[i]]}\n" if emotions is not None else "") + f"pred {EMOTIONS[p.argmax()]} {p.max():.2f}"
              for i, p in enumerate(proba)]
    return plot_face_grid(faces, titles, ncols=ncols, suptitle=suptitle, heatmaps=gradcam(model, faces), size=1.6)


# ----------------------------------------------------------------------------------------------- training and the network


def plot_learning_curves(history: dict, title: str = "") -> Figure:
    """Loss and accuracy per epoch, Training against the validation split (PublicTest)."""
    if not history or "loss" not in history:
        raise ValueError("history has no 'loss'; pass read_info(path)['history'] of a model saved by fer_utils.training")
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = _subplots(1, 2, figsize=(11, 3.8))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[key], "o-", ms=3, label="Training (augmented)")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "o-", ms=3, label="PublicTest")
        ax.set(xlabel="epoch", ylabel=key, title=key)
        ax.legend()
    fig.suptitle(title or "Learning curves")
    sns.despine(fig)
    return fig


def _preprocessed(model: keras.Model, faces: np.ndarray) -> np.ndarray:
    """Faces as the model sees them right before augmentation: (N, 48, 48, 1) floats."""
    import keras  # handed a Keras model: loaded by then, and the other plots stay free of it

    aug = model.get_layer("augmentation")
    return keras.Model(model.input, aug.input)(np.asarray(faces)).numpy()


def plot_augmentation(model: keras.Model, faces: np.ndarray, n_views: int = 6, seed: int = 0) -> Figure:
    """Each face (row) next to ``n_views`` random augmentations, as the model's own training-time layers draw them."""
    import keras  # handed a Keras model: loaded by then, and the other plots stay free of it

    try:
        aug = model.get_layer("augmentation")
    except ValueError as e:
        raise ValueError(f"model {model.name!r} has no 'augmentation' layer to preview") from e
    x = _preprocessed(model, faces)
    keras.utils.set_random_seed(seed)
    views = [x] + [aug(x, training=True).numpy() for _ in range(n_views)]
    fig, axes = _subplots(len(x), n_views + 1, figsize=(1.4 * (n_views + 1), 1.5 * len(x)), squeeze=False)
    for j, v in enumerate(views):
        for i in range(len(x)):
            axes[i, j].imshow(v[i, ..., 0], cmap="gray", vmin=0, vmax=1)
            axes[i, j].axis("off")
        axes[0, j].set_title("original" if j == 0 else f"view {j}", fontsize=9)
    fig.suptitle("Augmentation: random flip, rotation, shift, zoom, contrast (training only)")
    return fig


def _first_conv(model: keras.Model) -> int:
    import keras  # handed a Keras model: loaded by then, and the other plots stay free of it

    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return i
    raise ValueError(f"model {model.name!r} has no top-level Conv2D layer")


def plot_filters(model: keras.Model, ncols: int = 16) -> Figure:
    """The learned kernels of the first convolution, one small image per filter (blue negative, red positive)."""
    kernel = model.layers[_first_conv(model)].kernel.numpy()  # (k, k, in, filters)
    filters = kernel[:, :, 0, :].transpose(2, 0, 1)
    ncols = min(ncols, len(filters))
    nrows = -(-len(filters) // ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(0.8 * ncols, 0.85 * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(filters):
            ax.remove()
            continue
        lim = np.abs(filters[i]).max() or 1
        ax.imshow(filters[i], cmap="coolwarm", vmin=-lim, vmax=lim)
        ax.axis("off")
    fig.suptitle(f"First-layer filters ({len(filters)} of {kernel.shape[0]}x{kernel.shape[1]})")
    return fig


def plot_feature_maps(model: keras.Model, face: np.ndarray, max_maps: int = 32, ncols: int = 8) -> Figure:
    """What the first convolution stage (conv, batch norm, ReLU) makes of one face: one image per channel."""
    import keras  # handed a Keras model: loaded by then, and the other plots stay free of it

    i = _first_conv(model)
    while isinstance(model.layers[i + 1], (keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Activation)):
        i += 1
    maps = keras.Model(model.input, model.layers[i].output)(np.asarray(face)[None]).numpy()[0]
    n = min(max_maps, maps.shape[-1])
    fig, axes = _subplots(-(-(n + 1) // ncols), ncols, figsize=(1.3 * ncols, 1.4 * -(-(n + 1) // ncols)),
                             squeeze=False)
    axes.flat[0].imshow(face, cmap="gray", vmin=0, vmax=255)
    axes.flat[0].set_title("input", fontsize=8)
    for k, ax in enumerate(axes.flat):
        if 1 <= k <= n:
            ax.imshow(maps[..., k - 1], cmap="magma")
            ax.set_title(f"map {k - 1}", fontsize=8)
        elif k > n:
            ax.remove()
            continue
        ax.axis("off")
    fig.suptitle(f"First-stage feature maps ({n} of {maps.shape[-1]} channels, {maps.shape[0]}x{maps.shape[1]})")
    return fig


def plot_timeline(df: pd.DataFrame, *, face_ids: list[int] | None = None, emotions: tuple[str, ...] = EMOTIONS,
                  figsize_per_face: tuple[float, float] = (10, 2.2)):
    """Probability of each emotion over time, one panel per face (the table from :func:`analyze_video`).

    A strip under each panel shows the top emotion at each moment. Returns the matplotlib Figure.
    """
    missing = [c for c in ("timestamp_s", "face_id", *emotions) if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing columns {missing}; pass the DataFrame returned by analyze_video")
    ids = sorted(df["face_id"].unique()) if face_ids is None else list(face_ids)
    fig = Figure(figsize=(figsize_per_face[0], figsize_per_face[1] * max(1, len(ids)) + 0.6), layout="constrained")
    axes = fig.subplots(max(1, len(ids)), 1, sharex=True, squeeze=False)
    colors = dict(zip(EMOTIONS, colormaps["tab10"].colors, strict=False))
    for ax, fid in zip(axes[:, 0], ids, strict=False):
        part = df[df["face_id"] == fid].sort_values("timestamp_s")
        t = part["timestamp_s"].to_numpy()
        for e in emotions:
            ax.plot(t, part[e].to_numpy(), label=e, color=colors[e], lw=1.2)
        top = part[list(emotions)].to_numpy().argmax(1) if len(part) else np.array([], int)
        ax.scatter(t, np.full(len(t), -0.08), c=[colors[emotions[k]] for k in top], marker="|", s=80, clip_on=False)
        ax.set_ylim(-0.12, 1.0)
        ax.set_ylabel(f"face {fid}\nprobability")
    if ids:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), ncol=len(emotions), fontsize=8, loc="outside upper center",
                   frameon=False)
    else:
        axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center", transform=axes[0, 0].transAxes)
    axes[-1, 0].set_xlabel("time (s)")
    return fig


def plot_emotion_shares(shares: pd.DataFrame, title: str = "Emotion shares per video") -> Figure:
    """A heatmap of each video's (rows) share of face frames per top emotion (columns), from
    :func:`fer_utils.corpus.emotion_shares`."""
    fig, ax = _subplots(figsize=(8, 0.35 * len(shares) + 1.5))
    image = ax.imshow(shares.to_numpy(float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(shares.shape[1]), shares.columns, rotation=30)
    ax.set_yticks(range(len(shares)), shares.index)
    fig.colorbar(image, ax=ax, label="share of face frames as top emotion")
    ax.set_title(title)
    return fig


def plot_conditions(comparison: pd.DataFrame, column: str, title: str = "Conditions compared") -> Figure:
    """Bars of each emotion's mean share per value of ``column`` with their 95% intervals, from
    :func:`fer_utils.corpus.compare_conditions`."""
    fig, ax = _subplots(figsize=(9, 3.5))
    values = comparison[column].unique()
    width = 0.8 / len(values)
    for j, value in enumerate(values):
        c = comparison[comparison[column] == value]
        x = np.arange(len(c)) + (j - (len(values) - 1) / 2) * width
        ax.bar(x, c["share"], width=width, label=str(value), capsize=3,
               yerr=[c["share"] - c["ci_low"], c["ci_high"] - c["share"]])
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_ylabel("share of face frames (95% CI)")
    ax.legend(title=column)
    ax.set_title(title)
    return fig
