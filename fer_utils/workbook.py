"""Run the notebooks headless, top to bottom, with papermill: ``python -m fer_utils.workbook [NOTEBOOK...]``.

Executed copies and HTML exports go to ``runs/``; the notebooks in ``notebooks/`` are never written to, so they
stay committed without outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_utils.loader import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"
RUNS = PROJECT_ROOT / "runs"
# Headless runs have no browser and no camera: the webcam notebook plays its generated clip for a few seconds.
HEADLESS_PARAMETERS = {"04_live_webcam.ipynb": {"SOURCE": "clip", "DURATION": 10}}


def run_notebook(notebook: str | Path, out_dir: str | Path = RUNS, parameters: dict | None = None,
                 html: bool = True, timeout: int = 3600) -> Path:
    """Execute ``notebook`` with ``parameters`` injected after its ``parameters`` cell; return the executed copy."""
    import papermill

    notebook, out_dir = Path(notebook), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / notebook.name
    papermill.execute_notebook(
        str(notebook), str(out), parameters=parameters or {}, cwd=str(notebook.parent), kernel_name="python3",
        progress_bar=False, execution_timeout=timeout,
    )
    if html:
        import nbconvert
        import nbformat

        body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))
        out.with_suffix(".html").write_text(body, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the given notebooks, or all of ``notebooks/*.ipynb`` in order."""
    p = argparse.ArgumentParser(prog="python -m fer_utils.workbook", description=__doc__)
    p.add_argument("notebooks", nargs="*", type=Path)
    p.add_argument("--out", type=Path, default=RUNS)
    args = p.parse_args(argv)
    for nb in args.notebooks or sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
        print(f"running {nb.name} ...", flush=True)
        print(f"  wrote {run_notebook(nb, args.out, HEADLESS_PARAMETERS.get(nb.name))} and its .html", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
