"""Remake the README's two pictures from the project's own output (no FER2013 face in either):

- ``docs/images/live_panel.jpg``: the live webcam panel of ``04_live_webcam.ipynb`` in JupyterLab, Chromium's fake
  camera playing the generated astronaut clip (scikit-image's public-domain photo), cropped to the panel;
- ``docs/images/confusion.png``: the default model's row-normalised PublicTest confusion matrix, drawn from its card
  (``models/<name>.json``: aggregate counts, measured by ``python -m fer_utils card``).

    .venv/bin/python scripts/readme_pictures.py [--model CARD] [--out docs/images]

The panel picture needs Debian's Chromium (``apt-get install chromium``) and the workbook's packages; without
Chromium only the confusion matrix is made.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from fer_utils.shipped import default_model_path  # reads cards only: no Keras

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # lab_harness: JupyterLab and Chromium, shared with the browser test


def confusion_figure(card_path: Path):
    """The card's flip-and-shift TTA confusion matrix, rows divided by their totals (recall on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    from fer_utils.plots import plot_confusion

    card = json.loads(card_path.read_text())
    result = card["results"]["tta_shift"]
    title = (f"{card['name']} on {card['split']} (n={result['n']}, flip and shift TTA): "
             f"accuracy {result['accuracy']:.1%}, macro-F1 {result['macro_f1']:.3f}")
    fig = plot_confusion(result["confusion_matrix"], normalize=True, title=title)
    fig.axes[0].title.set_fontsize(9)
    return fig


def confusion_picture(card_path: Path, out: Path) -> Path:
    """:func:`confusion_figure` as a PNG at ``out``."""
    confusion_figure(card_path).savefig(out, dpi=90, bbox_inches="tight")
    return out


def panel_picture(out: Path, seconds: float = 4.0) -> Path | None:
    """A screenshot of the running panel in JupyterLab; None (with the reason printed) where Chromium is missing."""
    from lab_harness import chromium, chromium_missing_reason, jupyterlab, prepare, read_status, run_all_cells

    from fer_utils.webcam.sources import save_clip

    reason = chromium_missing_reason()
    if reason:
        print(f"skipped {out.name}: {reason}")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = save_clip(tmp / "clip.y4m", n_frames=150)
        name = prepare(tmp / "root", ROOT / "notebooks" / "04_live_webcam.ipynb", {})
        with jupyterlab(tmp / "root", tmp / "jupyter") as (base, token), chromium(clip) as page:
            run_all_cells(page, base, token, name)
            page.locator(".jp-OutputArea-output button", has_text="Start").click()
            deadline = time.monotonic() + 60
            while not ((s := read_status(page)) and s["frames"] >= 10 and s["faces"]) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(seconds)
            panel = page.locator(".jp-OutputArea-output:has(.fer-webcam)").first
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(out), type="jpeg", quality=85)
            page.locator(".jp-OutputArea-output button", has_text="Stop").click()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model_path().with_suffix(".json"),
                   help="the card to draw (default: the default model's)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for made in (confusion_picture(args.model, args.out / "confusion.png"), panel_picture(args.out / "live_panel.jpg")):
        if made is not None:
            print(f"wrote {made} ({made.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
