"""Drive a notebook in a real JupyterLab with Debian's Chromium and a fake camera (the browser test and the webcam
benchmark share it). JupyterLab runs on localhost with throwaway config, runtime and workspace folders; Chromium's
fake camera plays a .y4m clip. Never `playwright install`: Playwright drives the system Chromium."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
STATUS = re.compile(r"(\d+) faces? · (\w+) ([\d.]+) · ([\d.]+) fps · latency (\d+) ms \(median\) · (\d+) frames")


def chromium_missing_reason() -> str | None:
    """Why the browser path cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright python package is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyterlab(root: Path, scratch: Path, env: dict | None = None) -> Iterator[tuple[str, str]]:
    """JupyterLab serving ``root`` on a free localhost port; yields (base URL, token). Stopped on exit."""
    port, token = _free_port(), secrets.token_hex(16)
    dirs = {name: scratch / name for name in ("config", "runtime", "workspaces")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    # settings: start the notebook's kernel without asking (the "Select Kernel" dialog races Run All), no news
    settings = dirs["config"] / "lab" / "user-settings" / "@jupyterlab"
    for ext, name, value in (("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
                             ("apputils-extension", "notification", {"fetchNews": "false"})):
        (settings / ext).mkdir(parents=True, exist_ok=True)
        (settings / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    env = {**os.environ, **(env or {}), "JUPYTER_CONFIG_DIR": str(dirs["config"]),
           "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"])}
    log = open(scratch / "jupyterlab.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {(scratch / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start within 90 s") from None
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def chromium(fake_video: Path) -> Iterator:
    """A headless Chromium page whose camera plays ``fake_video`` (.y4m), permission granted."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={fake_video}",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            yield page
        finally:
            browser.close()


def run_all_cells(page, base: str, token: str, notebook: str, timeout_s: float = 180) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, run all cells, and wait until every code cell ran."""
    page.goto(f"{base}/lab/tree/{notebook}?token={token}", timeout=timeout_s * 1000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout_s * 1000)
    _wait(page, timeout_s, "ready")
    started = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]" \
              ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"
    for attempt in range(5):  # a click racing a dialog or a re-render is lost: retry until cells start
        _accept_dialog(page)
        try:
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click(timeout=5000)
            page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click(timeout=5000)
            page.wait_for_function(started, timeout=15000, polling=250)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; try again
            if attempt == 4:
                raise
            page.keyboard.press("Escape")
    _wait(page, timeout_s, "done")


def _wait(page, timeout_s: float, until: str) -> None:
    """Until the kernel is idle ("ready") or every code cell has run ("done"); accepts the kernel dialog.

    "ready" must hold for 2 s in a row: JupyterLab may start a second kernel and swap to it just after opening a
    notebook, and cells sent before the swap are lost.
    """
    deadline = time.monotonic() + timeout_s
    stable_since = None
    while True:
        _accept_dialog(page)
        state = page.evaluate(
            """() => {
                const s = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                    .map(p => p.textContent.trim());
                return {idle: !!s && s.getAttribute('data-status') === 'idle',
                        done: prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p))};
            }""")
        if state["idle"] and until == "done" and state["done"]:
            return
        if state["idle"] and until == "ready":
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 2:
                return
        else:
            stable_since = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"JupyterLab notebook not {until} within {timeout_s} s: {state}")
        time.sleep(0.25)


def _accept_dialog(page) -> None:
    """Accept JupyterLab's "Select Kernel" dialog (it may pop up while a notebook opens) if it is showing."""
    dialog = page.locator(".jp-Dialog button.jp-mod-accept")
    if dialog.count():
        try:
            dialog.first.click(timeout=2000)
        except Exception:  # noqa: BLE001 - it closed by itself meanwhile
            pass


def output_text(page, selector: str) -> str:
    """Text of ``selector`` inside cell output areas only (never cell source)."""
    return page.locator(f".jp-OutputArea-output {selector}").first.inner_text(timeout=5000)


def read_status(page) -> dict | None:
    """The webcam panel's status line, parsed: faces, emotion, score, fps, latency_ms, frames."""
    m = STATUS.search(output_text(page, ".fer-status"))
    if not m:
        return None
    faces, emotion, score, fps, latency, frames = m.groups()
    return {"faces": int(faces), "emotion": emotion, "score": float(score), "fps": float(fps),
            "latency_ms": float(latency), "frames": int(frames)}


def prepare(root: Path, notebook: Path, parameters: dict) -> str:
    """Copy ``notebook`` into ``root`` with ``parameters`` injected the way papermill does; return its name. Each
    parameter must be one its ``parameters`` cell sets (:func:`fer_utils.workbook.check_parameters`)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from fer_utils.workbook import check_parameters

    check_parameters(notebook, parameters)
    nb = parameterize_notebook(load_notebook_node(str(notebook)), parameters)
    root.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, root / notebook.name)
    return notebook.name


def screenshot(page, path: Path) -> None:
    """Best effort: a picture of the page when something failed."""
    try:
        page.screenshot(path=str(path), full_page=True)
    except Exception:  # noqa: BLE001
        pass


