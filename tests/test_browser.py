"""End to end in a real browser: JupyterLab + Debian's Chromium with a fake camera playing a real face; the
notebook's panel, with its defaults, must show a detected face, its emotion and a frame rate above zero, and the
test prints the frames per second and the median latency it measured."""

from __future__ import annotations

import os
import time

import pytest
from lab_harness import chromium, chromium_missing_reason, jupyterlab, prepare, read_status, run_all_cells, screenshot

from fer_utils.constants import EMOTIONS, PROJECT_ROOT
from fer_utils.webcam import save_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NOTEBOOK = PROJECT_ROOT / "notebooks" / "04_live_webcam.ipynb"


def test_notebook_panel_recognises_the_browser_camera(tmp_path, capsys):
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    clip = save_clip(tmp_path / "clip.y4m", n_frames=60)
    name = prepare(tmp_path / "root", NOTEBOOK, {})  # the notebook's defaults: the browser, the live model
    with jupyterlab(tmp_path / "root", tmp_path / "jupyter") as (base, token), chromium(clip) as page:
        try:
            run_all_cells(page, base, token, name)
            # the cells have run; their widget views may still be rendering on a busy machine
            for view in (".fer-photo-result", ".fer-webcam video"):
                page.locator(f".jp-OutputArea-output {view}").first.wait_for(state="attached", timeout=60000)
            assert page.locator(".jp-OutputArea-output .fer-photo-result").count() == 1, "the photo cell ran"
            assert page.locator(".jp-OutputArea-output .fer-webcam video").count() == 1, "anywidget view rendered"
            page.locator(".jp-OutputArea-output button", has_text="Start").click()
            status, deadline = None, time.monotonic() + 90
            while time.monotonic() < deadline:
                status = read_status(page)
                if status and status["faces"] >= 1 and status["fps"] > 0 and status["frames"] >= 10:
                    break
                time.sleep(0.5)
            assert status is not None, "the panel's status line is missing"
            assert status["faces"] >= 1 and status["emotion"] in EMOTIONS and 0 < status["score"] <= 1
            assert status["fps"] > 0 and status["latency_ms"] > 0
            first, t1 = status, time.monotonic()
            time.sleep(10)  # measured where it runs: frames the panel counted, and the latency it shows
            last = read_status(page)
            fps = (last["frames"] - first["frames"]) / (time.monotonic() - t1)
            with capsys.disabled():
                print(f"\nbrowser path (Chromium fake camera, 640x480, {os.cpu_count()} CPUs): {fps:.1f} fps, "
                      f"median latency {last['latency_ms']:.0f} ms")
            assert fps > 1
            drawn = page.locator(".jp-OutputArea-output .fer-webcam-overlay").evaluate(
                "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((v, i) => i % 4 == 3 && v)"
                ".length")
            assert drawn > 100, "the browser draws the kernel's boxes over the video"
            errors = page.locator(".jp-OutputArea-output .fer-error")
            assert errors.count() == 0, errors.first.inner_text()
            page.locator(".jp-OutputArea-output button", has_text="Stop").click()
            # a page that is neither https nor localhost has no navigator.mediaDevices: the panel must say so
            page.evaluate("Object.defineProperty(navigator, 'mediaDevices', {value: undefined, configurable: true})")
            page.locator(".jp-OutputArea-output button", has_text="Start").click()
            errors.first.wait_for(timeout=20000)
            assert "https" in errors.first.inner_text() and "localhost" in errors.first.inner_text()
        except BaseException:
            screenshot(page, tmp_path / "failure.png")
            raise
