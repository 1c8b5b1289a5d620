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

from fer_utils.litert import NETWORKS_DIR, SHIPPED_DIR, network_fix, training_install

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


# The networks a wheel carries, best first: the photos' and videos' default, then the live webcam's. pyproject.toml's
# package-data lists the same files; with no cards in an installed package, these names stand in for the cards'
# ranking (tests/test_shipped.py checks that they agree with default_model_path() and live_model_path() in a clone).
DEFAULT_NETWORK, LIVE_NETWORK = "vgg8x2_resnet", "vgg8_distilled"
PACKAGED = (DEFAULT_NETWORK, LIVE_NETWORK)


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


LIVE_MAX_FLOPS = 250e6  # vgg8's 235 MFLOPs: about 3 ms a face through the recognizer on these 2-core CPUs


def live_model_path(models: dict[str, Path] | None = None) -> Path:
    """The webcam's default: the best of ``models`` (default: the shipped ones, best first) whose card gives at most
    :data:`LIVE_MAX_FLOPS` per face, so that live video keeps its frame rate (in an installed package, which has no
    cards: its :data:`LIVE_NETWORK`); the best one if none is carded so."""
    models = shipped_models() if models is None else models
    for path in map(Path, models.values()):
        try:
            if json.loads(path.with_suffix(".json").read_text())["flops"] <= LIVE_MAX_FLOPS:
                return path
        except (OSError, ValueError, KeyError, TypeError):
            if path == NETWORKS_DIR / f"{LIVE_NETWORK}.tflite":
                return path
    return Path(next(iter(models.values()))) if models else default_model_path()


def default_model_path() -> Path:
    """The best shipped model: what the recognizer, ``predict``, ``video`` and the evaluation notebook use unless told
    otherwise (a ``.keras`` in a clone, a packaged ``.tflite`` in an installed package)."""
    models = shipped_models()
    if not models:
        missing = f"no trained model in {SHIPPED_DIR} nor {NETWORKS_DIR}"
        if training_install() and SHIPPED_DIR.is_dir():  # a clone set up for training
            raise FileNotFoundError(f"{missing}; train one with `python -m fer_utils train --model lenet --out "
                                    "models/lenet.keras`, or restore the shipped ones with `git checkout models "
                                    "fer_utils/networks`")
        raise FileNotFoundError(f"{missing}; {network_fix(NETWORKS_DIR / f'{DEFAULT_NETWORK}.tflite')}")
    return next(iter(models.values()))
