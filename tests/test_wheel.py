"""The package as a user installs it (`pip install .`, a wheel): built from the sources alone and installed into a
fresh virtual environment with its base dependencies only, it recognises faces with the networks it carries, away
from the clone, and has neither TensorFlow nor Keras. Needs the package index that `make setup` used (its pip cache
makes the install quick)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import pytest

from fer_utils.constants import EMOTIONS, PROJECT_ROOT
from fer_utils.scenes import astronaut_bgr
from fer_utils.shipped import DEFAULT_NETWORK, LIVE_NETWORK, PACKAGED

pytestmark = pytest.mark.slow

MAX_WHEEL_BYTES = 20_000_000
BUILD_INPUTS = ("pyproject.toml", "README.md", "fer_utils")  # all that a build reads


def _run(cmd: list, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run outside the clone: no PYTHONPATH or active venv leaks the clone's fer_utils in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    run = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert run.returncode == 0, f"{cmd} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the build's inputs so that the clone gets no build/ or egg-info. pip builds it
    in an isolated environment with the setuptools pyproject.toml asks for (the clone's venv may have an older one,
    or none on Python 3.12+)."""
    tmp = tmp_path_factory.mktemp("wheel")
    (tmp / "source").mkdir()
    for name in BUILD_INPUTS:
        if (PROJECT_ROOT / name).is_dir():
            shutil.copytree(PROJECT_ROOT / name, tmp / "source" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(PROJECT_ROOT / name, tmp / "source" / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", tmp / "dist", tmp / "source"],
         cwd=tmp)
    (path,) = (tmp / "dist").glob("fer_utils-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """The bin/ of a fresh virtual environment (no system site packages) holding the wheel and its base dependencies."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", root], cwd=root.parent)
    _run([root / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=root.parent)
    return root / "bin"


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    """A JPEG of one smiling face, in a folder outside the clone."""
    photo = tmp_path_factory.mktemp("photos") / "astro.jpg"
    cv2.imwrite(str(photo), astronaut_bgr())
    return photo


def test_the_wheel_carries_the_default_networks_and_blazeface_in_under_20_mb(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES, f"{wheel.name} is {wheel.stat().st_size / 1e6:.1f} MB"
    assert sorted(n for n in names if n.startswith("fer_utils/networks/")) == sorted(
        f"fer_utils/networks/{name}.tflite" for name in PACKAGED)  # what the recognizer and the webcam run
    assert "fer_utils/blazeface/face_detection_full_range.tflite" in names and "fer_utils/webcam/webcam.js" in names
    assert not [n for n in names if n.endswith(".keras") or n.startswith(("models/", "tests/"))]


def test_predict_and_video_from_the_wheel_recognise_the_face(venv, astronaut):
    run = _run([venv / "fer-utils", "predict", astronaut.name, "--json"], cwd=astronaut.parent)
    (faces,) = json.loads(run.stdout).values()
    assert len(faces) == 1 and faces[0]["emotion"] in EMOTIONS
    assert sum(faces[0]["probabilities"].values()) == pytest.approx(1, abs=1e-5)

    clip = astronaut.with_name("clip.avi")
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for _ in range(5):
        writer.write(astronaut_bgr())
    writer.release()
    _run([venv / "fer-utils", "video", clip.name, "--csv", "faces.csv"], cwd=astronaut.parent)
    assert (astronaut.parent / "faces.csv").read_text().count("\n") == 6  # a header and one face in each frame


def test_the_wheel_has_no_tensorflow_and_its_recognizer_runs_the_networks_it_carries(venv, astronaut):
    code = """
import importlib, json
for name in ("tensorflow", "keras"):
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    raise SystemExit(f"{name} is importable")
from fer_utils.recognizer import EmotionRecognizer
from fer_utils.shipped import live_model_path
print(json.dumps({"default": str(EmotionRecognizer().model_path), "live": str(live_model_path())}))
"""
    run = _run([venv / "python", "-c", code], cwd=astronaut.parent)
    paths = {key: Path(value) for key, value in json.loads(run.stdout).items()}
    assert paths["default"].name == f"{DEFAULT_NETWORK}.tflite" and paths["live"].name == f"{LIVE_NETWORK}.tflite"
    networks = paths["default"].parent
    assert networks.parent.name == "fer_utils" and networks.parent.parent.name == "site-packages"

    aside = networks.with_name("networks.aside")  # a package that lost its networks says to reinstall it
    networks.rename(aside)
    try:
        run = _run([venv / "fer-utils", "predict", astronaut.name], cwd=astronaut.parent, check=False)
    finally:
        aside.rename(networks)
    error = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 2 and error.startswith("error: no trained model") and "reinstall fer_utils" in error
    assert "fer_utils train" not in error
