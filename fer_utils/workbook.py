"""Run the notebooks headless, top to bottom, with papermill: ``python -m fer_utils.workbook [NOTEBOOK...]``.

Executed copies and HTML exports go to ``runs/``; the notebooks in ``notebooks/`` are never written to, so they
stay committed without outputs. While it runs it says what it is doing: each code cell as it starts (its number,
its first line, the time since the notebook started) and what the cells print, indented (so training shows one line
per epoch).
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import nbconvert
import nbformat
import papermill

from fer_utils.constants import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"
RUNS = PROJECT_ROOT / "runs"
# Headless runs have no browser and no camera: the webcam notebook plays its generated clip for a few seconds.
# Training prints one line per epoch rather than a progress bar redrawn in place.
HEADLESS_PARAMETERS = {"02_train_lenet.ipynb": {"VERBOSE": 2}, "04_live_webcam.ipynb": {"SOURCE": "clip", "DURATION": 10},
                       "05_your_own_faces.ipynb": {"VERBOSE": 2}}
# The kernel runs on this machine for this run alone; its start-up warning about unencrypted local TCP would be the
# only red line of a clean run. Errors still show. Every table a cell shows is kept as data too (pandas' Table Schema
# JSON beside its HTML), so the numbers of an executed copy can be read back exactly, as the notebook tests do;
# Jupyter and the HTML export still show the HTML table.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR",
                    "--IPKernelApp.exec_lines=__import__('pandas').set_option('display.html.table_schema', True)"]


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class Progress:
    """What a headless run is doing, written to ``out`` as it happens: hooks for nbclient (``on_notebook_start``,
    ``on_cell_execute``), which papermill passes through, and a ``stdout_file`` for the cells' printed output."""

    def __init__(self, name: str, out=None, indent: str = "    "):
        self.name, self.out, self.indent = name, out or sys.stdout, indent
        self.start, self.total, self.done, self.at_line_start = time.perf_counter(), 0, 0, True

    def _print(self, line: str) -> None:
        if not self.at_line_start:  # a cell's output that did not end its line
            self.out.write("\n")
            self.at_line_start = True
        self.out.write(line + "\n")
        self.out.flush()

    def on_notebook_start(self, notebook, **_) -> None:
        self.total = sum(c.cell_type == "code" and bool(c.source.strip()) for c in notebook.cells)
        self._print(f"[{self.name} {_clock(time.perf_counter() - self.start)}] kernel ready, {self.total} code cells")

    def on_cell_execute(self, cell, **_) -> None:
        self.done += 1
        self._print(f"[{self.name} {_clock(time.perf_counter() - self.start)}] cell {self.done}/{self.total}: "
                    f"{first_line(cell.source)}")

    def write(self, text: str) -> None:
        """The cells' standard output, indented under the cell that printed it."""
        for line in text.replace("\r\n", "\n").splitlines(keepends=True):
            if self.at_line_start:
                self.out.write(self.indent)
            self.out.write(line)
            self.at_line_start = line.endswith("\n")

    def flush(self) -> None:
        self.out.flush()


def first_line(source: str, width: int = 90) -> str:
    """The line that says what a cell does: its first that is not blank, a comment or an import, cut to ``width``."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith(("#", "import ", "from "))]
    line = (telling or lines or [""])[0]
    return line if len(line) <= width else line[: width - 3] + "..."


def notebooks() -> list[Path]:
    """The workbook in reading order: ``notebooks/`` files whose names start with a digit, sorted by name (so
    ``03b_...`` comes after ``03_...`` and before ``04_...``)."""
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def notebook_parameters(notebook: str | Path) -> dict[str, object]:
    """The names the notebook's ``parameters`` cell assigns, with their default values (the source text of a default
    that is not a Python literal); empty for a notebook without one."""
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    defaults = {}
    for node in ast.parse(cells[0].source).body if cells else []:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and node.value is not None:
                try:
                    defaults[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    defaults[target.id] = ast.unparse(node.value)
    return defaults


def check_parameters(notebook: str | Path, parameters: dict | None) -> None:
    """Raise ValueError unless each of ``parameters`` is one the notebook's ``parameters`` cell sets: papermill would
    inject any name, and a misspelt or renamed one would change nothing, silently."""
    known = notebook_parameters(notebook)
    unknown = sorted(set(parameters or {}) - set(known))
    if unknown:
        raise ValueError(f"{Path(notebook).name} has no parameter {', '.join(unknown)}; its parameters cell sets "
                         f"{', '.join(known) or 'nothing'}")


def run_notebook(notebook: str | Path, out_dir: str | Path = RUNS, parameters: dict | None = None,
                 html: bool = True, timeout: int = 3600, progress: bool = False) -> Path:
    """Execute ``notebook`` with ``parameters`` injected after its ``parameters`` cell; return the executed copy.

    Each parameter must be one the ``parameters`` cell sets (:func:`check_parameters`). ``progress=True`` prints
    each cell as it starts and the cells' output as it comes (see :class:`Progress`)."""
    notebook, out_dir = Path(notebook), Path(out_dir)
    check_parameters(notebook, parameters)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / notebook.name
    hooks = {}
    if progress:
        p = Progress(notebook.stem)
        hooks = {"on_notebook_start": p.on_notebook_start, "on_cell_execute": p.on_cell_execute, "stdout_file": p}
    papermill.execute_notebook(
        str(notebook), str(out), parameters=parameters or {}, cwd=str(notebook.parent), kernel_name="python3",
        progress_bar=False, execution_timeout=timeout, extra_arguments=KERNEL_ARGUMENTS, **hooks,
    )
    if html:
        body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(out, as_version=4))
        out.with_suffix(".html").write_text(body, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the given notebooks, or all of :func:`notebooks` in order, saying what runs and how long it took."""
    p = argparse.ArgumentParser(prog="python -m fer_utils.workbook", description=__doc__)
    p.add_argument("notebooks", nargs="*", type=Path)
    p.add_argument("--out", type=Path, default=RUNS)
    args = p.parse_args(argv)
    chosen = args.notebooks or notebooks()
    start, times = time.perf_counter(), {}
    for i, nb in enumerate(chosen, 1):
        print(f"== {nb.name} ({i}/{len(chosen)}), workbook at {_clock(time.perf_counter() - start)}", flush=True)
        t0 = time.perf_counter()
        out = run_notebook(nb, args.out, HEADLESS_PARAMETERS.get(nb.name), progress=True)
        times[nb.name] = time.perf_counter() - t0
        print(f"== {nb.name} done in {_clock(times[nb.name])}: wrote {out} and its .html", flush=True)
    print("workbook done in " + _clock(time.perf_counter() - start) + " ("
          + ", ".join(f"{name} {_clock(s)}" for name, s in times.items()) + ")", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
