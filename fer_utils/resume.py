"""Weights in half the space, to carry a run between sessions or back from a GPU machine: one file format.

A training run that outlasts a session commits its state once per session as ``OUT.resume.npz`` (bfloat16 weights
and optimizer moments, at most :data:`RESUME_MAX_BYTES`; :func:`fer_utils.training.write_resume`), and a GPU
machine hands its models back as float16 weights (``scripts/gpu_flagship.py``: its results come back in files of at
most 16 MiB). Both are an ``.npz`` of named groups of arrays (``w0, w1, ...``; ``o0, o1, ...``), floats rounded to
bfloat16 or float16 and integers exact, with a JSON record beside them. NumPy only: no Keras here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fer_utils.atomic import atomic_path

RESUME_SUFFIX = ".resume.npz"
RESUME_MAX_BYTES = 8 * 2**20  # what one run may commit once per session
PRECISIONS = ("bfloat16", "float16")


def resume_path(out: str | os.PathLike) -> Path:
    """Where a run's carried-over state lives: ``models/x.keras`` -> ``models/x.resume.npz``."""
    out = Path(out)
    return out.with_name(out.stem + RESUME_SUFFIX)


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to bfloat16 (to nearest, ties to even), as the uint16 of its upper half."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """The float32 values of bfloat16 numbers stored as uint16 (:func:`to_bfloat16`)."""
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def write_arrays(path: str | os.PathLike, groups: dict[str, list[np.ndarray]], record: dict,
                 precision: str = "bfloat16") -> Path:
    """Write ``groups`` (name -> arrays, e.g. ``{"w": weights, "o": optimizer_state}``) with floats rounded to
    ``precision`` and integers exact, and ``record`` (JSON), to ``path`` atomically, compressed."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is unknown; expected one of {list(PRECISIONS)}")
    if any(not name.isalpha() for name in groups):
        raise ValueError(f"group names must be letters, got {list(groups)}")
    arrays = {}
    for name, values in groups.items():
        for i, value in enumerate(values):
            value = np.asarray(value)
            if value.dtype.kind == "f":
                value = to_bfloat16(value) if precision == "bfloat16" else _to_float16(value)
            arrays[f"{name}{i}"] = value
    header = json.dumps({"precision": precision, "record": record})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, header=np.array(header), **arrays)
    return Path(path)


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, list[np.ndarray]], dict]:
    """The groups (floats back in float32) and the record that :func:`write_arrays` wrote to ``path``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            stored = {k: z[k] for k in z.files if k != "header"}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a weights file of fer_utils ({type(e).__name__}: {e})") from e
    groups: dict[str, list[np.ndarray]] = {}
    for key in sorted(stored, key=lambda k: (k.rstrip("0123456789"), int(k[len(k.rstrip("0123456789")):]))):
        value = stored[key]
        if header["precision"] == "bfloat16" and value.dtype == np.uint16:
            value = from_bfloat16(value)
        elif value.dtype == np.float16:
            value = value.astype(np.float32)
        groups.setdefault(key.rstrip("0123456789"), []).append(value)
    return groups, header["record"]


def _to_float16(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # an overflow is found and named just below
        half = x.astype(np.float16)
    if not np.isfinite(half[np.isfinite(x)]).all():
        raise ValueError("weights beyond float16's range (65504): write them in bfloat16")
    return half
