"""The GPU flagship script, rehearsed on a CPU with tiny networks: probe, teachers, ensemble, distilled student,
float16 hand-back and unpacking, exactly the steps a GPU machine runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fer_utils.constants import PROJECT_ROOT
from fer_utils.loader import pack
from fer_utils.models import load_model
from fer_utils.shipped import read_info
from fer_utils.synthetic import make_synthetic

pytest.importorskip("jax")
SCRIPT = str(PROJECT_ROOT / "scripts" / "gpu_flagship.py")


def without_packages(folder, *names) -> str:
    """A folder whose stub packages fail to import, as they would where ``names`` are not installed: put first on
    PYTHONPATH, it reaches every process the script starts."""
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f'raise ImportError("No module named {name!r} (hidden by the test)")\n')
    return str(folder)


@pytest.mark.slow
def test_the_gpu_script_runs_start_to_finish_and_its_teachers_unpack(tmp_path):
    packed = pack(make_synthetic(300, seed=0), tmp_path / "faces.npz.xz")
    # the GPU machine has JAX but neither TensorFlow nor LiteRT: the run must not need them
    hidden = without_packages(tmp_path / "hidden", "tensorflow", "ai_edge_litert")
    env = {**os.environ, "KERAS_BACKEND": "jax", "FLAGSHIP_WORK": str(tmp_path / "work"),
           "PYTHONPATH": os.pathsep.join([hidden, str(PROJECT_ROOT)])}
    for name in ("tensorflow", "ai_edge_litert"):
        tried = subprocess.run([sys.executable, "-c", f"import {name}"], env=env, capture_output=True, text=True)
        assert tried.returncode == 1 and "hidden by the test" in tried.stderr
    run = subprocess.run([sys.executable, SCRIPT, str(packed), str(tmp_path / "out"), "--tiny", "--budget", "4",
                          "--seeds", "2", "--probe-timeout", "900"], env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["student.keras", "summary.json", "teacher_0.npz", "teacher_1.npz"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["ensemble"]) == {"plain", "flip", "shift"} and summary["student"] in ("student_0", "student_1")
    student = read_info(out / "student.keras")
    assert student["recipe"]["teacher"].endswith("teachers_x2.keras") and student["recipe"]["teacher_weight"] == 0.7
    assert student["machine"]["backend"] == "jax" and student["data"]["sha256"] is None  # synthetic: no file


    # back here, with TensorFlow
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    unpacked = subprocess.run([sys.executable, SCRIPT, "--unpack", str(out), str(tmp_path / "models")], env=env,
                              capture_output=True, text=True, timeout=300)
    assert unpacked.returncode == 0, unpacked.stderr[-3000:]
    faces = make_synthetic(300, seed=0).images[:64]
    for seed in (0, 1):
        rebuilt = load_model(tmp_path / "models" / f"teacher_{seed}.keras")  # under TensorFlow, here
        original = load_model(tmp_path / "work" / f"teacher_{seed}.keras")
        assert read_info(tmp_path / "models" / f"teacher_{seed}.keras")["weights_rounded_to"] == "float16"
        np.testing.assert_allclose(np.asarray(rebuilt(faces, training=False)), np.asarray(original(faces, training=False)),
                                   atol=5e-3)


def test_a_stalled_probe_stops_the_run_with_a_message(tmp_path):
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    try:
        import gpu_flagship
    finally:
        sys.path.pop(0)
    with pytest.raises(RuntimeError, match="did not finish within 1 s"):
        gpu_flagship.train_all({"slow": {"model": "lenet", "epochs": 1}}, "synthetic", tmp_path, timeout=1)
