"""The shipped models: which there are, best first, which serves photos and which the live webcam, and the training
record inside a model file. Reads files only (cards and the ``.keras`` zip), no Keras.

In a clone they are the ``.keras`` files in ``models/``, ranked by their cards, each run from its ``.tflite`` in
``fer_utils/networks/`` (:func:`fer_utils.litert.litert_path`). An installed package (a wheel, ``pip install .``) has
no ``models/`` and no cards: there they are the networks it carries (:data:`PACKAGED`), as ``.tflite`` files.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from fer_utils.constants import NETWORKS_DIR, SHIPPED_DIR
from fer_utils.litert import network_fix, training_install

INFO_NAME = "fer_utils.json"  # training record stored inside the .keras zip, beside Keras' own files


def check_model_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it holds a ``.keras`` model (a zip archive); else an error that names what is wrong and
    the fix, before anything slower (loading data, Keras) runs."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist; shipped models are in {SHIPPED_DIR}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"model file {path} is corrupt or not a .keras model; retrain it or restore it (git checkout {path})")
    return path


def read_info(path: str | os.PathLike) -> dict:
    """The training record saved inside a model file (empty for a model saved by plain Keras)."""
    with zipfile.ZipFile(check_model_file(path)) as z:
        return json.loads(z.read(INFO_NAME)) if INFO_NAME in z.namelist() else {}


# The defaults, as the rule for a default (below; `python -m fer_utils defaults`, docs/results.md) chose them among
# the shipped models on PublicTest, JAFFE and wild-faces: the photos' and videos' default, and the live webcam's. The
# networks a wheel carries are these, each once; pyproject.toml's package-data lists the same files.
DEFAULT_NETWORK, LIVE_NETWORK = "vgg8_distilled_resnet", "vgg8_distilled"
PACKAGED = tuple(dict.fromkeys((DEFAULT_NETWORK, LIVE_NETWORK)))


def shipped_models() -> dict[str, Path]:
    """The trained models by name, best first: the ``.keras`` files in ``models/`` by their cards' PublicTest
    accuracy with flip and shift TTA (the README's headline column); where there are none (an installed package has
    no ``models/``), the ``.tflite`` networks it carries."""
    found = {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.keras")) if not p.name.startswith(".")}
    if not found:
        packaged = {name: NETWORKS_DIR / f"{name}.tflite" for name in PACKAGED}
        return {name: path for name, path in packaged.items() if path.is_file()}
    return {name: found[name] for name in sorted(found, key=lambda name: -_card_accuracy(found[name]))}


def _card_accuracy(path: Path) -> float:
    card = path.with_suffix(".json")
    try:
        # not plain accuracy: a single network selected on PublicTest can edge past an ensemble there by a few faces
        # (vgg8_distilled 0.6860 vs vgg8x2_resnet 0.6832) while behind it on macro-F1 and with every TTA
        return float(json.loads(card.read_text())["results"]["tta_shift"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):  # no card yet, or not one of ours: after the carded ones
        return -1.0


# The rule for a default, written once (docs/results.md applies it): models are tried from the cheapest per face up;
# a costlier one replaces the one serving only when paired tests on the same faces show a gain beyond noise on
# PublicTest or on a development collection, and no loss beyond noise on any of them. Otherwise the cheaper serves:
# a few faces more or less on one split do not buy a network that costs more on every frame. A difference is beyond
# noise when accuracy (McNemar's exact test) and macro-F1 (its paired bootstrap interval) both say so, in the same
# direction: on a collection of mostly happy and neutral faces with noisy labels, accuracy alone rewards answering
# neutral more often (LeNet beats every other model there by 4-11 points of accuracy at the same macro-F1).
ALPHA = 0.05  # McNemar's p below this, with macro-F1's 95% interval clear of zero, is beyond noise


def beyond_noise(comparison: dict, alpha: float = ALPHA) -> int:
    """+1 (a gain), -1 (a loss) or 0 (within noise) for one paired comparison
    (:func:`fer_utils.evaluation.paired_comparison`'s result): accuracy and macro-F1 must agree."""
    low, high = comparison["macro_f1_difference_ci"]
    if comparison["mcnemar_p"] >= alpha:
        return 0
    if comparison["difference"] > 0 and low > 0:
        return 1
    return -1 if comparison["difference"] < 0 and high < 0 else 0


def replaces(comparisons: dict[str, dict], alpha: float = ALPHA) -> bool:
    """Whether a costlier candidate replaces the model serving, given its paired comparisons against it, one per
    dataset: a gain beyond noise on one (:func:`beyond_noise`) and a loss beyond noise on none."""
    verdicts = [beyond_noise(c, alpha) for c in comparisons.values()]
    return 1 in verdicts and -1 not in verdicts


def choose_default(costs: dict[str, float], compare, alpha: float = ALPHA) -> tuple[str, list[dict]]:
    """The rule applied to candidates (name -> cost per face, e.g. FLOPs): the cheapest serves first, then each
    costlier one in turn (ties in the given order) replaces the one serving when :func:`replaces` says so.
    ``compare(candidate, serving)`` gives the candidate's paired comparisons against the one serving, by dataset.
    Returns the chosen name and each step: candidate, serving, comparisons, and whether it replaced."""
    if not costs:
        raise ValueError("costs is empty: no candidate to choose a default from")
    order = sorted(costs, key=costs.__getitem__)
    serving, steps = order[0], []
    for name in order[1:]:
        comparisons = compare(name, serving)
        won = replaces(comparisons, alpha)
        steps.append({"candidate": name, "serving": serving, "comparisons": comparisons, "replaces": won})
        serving = name if won else serving
    return serving, steps


LIVE_MAX_FLOPS = 250e6  # vgg8's 235 MFLOPs: about 3 ms a face through the recognizer on these 2-core CPUs


def live_model_path(models: dict[str, Path] | None = None) -> Path:
    """The webcam's default among ``models`` (default: the shipped ones, best first): :data:`LIVE_NETWORK`, which the
    rule chose, where it is one of them; else the best whose card gives at most :data:`LIVE_MAX_FLOPS` per face, so
    that live video keeps its frame rate, or the best one if none is carded so."""
    models = shipped_models() if models is None else models
    if LIVE_NETWORK in models:
        return Path(models[LIVE_NETWORK])
    for path in map(Path, models.values()):
        try:
            if json.loads(path.with_suffix(".json").read_text())["flops"] <= LIVE_MAX_FLOPS:
                return path
        except (OSError, ValueError, KeyError, TypeError):  # no card: not known to be fast enough
            continue
    return Path(next(iter(models.values()))) if models else default_model_path()


def default_model_path() -> Path:
    """The shipped :data:`DEFAULT_NETWORK`, which the rule chose (else the best shipped model): what the recognizer,
    ``predict``, ``video`` and the evaluation notebook use unless told otherwise (a ``.keras`` in a clone, a packaged
    ``.tflite`` in an installed package)."""
    models = shipped_models()
    if DEFAULT_NETWORK in models:
        return models[DEFAULT_NETWORK]
    if not models:
        missing = f"no trained model in {SHIPPED_DIR} nor {NETWORKS_DIR}"
        if training_install() and SHIPPED_DIR.is_dir():  # a clone set up for training
            raise FileNotFoundError(f"{missing}; train one with `python -m fer_utils train --arch lenet --out "
                                    "models/lenet.keras`, or restore the shipped ones with `git checkout models "
                                    "fer_utils/networks`")
        raise FileNotFoundError(f"{missing}; {network_fix(NETWORKS_DIR / f'{DEFAULT_NETWORK}.tflite')}")
    return next(iter(models.values()))
