"""Speed and memory of the recognizer, as ratios against the `fer` package measured in the same run.

    .venv/bin/python benchmarks/bench_recognizer.py [--frames 40] [--long-minutes 10] [--fer-python PATH]

1. Full frame (detect, classify, annotate) on the same 640x480 frames, two sets: 1-3 LFW faces pasted into clutter,
   and the webcam notebook's clip of one real face (the astronaut): frames per second of ours per model and
   detector (Haar, BlazeFace) vs `fer`'s ``detect_emotions`` (its TFLite default and its Keras path).
   Targets: >= 5x faster than fer, >= 30 fps with the shipped default.
2. Batch classification of face crops: faces per second per model vs `fer`'s per-face loop; and the best model's
   network per call through each runtime of the recognizer (LiteRT, the default, vs TensorFlow's tf.function).
3. Memory: peak RSS growth while analysing a generated 10-minute, 30 fps, 640x480 stream (frames are generated on
   the fly, so only the analysis holds memory), detector every 10 frames, tracking in between.

`fer` is a baseline, never a dependency: it runs in its own virtualenv (default /tmp/fervenv), made with
    python3 -m venv /tmp/fervenv
    /tmp/fervenv/bin/pip install tensorflow-cpu==2.21.0 "opencv-python-headless<5"
    /tmp/fervenv/bin/pip install --no-deps fer==25.10.3 requests pillow "setuptools<81"
If it is missing, the ratios are skipped with a message and only our numbers are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from fer_utils.models import build_lenet, build_vgg, load_model  # noqa: E402
from fer_utils.recognizer import EmotionRecognizer, annotate  # noqa: E402
from fer_utils.scenes import make_video  # noqa: E402
from fer_utils.shipped import shipped_models
from fer_utils.video import analyze_video, iter_analysis  # noqa: E402
from fer_utils.webcam import make_clip_frame  # noqa: E402

DETECTORS = ("haar", "blazeface")  # MTCNN is the slow, robust option: not a candidate for live speed

FER_SCRIPT = r"""
import json, os, sys, time, warnings
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
warnings.filterwarnings("ignore")
import logging; logging.disable(logging.WARNING)
import numpy as np
from fer.fer import FER
data = np.load(sys.argv[1])
frames, crops, repeats = data["frames"], data["crops"], int(sys.argv[2])
out = {}
for name, kwargs in (("fer tflite", {}), ("fer keras", {"use_tflite": False})):
    det = FER(**kwargs)
    det.detect_emotions(frames[0])
    t = time.perf_counter()
    found = 0
    for _ in range(repeats):
        for f in frames:
            found += len(det.detect_emotions(f))
    frame_s = (time.perf_counter() - t) / (repeats * len(frames))
    faces = (crops.astype(np.float32) / 255.0 - 0.5) * 2.0  # fer's own preprocessing
    faces = np.stack([__import__("cv2").resize(f, (64, 64)) for f in faces])
    det._classify_emotions(faces[:1])
    t = time.perf_counter()
    for i in range(len(faces)):
        det._classify_emotions(faces[i:i + 1])
    out[name] = {"frame_s": frame_s, "faces_found": found / repeats, "faces_per_s": len(faces) / (time.perf_counter() - t)}
