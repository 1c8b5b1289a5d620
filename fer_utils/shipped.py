"""The shipped models in ``models/``: which there are, best first, which serves photos and which the live webcam,
and the training record inside a model file. Reads files only (cards and the ``.keras`` zip), no Keras.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from fer_utils.constants import PROJECT_ROOT

INFO_NAME = "fer_utils.json"  # training record stored inside the .keras zip, beside Keras' own files


def check_model_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it holds a ``.keras`` model (a zip archive); else an error that names what is wrong and
    the fix, before anything slower (loading data, Keras) runs."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist; shipped models are in {PROJECT_ROOT / 'models'}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"model file {path} is corrupt or not a .keras model; retrain it or restore it (git checkout {path})")
    return path


def read_info(path: str | os.PathLike) -> dict:
    """The training record saved inside a model file (empty for a model saved by plain Keras)."""
    with zipfile.ZipFile(check_model_file(path)) as z:
        return json.loads(z.read(INFO_NAME)) if INFO_NAME in z.namelist() else {}


def shipped_models() -> dict[str, Path]:
    """The trained models in ``models/`` by name, best first: by the PublicTest accuracy of their cards."""
    folder = PROJECT_ROOT / "models"
    found = {p.stem: p for p in sorted(folder.glob("*.keras")) if not p.name.startswith(".")}
    return {name: found[name] for name in sorted(found, key=lambda name: -_card_accuracy(found[name]))}


def _card_accuracy(path: Path) -> float:
    card = path.with_suffix(".json")
    try:
        return float(json.loads(card.read_text())["results"]["plain"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):  # no card yet, or not one of ours: after the carded ones
        return -1.0


LIVE_MAX_FLOPS = 250e6  # vgg8's 235 MFLOPs: about 3 ms a face through the recognizer on these 2-core CPUs


def live_model_path(models: dict[str, Path] | None = None) -> Path:
    """The webcam's default: the best of ``models`` (default: the shipped ones, best first) whose card gives at most
    :data:`LIVE_MAX_FLOPS` per face, so that live video keeps its frame rate; the best one if none is carded so."""
    models = shipped_models() if models is None else models
    for path in models.values():
        try:
            if json.loads(Path(path).with_suffix(".json").read_text())["flops"] <= LIVE_MAX_FLOPS:
                return Path(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return Path(next(iter(models.values()))) if models else default_model_path()


def default_model_path() -> Path:
    """The best shipped model: what the recognizer, webcam and evaluation notebook use unless told otherwise."""
    models = shipped_models()
    if not models:
        raise FileNotFoundError(
            f"no trained model in {PROJECT_ROOT / 'models'}; train one with "
            "`python -m fer_utils train --model lenet --out models/lenet.keras`"
        )
    return next(iter(models.values()))
