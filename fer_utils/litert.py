"""LiteRT, TensorFlow Lite's runtime: it runs the face detector and the emotion networks without TensorFlow.

Every shipped model has its ``.tflite`` (written when the model is saved, by ``train``, ``ensemble``, ``card`` and
``export``), so recognising faces needs NumPy, OpenCV and ``ai-edge-litert`` alone. :func:`litert_path` says where
it lives: the networks of the models in ``models/`` are package data in ``fer_utils/networks/``, so that an installed
package (a wheel, ``pip install .``) carries what its recognizer runs; anyone else's model has its ``.tflite`` beside
it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from fer_utils.constants import EMOTIONS, NETWORKS_DIR, SHIPPED_DIR, SIDE
from fer_utils.quiet import quiet_native_logs


def litert_interpreter(content: bytes, input_shape: list[int] | None = None):
    """A LiteRT interpreter (XNNPACK, up to 4 threads, or ``$FER_UTILS_LITERT_THREADS``) for a ``.tflite`` model's bytes, with its input resized to
    ``input_shape`` if given and its tensors allocated, and the index of its input. Not thread-safe: one per thread.
    """
    from ai_edge_litert.interpreter import Interpreter  # loaded once, on first use

    with quiet_native_logs():
        # FER_UTILS_LITERT_THREADS: one in each corpus worker process, so N workers share N cores without a fight
        threads = int(os.environ.get("FER_UTILS_LITERT_THREADS", 0)) or min(4, os.cpu_count() or 1)
        interpreter = Interpreter(model_content=content, num_threads=threads)
        index = interpreter.get_input_details()[0]["index"]
        if input_shape is not None:
            interpreter.resize_tensor_input(index, input_shape)
        interpreter.allocate_tensors()
    return interpreter, index


def litert_path(model_path: str | os.PathLike) -> Path:
    """The ``.tflite`` that runs a model: the path itself for a ``.tflite``; for a model in ``models/``, the file of
    its name in ``fer_utils/networks/`` (package data); for any other model, the file of its name beside it."""
    path = Path(model_path)
    if path.suffix == ".tflite":
        return path
    if path.resolve().parent == SHIPPED_DIR:
        return NETWORKS_DIR / f"{path.stem}.tflite"
    return path.with_suffix(".tflite")


def keras_path(network_path: str | os.PathLike) -> Path:
    """The ``.keras`` model a ``.tflite`` was exported from: the inverse of :func:`litert_path`."""
    path = Path(network_path)
    return SHIPPED_DIR / f"{path.stem}.keras" if path.resolve().parent == NETWORKS_DIR else path.with_suffix(".keras")


def training_install() -> bool:
    """Whether Keras is importable here (``pip install 'fer_utils[train]'``): then a missing network can be exported
    again from its ``.keras``; a light install can only get the package's networks back by reinstalling it."""
    return importlib.util.find_spec("keras") is not None


def network_fix(network_path: str | os.PathLike) -> str:
    """What to do about a missing or unreadable ``.tflite``, for the install at hand (ends an error message): export
    it again from its ``.keras`` where Keras is installed and the ``.keras`` is there; else, for one of the package's
    networks, reinstall the package; else export it where TensorFlow is installed."""
    path = Path(network_path)
    export = f"`python -m fer_utils export --model {keras_path(path)}`"
    if training_install() and keras_path(path).is_file():
        return f"write it with {export}"
    if path.resolve().parent == NETWORKS_DIR:
        return ("reinstall fer_utils, whose package carries it: `pip install --force-reinstall` the wheel or the clone "
                "(in a clone, `git checkout fer_utils/networks` first)")
    return f"write it with {export} where TensorFlow is installed (`pip install 'fer_utils[train]'`)"


class LiteRTNetwork:
    """An emotion network in a ``.tflite`` file: ``net(faces)`` maps uint8 (N, 48, 48) to float32 (N, 7).

    A LiteRT interpreter is not thread-safe, so each thread gets its own, one per batch size.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"LiteRT model {self.path} does not exist; {network_fix(self.path)}")
        self._content = self.path.read_bytes()
        self._local = threading.local()
        try:  # a damaged or foreign file fails here, not on the first frame
            it, _ = litert_interpreter(self._content)
            inp, out = it.get_input_details()[0], it.get_output_details()[0]
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"LiteRT model {self.path} could not be read ({e}); {network_fix(self.path)}") from e
        if tuple(inp["shape"][1:]) != (SIDE, SIDE) or inp["dtype"] != np.uint8 or out["shape"][-1] != len(EMOTIONS):
            raise ValueError(f"LiteRT model {self.path} must map uint8 (N, {SIDE}, {SIDE}) faces to {len(EMOTIONS)} "
                             f"probabilities; got {inp['dtype'].__name__} {list(inp['shape'])} -> {list(out['shape'])}")

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        if not hasattr(self._local, "by_size"):
            self._local.by_size = {}
        interpreters = self._local.by_size
        if len(faces) not in interpreters:
            it, inp = litert_interpreter(self._content, [len(faces), SIDE, SIDE])
            interpreters[len(faces)] = it, inp, it.get_output_details()[0]["index"]
        it, inp, out = interpreters[len(faces)]
        it.set_tensor(inp, np.ascontiguousarray(faces, np.uint8))
        it.invoke()
        return it.get_tensor(out)