print(json.dumps(out))
"""


def test_frames(n: int) -> list[np.ndarray]:
    """Three generated clips (1, 2 and 3 moving, resizing LFW faces) of n // 3 frames each, back to back."""
    return [f for k in (1, 2, 3) for f, _ in make_video(max(1, n // 3), n_faces=k, seed=100 + k, sizes=(90, 130))]


def clip_frames(n: int) -> list[np.ndarray]:
    """The webcam notebook's generated clip: one real face (the astronaut's, with her head and shoulders), 65-90 px."""
    return [make_clip_frame(i * 150 // n) for i in range(n)]


def models_to_measure() -> dict:
    shipped = {name: str(path) for name, path in shipped_models().items()}
    if shipped:
        return shipped
    print("no shipped model in models/ yet: measuring untrained LeNet and VGG of the default sizes (same speed)")
    return {"lenet (untrained)": build_lenet(), "vgg (untrained)": build_vgg()}


def time_frames(rec: EmotionRecognizer, frames, repeats: int) -> tuple[float, float]:
    for f in frames[:3]:
        annotate(f, rec.predict(f))
    t, found = time.perf_counter(), 0
    for _ in range(repeats):
        for f in frames:
            faces = rec.predict(f)
            annotate(f, faces)
            found += len(faces)
    return (time.perf_counter() - t) / (repeats * len(frames)), found / repeats


def time_video_loop(rec: EmotionRecognizer, frames, repeats: int, detect_every: int) -> tuple[float, float]:
    """The video path: detector every N frames, template tracking in between, batches of 4 frames, annotate."""
    t, found = time.perf_counter(), 0
    for _ in range(repeats):
        for _, frame, ids, faces in iter_analysis(frames, rec, detect_every=detect_every):
            annotate(frame, faces, labels=[f"#{i}" for i in ids])
            found += len(faces)
    return (time.perf_counter() - t) / (repeats * len(frames)), found / repeats


def faces_per_second(rec: EmotionRecognizer, crops: np.ndarray) -> float:
    rec.classify(crops)
    t = time.perf_counter()
    for _ in range(3):
        rec.classify(crops)
    return 3 * len(crops) / (time.perf_counter() - t)


def classify_ms(rec: EmotionRecognizer, crops: np.ndarray, seconds: float = 1.0) -> float:
    """Median milliseconds of one ``classify`` call on ``crops``, over about ``seconds``."""
    rec.classify(crops)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t = time.perf_counter()
        rec.classify(crops)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def run_fer(python: Path, frames, crops, repeats: int) -> dict | None:
    if not python.exists():
        print(f"fer baseline skipped: {python} not found (see this script's docstring to create /tmp/fervenv)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "frames.npz"
        np.savez(data, frames=np.stack(frames), crops=crops)
        script = Path(tmp) / "fer_bench.py"
        script.write_text(FER_SCRIPT)
        done = subprocess.run([str(python), str(script), str(data), str(repeats)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"fer baseline failed (exit {done.returncode}); ratios skipped:\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def long_video_memory(model, minutes: float, fps: int = 30) -> dict:
    n = int(minutes * 60 * fps)
    rec = EmotionRecognizer(model).warmup()
    proc = psutil.Process()
    samples: list[tuple[int, int]] = []
    stop = threading.Event()
    peak = [proc.memory_info().rss]

    def watch():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    def frames():
        for i, (frame, _) in enumerate(make_video(n, n_faces=2, seed=7)):
            if i % 1800 == 0:
                samples.append((i, proc.memory_info().rss))
            yield frame

    watcher = threading.Thread(target=watch, daemon=True)
    # warm-up minute (not counted): first traces, allocator pools
    analyze_video((f for f, _ in make_video(300, n_faces=2, seed=7)), rec, detect_every=10, progress=False, fps=fps)
    start = proc.memory_info().rss
    peak[0] = start
    watcher.start()
    t = time.perf_counter()
    df = analyze_video(frames(), rec, detect_every=10, progress=False, fps=fps)
    seconds = time.perf_counter() - t
    stop.set()
    watcher.join()
    return {"frames": n, "rows": len(df), "seconds": seconds, "start_mb": start / 2**20, "peak_growth_mb": (peak[0] - start) / 2**20,
            "table_mb": df.memory_usage(deep=True).sum() / 2**20,
            "rss_mb_by_minute": [round(r / 2**20, 1) for _, r in samples]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40, help="distinct 640x480 test frames")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the generated stream for memory (0 = skip)")
    ap.add_argument("--detect-every", type=int, default=3, help="detector period of the video path")
    ap.add_argument("--fer-python", type=Path, default=Path("/tmp/fervenv/bin/python"))
    args = ap.parse_args()

    frame_sets = {"LFW scenes": test_frames(args.frames), "astronaut clip": clip_frames(args.frames)}
    models = models_to_measure()
    first = EmotionRecognizer(next(iter(models.values())))
    frames = frame_sets["LFW scenes"]
    crops = np.concatenate([first.locate(f)[1] for f in frames])
    crops = np.concatenate([crops] * max(1, 256 // max(1, len(crops))))[:256]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    best = next(iter(models))
    verdicts, crops_per_s = [], {}
    for set_name, frames in frame_sets.items():
        fer = run_fer(args.fer_python, frames, crops, args.repeats)
        ours = {}
        for name, model in models.items():
            net = model if not isinstance(model, str) else load_model(model)
            for detector in DETECTORS:
                rec = EmotionRecognizer(net, detector).warmup()
                frame_s, found = time_frames(rec, frames, args.repeats)
                ours[f"{name}, {detector}"] = {"frame_s": frame_s, "faces_found": found}
                if detector == "haar" and set_name == "LFW scenes":  # the crops are the same for every set
                    crops_per_s[name] = faces_per_second(rec, crops)
                video_s, video_found = time_video_loop(rec, frames, args.repeats, args.detect_every)
                ours[f"{name}, {detector}, video"] = {"frame_s": video_s, "faces_found": video_found}
        print(f"\n1. full frame, {set_name} ({len(frames)} frames 640x480): "
              f"detect + classify + annotate ('video': detector every {args.detect_every} frames, tracking between)")
        for name, r in (fer or {}).items():
            print(f"  {name:36s} {r['frame_s'] * 1000:7.1f} ms/frame {1 / r['frame_s']:6.1f} fps  faces found {r['faces_found']:.0f}")
        for name, r in ours.items():
            line = f"  ours, {name:30s} {r['frame_s'] * 1000:7.1f} ms/frame {1 / r['frame_s']:6.1f} fps  faces found {r['faces_found']:.0f}"
            if fer:
                line += "  " + ", ".join(f"{fr['frame_s'] / r['frame_s']:.1f}x {n}" for n, fr in fer.items())
            print(line + ("  [>= 30 fps: " + ("yes" if 1 / r["frame_s"] >= 30 else "NO") + "]"))
        if fer:
            for detector in DETECTORS:
                for mode in ("", ", video"):
                    r = ours[f"{best}, {detector}{mode}"]
                    ratio = min(fr["frame_s"] / r["frame_s"] for fr in fer.values())
                    verdicts.append(f"  {set_name}, {best}, {detector}{mode or ', every frame'}: {ratio:.1f}x "
                                    f"({'met' if ratio >= 5 else 'NOT met'}), faces found {r['faces_found']:.0f} vs fer "
                                    f"{min(fr['faces_found'] for fr in fer.values()):.0f}")
    if verdicts:
        print("\ntarget >= 5x faster than fer (the slower ratio of its TFLite and Keras paths), best model:")
        print("\n".join(verdicts))

    print("\n2. batch classification of face crops (faces per second)")
    for name, r in (fer or {}).items():
        print(f"  {name:29s} {r['faces_per_s']:8.0f} faces/s (its per-face loop)")
    for name, per_s in crops_per_s.items():
        line = f"  ours, {name:23s} {per_s:8.0f} faces/s (one call per 64)"
        if fer:
            line += "  " + ", ".join(f"{per_s / fr['faces_per_s']:.1f}x {n}" for n, fr in fer.items())
        print(line)

    print(f"\n2b. the network through each runtime ({best}; LiteRT is the recognizer's default)")
    net = models[best] if not isinstance(models[best], str) else load_model(models[best])
    per_runtime = {rt: EmotionRecognizer(net, runtime=rt).warmup() for rt in ("tensorflow", "litert")}
    for n in (1, 2, 64):
        ms = {rt: classify_ms(rec, crops[:n]) for rt, rec in per_runtime.items()}
        print(f"  {n:2d} face(s) per call: tensorflow {ms['tensorflow']:6.2f} ms, litert {ms['litert']:6.2f} ms "
              f"({ms['tensorflow'] / ms['litert']:.1f}x)")

    if args.long_minutes > 0:
        m = long_video_memory(next(iter(models.values())), args.long_minutes)
        print(f"\n3. memory: {args.long_minutes:g} min at 30 fps ({m['frames']} frames 640x480, 2 faces, generated on the fly, "
              f"detector every 10 frames): {m['seconds']:.0f} s ({m['frames'] / m['seconds']:.0f} fps), "
              f"RSS {m['start_mb']:.0f} MB at start, peak growth {m['peak_growth_mb']:.1f} MB "
              f"(the returned table itself: {m['table_mb']:.1f} MB, {m['rows']} rows); RSS by minute {m['rss_mb_by_minute']}")


if __name__ == "__main__":
    main()
