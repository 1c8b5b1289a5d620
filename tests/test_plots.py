"""Figures are checked for what they show (bar heights, matrix sums, axes per face), not only for existing."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from fer_utils import plots
from fer_utils.audit import find_duplicates
from fer_utils.constants import EMOTIONS
from fer_utils.evaluation import reliability_table
from fer_utils.loader import FERData
from fer_utils.models import build_lenet, predict_proba
from fer_utils.synthetic import make_synthetic


@pytest.fixture(scope="module")
def data() -> FERData:
    return make_synthetic(150, seed=1)


@pytest.fixture(scope="module")
def model():
    return build_lenet(filters=(4, 8), units=(16,))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def images_of(ax) -> list[np.ndarray]:
    return [im.get_array() for im in ax.get_images()]


def toy_scores(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emotions = rng.integers(0, 7, n)
    proba = rng.dirichlet(np.ones(7), n) + 0.8 * np.eye(7)[emotions] * rng.random((n, 1))
    return emotions, proba / proba.sum(1, keepdims=True)


def test_emotion_counts_bars_carry_table1(data):
    fig = plots.plot_emotion_counts(data)
    ax = fig.axes[0]
    counts = data.counts()
    assert len(ax.containers) == len(data.split_names)
    for container, split in zip(ax.containers, data.split_names, strict=True):
        heights = [bar.get_height() for bar in container]
        assert heights == counts.loc[list(EMOTIONS), split].tolist()
    assert "SYNTHETIC" in ax.get_title()
    shares = [t.get_text() for t in ax.texts]
    assert shares[1] == f"{counts.loc['disgust', 'total'] / len(data):.1%}"


def test_face_grid_has_one_axes_per_face():
    faces = np.random.default_rng(0).integers(0, 255, (10, 48, 48), dtype=np.uint8)
    fig = plots.plot_face_grid(faces, titles=[str(i) for i in range(10)], ncols=4, suptitle="x")
    assert len(fig.axes) == 10
    assert [ax.get_title() for ax in fig.axes] == [str(i) for i in range(10)]
    np.testing.assert_array_equal(images_of(fig.axes[7])[0], faces[7])
    heat = plots.plot_face_grid(faces[:3], heatmaps=np.ones((3, 48, 48)))
    assert all(len(ax.get_images()) == 2 for ax in heat.axes)
    assert plots.plot_face_grid([]).axes[0].texts[0].get_text() == "no faces to show"


def test_samples_show_faces_of_the_right_emotion(data):
    fig = plots.plot_samples(data, per_emotion=5)
    assert len(fig.axes) == 7 * 5
    for e in range(7):
        row = fig.axes[5 * e : 5 * e + 5]
        assert row[0].get_ylabel() == EMOTIONS[e]
        shown = [img for ax in row for img in images_of(ax)]
        assert len(shown) == min(5, int((data.emotions == e).sum()))
        faces = data.images[data.emotions == e]
        assert all(any(np.array_equal(img, f) for f in faces) for img in shown)


def test_mean_faces_are_the_means(data):
    fig = plots.plot_mean_faces(data)
    for e, ax in enumerate(fig.axes):
        np.testing.assert_allclose(images_of(ax)[0], data.images[data.emotions == e].mean(0))
        assert f"n={(data.emotions == e).sum()}" in ax.get_title()


def test_intensity_has_a_curve_per_emotion(data):
    fig = plots.plot_intensity(data)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == len(fig.axes[1].lines) == 7
    assert "SYNTHETIC" in fig.get_suptitle()


def test_duplicates_show_every_copy(data):
    images = data.images.copy()
    images[1] = images[0]
    images[5] = images[4]
    images[6] = images[4]
    dup = FERData(images, data.emotions, data.splits, data.source, synthetic=True)
    fig = plots.plot_duplicates(dup, find_duplicates(dup))
    shown = [img for ax in fig.axes for img in images_of(ax)]
    assert len(shown) == 5
    assert sum(np.array_equal(img, images[4]) for img in shown) == 3
    empty = plots.plot_duplicates(data, find_duplicates(data))
    assert "No exact duplicates" in empty.get_suptitle()


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_sums(normalize):
    emotions, proba = toy_scores()
    cm = confusion_matrix(emotions, proba.argmax(1), labels=range(7))
    fig = plots.plot_confusion(cm, normalize=normalize)
    shown = fig.axes[0].collections[0].get_array().reshape(7, 7)
    if normalize:
        np.testing.assert_allclose(shown.sum(1), 1)
    else:
        assert shown.sum() == len(emotions)
        np.testing.assert_array_equal(shown, cm)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(EMOTIONS)


def test_roc_and_pr_legends_carry_the_aucs():
    emotions, proba = toy_scores()
    roc = plots.plot_roc(emotions, proba)
    labels = [t.get_text() for t in roc.axes[0].get_legend().get_texts()]
    assert len(labels) == 7
    assert labels[3] == f"happy (AUC {roc_auc_score(emotions == 3, proba[:, 3]):.3f})"
    pr = plots.plot_pr(emotions, proba)
    assert len(pr.axes[0].get_legend().get_texts()) == 7


def test_reliability_bars_are_the_bin_accuracies():
    emotions, proba = toy_scores()
    fig = plots.plot_reliability(emotions, proba, n_bins=10)
    table = reliability_table(emotions, proba, 10)
    bars = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(bars, table["accuracy"])
    assert sum(p.get_height() for p in fig.axes[1].patches) == len(emotions)
    assert "ECE" in fig.axes[0].get_title()


def test_tta_bars_are_recalls():
    emotions, proba = toy_scores()
    fig = plots.plot_tta(emotions, proba, np.eye(7)[emotions])
    on = [b.get_height() for b in fig.axes[0].containers[1]]
    assert on == [1.0] * 8
    off = [b.get_height() for b in fig.axes[0].containers[0]]
    assert off[-1] == pytest.approx((proba.argmax(1) == emotions).mean())


def test_learning_curves_plot_the_history():
    history = {"loss": [2.0, 1.5, 1.2], "accuracy": [0.2, 0.3, 0.4], "val_loss": [1.9, 1.6, 1.5],
               "val_accuracy": [0.25, 0.3, 0.35]}
    fig = plots.plot_learning_curves(history)
    loss_ax, acc_ax = fig.axes
    assert list(loss_ax.lines[1].get_ydata()) == history["val_loss"]
    assert list(acc_ax.lines[0].get_ydata()) == history["accuracy"]
    with pytest.raises(ValueError, match="history"):
        plots.plot_learning_curves({})


def test_filters_are_the_first_kernels(model):
    fig = plots.plot_filters(model)
    kernel = model.layers[4].kernel.numpy()
    assert len(fig.axes) == kernel.shape[-1] == 4
    np.testing.assert_allclose(images_of(fig.axes[2])[0], kernel[:, :, 0, 2])


def test_feature_maps_one_per_channel(model, data):
    fig = plots.plot_feature_maps(model, data.images[0])
    assert len(fig.axes) == 1 + 4
    assert images_of(fig.axes[1])[0].shape == (44, 44)


def test_augmentation_preview(model, data):
    fig = plots.plot_augmentation(model, data.images[:2], n_views=3)
    assert len(fig.axes) == 2 * 4
    np.testing.assert_allclose(images_of(fig.axes[0])[0], data.images[0] / 255, atol=1e-6)
    assert not np.allclose(images_of(fig.axes[1])[0], images_of(fig.axes[0])[0])
    with pytest.raises(ValueError, match="augmentation"):
        plots.plot_augmentation(build_lenet(filters=(4, 8), units=(16,), augment=0), data.images[:1])


def test_gradcam_and_prediction_grids(model, data):
    faces, emotions = data.images[:7], data.emotions[:7]
    fig = plots.plot_gradcam(model, faces, emotions)
    assert len(fig.axes) == 7 and all(len(ax.get_images()) == 2 for ax in fig.axes)
    proba = predict_proba(model, faces)
    fig = plots.plot_predictions(faces, emotions, proba)
    assert fig.axes[0].get_title() == f"true {EMOTIONS[emotions[0]]}\npred {EMOTIONS[proba[0].argmax()]} {proba[0].max():.2f}"


def test_banner_says_synthetic(data):
    assert "SYNTHETIC" in plots.banner(data).data
    real = FERData(data.images, data.emotions, data.splits, "/x/fer2013.csv")
    assert "SYNTHETIC" not in plots.banner(real).data and "fer2013.csv" in plots.banner(real).data


def test_corruption_bars_are_the_accuracies():
    results = {"a": {"accuracy": {"clean": 0.7, "blur": 0.6, "jpeg": 0.5}, "relative": 0.55 / 0.7},
               "b": {"accuracy": {"clean": 0.6, "blur": 0.3, "jpeg": 0.6}, "relative": 0.45 / 0.6}}
    fig = plots.plot_corruptions(results)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches if p.get_height() > 0)
    assert heights == sorted([0.7, 0.6, 0.5, 0.6, 0.3, 0.6])
    assert "a (mean 79% of clean)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_the_readme_confusion_picture_is_remade_from_the_flagship_card(tmp_path):
    """scripts/readme_pictures.py draws docs/images/confusion.png from the card alone: the row-normalised matrix
    of its flip-and-shift TTA result, titled with the card's accuracy."""
    import importlib.util
    import json

    import matplotlib.image

    from fer_utils.constants import PROJECT_ROOT
    from fer_utils.shipped import default_model_path

    spec = importlib.util.spec_from_file_location("readme_pictures", PROJECT_ROOT / "scripts" / "readme_pictures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    card = default_model_path().with_suffix(".json")
    assert matplotlib.image.imread(script.confusion_picture(card, tmp_path / "confusion.png")).shape[0] > 300
    ax = script.confusion_figure(card).axes[0]
    result = json.loads(card.read_text())["results"]["tta_shift"]
    assert f"accuracy {result['accuracy']:.1%}" in ax.get_title()
    rows = np.array(result["confusion_matrix"], float)
    shown = [float(t.get_text()) for t in ax.texts]
    np.testing.assert_allclose(shown, (rows / rows.sum(axis=1, keepdims=True)).ravel(), atol=0.005)
