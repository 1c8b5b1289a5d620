"""Frames per second and latency of the live webcam panel, through the kernel path and the browser path.

    .venv/bin/python benchmarks/bench_webcam.py [--seconds 15] [--model PATH] [--no-browser] [--screenshot PNG]

Baseline measured in the same run: the recognizer alone (``predict`` on the same 640x480 frames in a loop), the
ceiling any live path can reach; each path is printed as frames per second and as a ratio of that ceiling.

1. Kernel path: ``WebcamPanel`` on a generated 640x480 video file, no rate limit: frames per second and the median
   capture-to-display latency (read, detect, classify, annotate, JPEG, widget message).
2. Browser path: JupyterLab and Debian's Chromium with a fake camera playing a generated 640x480 clip; notebook 04
   runs in the real browser and Start is pressed: frames per second and the median end-to-end latency (capture in
   the browser, JPEG, kernel, faces back in the browser), read from the panel. The panel caps the browser at 30 fps.

Both also print how long after the panel's cell ran (kernel: the panel created, loading its model; browser: Start
pressed) the first frame with a recognised face came back.

Targets (issues 7 and 17): kernel >= 25 fps, browser >= 15 fps, median latency < 100 ms, first recognised frame
within 3 s. The model is the notebook's default (``live_model_path()``: the live webcam's default), or an
untrained LeNet (no model shipped yet).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the JupyterLab + Chromium harness shared with tests/test_browser.py

from fer_utils.recognizer import EmotionRecognizer  # noqa: E402
from fer_utils.shipped import live_model_path  # noqa: E402
from fer_utils.webcam import WebcamPanel, make_clip_frame, save_clip  # noqa: E402

TARGETS = {"kernel_fps": 25.0, "browser_fps": 15.0, "latency_ms": 100.0, "first_face_s": 3.0}


def model_path(arg: str | None, tmp: Path) -> tuple[Path, str]:
    if arg:
        return Path(arg), Path(arg).stem
    if (path := live_model_path()) is not None:
        return path, f"{path.stem} (the notebook's default, live_model_path())"
    from fer_utils.models import build_lenet, save_model

    return save_model(build_lenet(), tmp / "lenet.keras"), "untrained LeNet, shipped size (no model shipped yet)"


def bench_recognizer(recognizer: EmotionRecognizer, seconds: float) -> float:
    frames = [make_clip_frame(i) for i in range(0, 150, 5)]
    recognizer.predict(frames[0])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        recognizer.predict(frames[n % len(frames)])
        n += 1
    return n / (time.perf_counter() - t0)


def first_face(status, t0: float, timeout: float = 60.0) -> float | None:
    """Seconds from ``t0`` until ``status()`` shows a face (None: never within ``timeout``)."""
    while time.perf_counter() - t0 < timeout:
        if (s := status()) and s["faces"] >= 1:
            return time.perf_counter() - t0
        time.sleep(0.02)
    return None


def first_face_kernel(model: Path, video: Path) -> float | None:
    """Seconds from creating the panel (its model loaded from the file) to its first frame with a face."""
    t0 = time.perf_counter()
    panel = WebcamPanel(str(video), str(model), record=False)
    panel.start()
    seconds = first_face(panel.stats, t0)
    panel.stop()
    return seconds


def bench_kernel(recognizer: EmotionRecognizer, video: Path, seconds: float) -> dict:
    panel = WebcamPanel(str(video), recognizer, max_fps=None, record=False)
    panel.start()
    time.sleep(2)  # warm-up: first frames trace the network
    f1, t1 = panel.stats()["frames"], time.perf_counter()
    time.sleep(seconds)
    stats = panel.stats()
    fps = (stats["frames"] - f1) / (time.perf_counter() - t1)
    panel.stop()
    return {"fps": fps, "latency_ms": stats["latency_ms"], "latency_p90_ms": stats["latency_p90_ms"],
            "error": panel.message.value}


def bench_browser(model: Path, tmp: Path, seconds: float, shot: Path | None) -> dict:
    from lab_harness import chromium, chromium_missing_reason, jupyterlab, prepare, read_status, run_all_cells

    reason = chromium_missing_reason()
    if reason:
        return {"skipped": reason}
    clip = save_clip(tmp / "clip.y4m", n_frames=150)
    name = prepare(tmp / "root", ROOT / "notebooks" / "04_live_webcam.ipynb", {"MODEL": str(model)})
    with jupyterlab(tmp / "root", tmp / "jupyter") as (base, token), chromium(clip) as page:
        run_all_cells(page, base, token, name)
        page.locator(".jp-OutputArea-output button", has_text="Start").click()
        first_face_s = first_face(lambda: read_status(page), time.perf_counter())
        deadline = time.monotonic() + 60
        while not ((s := read_status(page)) and s["frames"] >= 10) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # warm-up
        first, t1 = read_status(page), time.perf_counter()
        time.sleep(seconds)
        last, t2 = read_status(page), time.perf_counter()
        if shot is not None:
            page.locator(".jp-OutputArea-output .fer-webcam").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot))
        page.locator(".jp-OutputArea-output button", has_text="Stop").click()
    if not (first and last):
        return {"skipped": "the panel's status line never showed frames"}
    return {"fps": (last["frames"] - first["frames"]) / (t2 - t1), "latency_ms": last["latency_ms"],
            "faces": last["faces"], "emotion": last["emotion"], "first_face_s": first_face_s}


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "never (within 60 s)"
    return f"{seconds:.2f} s ({verdict(seconds, TARGETS['first_face_s'], False)})"


def verdict(value: float, target: float, higher: bool = True) -> str:
    ok = value >= target if higher else value < target
    return f"{'meets' if ok else 'MISSES'} target {'>=' if higher else '<'} {target:g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="measuring time per path")
    p.add_argument("--model", help=".keras model (default: the live webcam's)")
    p.add_argument("--no-browser", action="store_true", help="skip the JupyterLab + Chromium path")
    p.add_argument("--screenshot", type=Path, help="save a screenshot of the panel in the browser")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, label = model_path(args.model, tmp)
        print(f"model: {label}; frames 640x480 with one real face (scikit-image astronaut); {os.cpu_count()} CPUs")
        recognizer = EmotionRecognizer(model, "blazeface")  # the panel's own detector
        base = bench_recognizer(recognizer, args.seconds / 2)
        print(f"baseline  recognizer.predict alone       {base:6.1f} fps")
        video = save_clip(tmp / "clip.avi", n_frames=150)
        k = bench_kernel(recognizer, video, args.seconds)
        print(f"kernel    file source, 640x480           {k['fps']:6.1f} fps ({k['fps'] / base:.2f}x baseline; "
              f"{verdict(k['fps'], TARGETS['kernel_fps'])}); median latency {k['latency_ms']:.0f} ms "
              f"(p90 {k['latency_p90_ms']:.0f}; {verdict(k['latency_ms'], TARGETS['latency_ms'], False)})")
        if k["error"]:
            print(f"          error shown in the panel: {k['error']}")
        print(f"          first recognised frame {seconds_text(first_face_kernel(model, video))} after the panel was "
              "created (its model loaded from the file)")
        if args.no_browser:
            return 0
        b = bench_browser(model, tmp, args.seconds, args.screenshot)
        if "skipped" in b:
            print(f"browser   skipped: {b['skipped']}")
            return 0
        print(f"browser   Chromium fake camera, 640x480  {b['fps']:6.1f} fps ({b['fps'] / base:.2f}x baseline; "
              f"{verdict(b['fps'], TARGETS['browser_fps'])}); median end-to-end latency {b['latency_ms']:.0f} ms "
              f"({verdict(b['latency_ms'], TARGETS['latency_ms'], False)}); {b['faces']} face, {b['emotion']}")
        print(f"          first recognised frame {seconds_text(b['first_face_s'])} after Start was pressed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
