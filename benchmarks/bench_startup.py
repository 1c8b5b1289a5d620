"""Start-up and the `video` command's defaults, as ratios against baselines measured in the same run.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 3] [--frames 150] [--fer-python PATH]

1. Cold start, each a fresh process (median of ``--repeats``): ``import fer_utils``; the webcam notebook's imports;
   ``python -m fer_utils predict photo.jpg`` (one face, the default model from its ``.tflite``) against
   ``python -c "import tensorflow"``.
   Targets: the import under 0.5 s; predict >= 6x faster than importing TensorFlow, and under 300 MB of memory.
2. ``analyze_video`` with its defaults (the ``video`` command's: the shipped default, the BlazeFace detector on
   every frame) on a 640x480 clip of one real face (the webcam notebook's astronaut clip), against `fer`'s Keras
   path (``FER(use_tflite=False).detect_emotions``) on the same frames. Targets: >= 30 fps and >= 5x fer. `fer`
   runs in its own virtualenv (see bench_recognizer.py); without it the ratio is skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from bench_recognizer import clip_frames, run_fer  # noqa: E402

from fer_utils.recognizer import EmotionRecognizer  # noqa: E402
from fer_utils.scenes import astronaut_bgr  # noqa: E402
from fer_utils.video import analyze_video  # noqa: E402

# notebook 04's import cell: its first recognised frame comes this long after the cell runs, plus the panel's start
WEBCAM_IMPORTS = ("from fer_utils import plots; from fer_utils.shipped import shipped_models; "
                  "from fer_utils.webcam import PhotoPanel, WebcamPanel")


def cold(args: list[str], repeats: int) -> float:
    """Median wall seconds of a fresh ``python ARGS`` process (it must succeed)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_mb(args: list[str]) -> float:
    """Peak resident memory (MB) of a fresh ``python ARGS`` process, read by a small Python parent: a child forked
    from this process, which has TensorFlow loaded, would count this process's pages as its own."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    run = subprocess.run([sys.executable, "-c", code, sys.executable, *args], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return int(run.stdout) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150, help="frames of the 640x480 clip")
    ap.add_argument("--fer-python", type=Path, default=Path("/tmp/fervenv/bin/python"))
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        cv2.imwrite(str(photo), astronaut_bgr())
        import_s = cold(["-c", "import fer_utils"], args.repeats)
        webcam_s = cold(["-c", WEBCAM_IMPORTS], args.repeats)
        predict_s = cold(["-m", "fer_utils", "predict", str(photo)], args.repeats)
        predict_mb = peak_mb(["-m", "fer_utils", "predict", str(photo)])
        tf_s = cold(["-c", "import tensorflow"], args.repeats)
    print(f"\n1. cold start, fresh processes (median of {args.repeats}):")
    print(f"  import fer_utils                      {import_s:6.2f} s  [< 0.5 s: {'yes' if import_s < 0.5 else 'NO'}]")
    print(f"  the webcam notebook's imports         {webcam_s:6.2f} s  (then the panel: bench_webcam.py)")
    print(f"  import tensorflow (the baseline)      {tf_s:6.2f} s")
    print(f"  python -m fer_utils predict photo.jpg {predict_s:6.2f} s  {tf_s / predict_s:.1f}x faster than importing "
          f"TensorFlow [>= 6x: {'yes' if tf_s / predict_s >= 6 else 'NO'}], peak memory {predict_mb:.0f} MB "
          f"[< 300 MB: {'yes' if predict_mb < 300 else 'NO'}]")

    frames = clip_frames(args.frames)
    defaults = analyze_video.__kwdefaults__
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, frames[0].shape[1::-1])
        for f in frames:
            writer.write(f)
        writer.release()
        recognizer = EmotionRecognizer(detector=defaults["detector"]).warmup()
        analyze_video(clip, recognizer, progress=False, max_frames=10)
        t = time.perf_counter()
        table = analyze_video(clip, recognizer, progress=False)
        fps = len(frames) / (time.perf_counter() - t)
    print(f"\n2. analyze_video's defaults (detector {defaults['detector']}, every {defaults['detect_every']} frame(s), model "
          f"{Path(recognizer.model_path).name}), {len(frames)} frames 640x480, one face:")
    line = f"  ours {fps:6.1f} fps, faces found in {table['frame'].nunique()} frames [>= 30 fps: {'yes' if fps >= 30 else 'NO'}]"
    crops = np.zeros((8, 48, 48), np.uint8)
    fer = run_fer(args.fer_python, frames[:40], crops, 1)
    if fer:
        keras_fps = 1 / fer["fer keras"]["frame_s"]
        line += (f"\n  fer Keras path {keras_fps:6.1f} fps (TFLite path {1 / fer['fer tflite']['frame_s']:.1f} fps): "
                 f"ours {fps / keras_fps:.1f}x [>= 5x: {'yes' if fps / keras_fps >= 5 else 'NO'}]")
    print(line)


if __name__ == "__main__":
    main()
