"""The notebooks: committed clean (no outputs, a `parameters` cell), and each runs top to bottom on the
synthetic default with tiny parameters, through papermill (fer_utils.workbook.run_notebook)."""

import io
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from fer_utils import evaluation as ev
from fer_utils.card import data_text, fine_tuning_text, provenance, result_text, training_command
from fer_utils.collection import load_faces
from fer_utils.constants import EMOTIONS
from fer_utils.data import load_data, people, report_split
from fer_utils.loader import find_dataset
from fer_utils.models import build_lenet, load_model, predict_proba, save_model
from fer_utils.recipe import Recipe
from fer_utils.shipped import read_info, shipped_models
from fer_utils.synthetic import write_ck_style_collection
from fer_utils.workbook import HEADLESS_PARAMETERS, NOTEBOOKS, main, notebook_parameters, notebooks, run_notebook

ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
TINY_LENET = {"filters": [4, 8], "units": [16]}
# The test that runs each notebook of the workbook, in reading order (`make workbook`'s); "file::test" elsewhere.
RUN_BY = {"01_data_exploration.ipynb": "test_data_exploration_runs", "02_train_lenet.ipynb": "test_train_lenet_runs",
          "03_evaluation.ipynb": "test_evaluation_runs", "03b_comparing_models.ipynb": "test_comparing_models_runs",
          "04_live_webcam.ipynb": "test_webcam.py::test_notebook_runs_headless_on_the_clip",
          "05_your_own_faces.ipynb": "test_your_own_faces_runs",
          "06_video_corpus.ipynb": "test_corpus.py::test_video_corpus_notebook_runs"}


def test_every_notebook_has_a_test_that_runs_it():
    assert [p.name for p in notebooks()] == list(RUN_BY), "a notebook without a test here, or one listed that is gone"
    assert {p.name for p in ALL} == set(RUN_BY), "make workbook skips notebooks whose names do not start with a digit"
    for name, test in RUN_BY.items():
        file, _, function = test.rpartition("::")
        source = Path(__file__).with_name(file or Path(__file__).name).read_text()
        assert f"\ndef {function}(" in source and name in source, f"{name}: no {test} that runs it"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_clean_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", f"{path.name} needs one code cell tagged 'parameters'"


@pytest.fixture
def synthetic_only(monkeypatch):
    """Notebooks must find no real FER2013 here, so they run on (and announce) the synthetic default."""
    monkeypatch.delenv("FER2013_PATH", raising=False)
    if find_dataset() is not None:
        pytest.skip(f"a real FER2013 is in data/ ({find_dataset()}); these tests run on the synthetic default")


def outputs(nb) -> tuple[str, int]:
    """All text and HTML the notebook printed, and how many images it showed; no cell failed or wrote to stderr."""
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"cell failed: {out.get('ename')}: {out.get('evalue')}"
            # what a library logs to stderr shows as a red block in Jupyter: none should reach a reader
            assert out.get("name") != "stderr", f"a cell printed to stderr: {out.get('text', '')[:300]}"
            text.append(out.get("text", ""))
            data = out.get("data", {})
            text += [data.get("text/plain", ""), data.get("text/html", "")]
            images += "image/png" in data
    return "\n".join(map(str, text)), images


def tables(nb) -> list[pd.DataFrame]:
    """Every table the notebook showed, as data: the workbook's kernel keeps each pandas table as Table Schema JSON
    beside its HTML (fer_utils.workbook.KERNEL_ARGUMENTS), so the numbers read back are the ones shown."""
    return [pd.read_json(io.StringIO(json.dumps(out["data"]["application/vnd.dataresource+json"])), orient="table")
            for cell in nb.cells for out in cell.get("outputs", [])
            if "application/vnd.dataresource+json" in out.get("data", {})]


def table_with(nb, label: str) -> pd.DataFrame:
    """The one table the notebook showed with ``label`` among its rows or columns."""
    found = [t for t in tables(nb) if label in t.index or label in t.columns]
    assert len(found) == 1, f"{len(found)} tables with {label!r}"
    return found[0]


def figures(paired: dict) -> str:
    """What fer_utils.evaluation.paired_text says of a paired comparison, less the two names: its numbers and verdict."""
    return ev.paired_text(paired).split(": ", 1)[1]


def run(name: str, tmp_path, parameters: dict):
    out = run_notebook(NOTEBOOKS / name, tmp_path / "out", parameters, html=True, timeout=600)
    assert out.with_suffix(".html").stat().st_size > 0
    return nbformat.read(out, as_version=4)


def tiny_model(tmp_path) -> Path:
    """An untrained tiny LeNet with a training record, as fer_utils.training.train saves one."""
    return save_model(build_lenet(**TINY_LENET), tmp_path / "tiny.keras",
                      {"history": {"loss": [2.0, 1.8], "accuracy": [0.2, 0.3], "val_loss": [1.9, 1.85],
                                   "val_accuracy": [0.25, 0.27]},
                       "recipe": Recipe(model="lenet", model_kwargs=TINY_LENET, epochs=2).to_dict(),
                       "val_accuracy": 0.27, "best_epoch": 2, "train_seconds": 60.0})


def scored_part(model_path, tta, size: int = 210):
    """What the evaluation notebooks score on the synthetic default of ``size`` faces, and the model's answers there."""
    data = load_data(None, synthetic_size=size, seed=0)
    part = data.split(report_split(data))
    return data, part, predict_proba(load_model(model_path), part.images, tta=tta)


@pytest.mark.slow
def test_data_exploration_runs(tmp_path, synthetic_only):
    nb = run("01_data_exploration.ipynb", tmp_path, {"SYNTHETIC_SIZE": 210, "SAMPLES_PER_EMOTION": 3})
    text, images = outputs(nb)
    assert "SYNTHETIC DATA" in text
    assert "faces with an exact copy" in text and "exact duplicates: 0 faces" in text
    assert images == 6  # counts, samples, mean faces, intensity, duplicates, blanks


@pytest.mark.slow
def test_train_lenet_runs(tmp_path, synthetic_only):
    model_path = tmp_path / "lenet.keras"
    nb = run("02_train_lenet.ipynb", tmp_path, {"EPOCHS": 1, "SYNTHETIC_SIZE": 210, "MODEL_KWARGS": TINY_LENET,
                                                "OUT": str(model_path), "VERBOSE": 2})
    text, images = outputs(nb)
    assert model_path.exists()
    assert "SYNTHETIC DATA" in text and "epoch 1/1" in text and f"saved {model_path}" in text
    assert images >= 4  # augmentation, learning curves, filters, feature maps


@pytest.mark.slow
def test_evaluation_runs(tmp_path, synthetic_only):
    model_path = tiny_model(tmp_path)
    nb = run("03_evaluation.ipynb", tmp_path, {"MODEL": str(model_path), "SYNTHETIC_SIZE": 210, "N_BOOT": 100,
                                               "N_EXAMPLES": 4, "TTA": "flip"})
    text, images = outputs(nb)
    assert "SYNTHETIC DATA" in text
    # confusion x2, ROC, PR, reliability x2, mistakes, unsure, Grad-CAM, learning curves
    assert images == 10
    # the numbers shown are fer_utils' on the same faces, with flip TTA
    _, part, proba = scored_part(model_path, "flip")
    acc, low, high = ev.accuracy_ci(part.emotions, proba, n_boot=100, seed=0)
    headline = table_with(nb, "95% CI low")["value"].to_dict()
    assert headline == pytest.approx({"faces": len(part), "accuracy": acc, "95% CI low": low, "95% CI high": high,
                                      "macro-F1": ev.score(part.emotions, proba)["macro_f1"]}, abs=1e-4)
    assert table_with(nb, "macro avg").loc[list(EMOTIONS), "support"].sum() == len(part)
    assert table_with(nb, "NLL").loc["as trained", "NLL"] == pytest.approx(ev.nll(part.emotions, proba), abs=1e-4)
    # how it trained: its record, and the command that reruns it
    record = read_info(model_path)
    trained = table_with(nb, "at epoch").loc["tiny.keras"].to_dict()
    assert trained == pytest.approx({"best validation accuracy": 0.27, "at epoch": 2, "minutes of training": 1.0})
    assert training_command(record, "models/tiny.keras") in text


@pytest.mark.slow
def test_comparing_models_runs(tmp_path, synthetic_only):
    model_path = shipped_models()["lenet"]  # a trained model: shift TTA changes some of its answers on these faces
    nb = run("03b_comparing_models.ipynb", tmp_path, {"MODEL": str(model_path), "SYNTHETIC_SIZE": 350, "N_BOOT": 100,
                                                      "TTA": "shift"})
    text, images = outputs(nb)
    assert "SYNTHETIC DATA" in text
    assert images == 3  # TTA off and on, the corruption suite, the confusion matrix on faces from elsewhere
    data, part, proba_shift = scored_part(model_path, "shift", 350)
    model = load_model(model_path)
    # TTA on against off, paired on the same faces: fer_utils' figures
    paired = ev.paired_comparison(part.emotions, proba_shift, predict_proba(model, part.images), n_boot=100, seed=0)
    assert paired["right_only"] != paired["against_right_only"]  # on these faces the order of the two shows
    assert figures(paired) in text
    # faces from elsewhere (the generated collection, the same for the same seed) beside the split
    other = load_faces(write_ck_style_collection(tmp_path / "generated_collection"))
    side_by_side = table_with(nb, "macro-F1 (its emotions)")
    for faces, expected in ((side_by_side.columns[0], ev.evaluate(model, data, report_split(data), tta="shift")),
                            (other.label, ev.evaluate(model, other, None, tta="shift"))):
        assert side_by_side[faces].to_dict() == pytest.approx(
            {"faces": expected["n"], "accuracy": expected["accuracy"], "95% CI low": expected["accuracy_ci"][0],
             "95% CI high": expected["accuracy_ci"][1], "macro-F1 (its emotions)": expected["macro_f1"]}, abs=1e-4)
    # every shipped model (this one among them), each paired with the best
    compared = table_with(nb, "vs_best_p")
    assert set(shipped_models()) <= set(compared.index)
    assert compared.loc["lenet", "accuracy"] == pytest.approx((proba_shift.argmax(1) == part.emotions).mean(), abs=1e-4)
    best = compared["accuracy"].idxmax()
    assert compared.loc[best, "vs_best"] == 0 and compared.loc[best, "vs_best_p"] == 1
    assert (compared["n"] == len(part)).all()


@pytest.mark.slow
def test_your_own_faces_runs(tmp_path):
    model_path = tmp_path / "mine.keras"
    nb = run("05_your_own_faces.ipynb", tmp_path, {"GENERATED": str(tmp_path / "faces"), "PEOPLE": 5, "PER_EMOTION": 1,
                                                   "EPOCHS": 1, "OUT": str(model_path), "VERBOSE": 2})
    text, images = outputs(nb)
    assert images == 3  # the faces, the confusion matrices before and after
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("mine")) == [
        "mine.json", "mine.keras", "mine.md", "mine.tflite"]
    card = json.loads((tmp_path / "mine.json").read_text())
    assert card["split"] == "hold-out" and card["best_epoch"] == 1 and card["data"]["collection"]["generated"]
    assert table_with(nb, "total").loc["total", "total"] == 35  # 5 people x 7 emotions x 1
    assert data_text(card["data"]) in text  # named as its card names it: GENERATED, not real faces
    # a fifth held out (7 of 35), whole people: none of them among the faces it learned from
    held = card["data"]["holdout_files"]
    assert (card["data"]["n_train"], card["data"]["n_val"], card["fine_tuning"]["before"]["n"]) == (28, 7, 7)
    faces = tmp_path / "faces"
    learned = {p.relative_to(faces).as_posix() for p in faces.rglob("*.png")} - set(held)
    assert len(learned) == 28 and not set(people(held, r"person(\d+)")) & set(people(learned, r"person(\d+)"))
    # before and after on the same faces, as `train --init` prints it: the function, on the card the notebook wrote
    assert fine_tuning_text(card) in text
    before = result_text("", card["fine_tuning"]["before"])  # " (n=7): accuracy ..., macro-F1 ...", less the title
    assert text.count(before) == fine_tuning_text(card).count(before) + 1  # and the notebook's own "before" agrees
    # how to rerun it, with no path of this machine in it
    assert card["command"] in text and str(tmp_path) not in card["command"]
    assert re.search(r"--init models/vgg8\.keras\b", card["command"]) and "--group-by" in card["command"]


def test_workbook_says_what_it_is_doing(tmp_path, capfd):
    """`make workbook` prints each notebook, each code cell as it starts (number/total, first telling line, elapsed
    time) and the cells' printed output as it comes, e.g. training's lines per epoch; the kernel's start-up warnings
    stay out of it."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"),
                nbformat.v4.new_code_cell("EPOCHS = 2", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import time\n\nfor e in range(EPOCHS):\n    print(f'epoch {e + 1}/{EPOCHS}')"),
                nbformat.v4.new_code_cell("# the answer\nanswer = 42\nanswer")]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    assert main([str(tmp_path / "tiny.ipynb"), "--out", str(tmp_path / "out")]) == 0
    printed = capfd.readouterr()
    assert "WARNING" not in printed.err, printed.err
    lines = printed.out.splitlines()
    assert lines[0].startswith("== tiny.ipynb (1/1)")
    assert "[tiny 0:0" in lines[1] and "3 code cells" in lines[1]
    assert "cell 1/3: EPOCHS = 2" in lines[2]
    assert "cell 2/3: for e in range(EPOCHS):" in lines[3]
    assert lines[4:6] == ["    epoch 1/2", "    epoch 2/2"]
    assert "cell 3/3: answer = 42" in lines[6]
    assert lines[7].startswith("== tiny.ipynb done in 0:") and lines[-1].startswith("workbook done in 0:")
    assert nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4).cells[2].outputs[0].text == "epoch 1/2\nepoch 2/2\n"


def test_model_provenance_names_data_by_file_and_sha256():
    data = {"source": "../shared/data/fer2013/fer2013-train-publictest.csv.gz", "synthetic": False,
            "sha256": "27a5" + "0" * 60, "n_train": 28709, "n_val": 3589}
    trained = provenance({"recipe": {"epochs": 30}, "best_epoch": 30, "val_split": "PublicTest", "data": data})
    assert trained == (f"trained on the 28,709 Training faces of fer2013-train-publictest.csv.gz (sha256 27a5{'0' * 60}), "
                       "epoch 30 of 30 chosen on PublicTest")
    ensemble = provenance({"model": "ensemble", "members": ["vgg8.keras", "vgg8_seed1.keras"], "data": data})
    assert "averages the probabilities of vgg8.keras and vgg8_seed1.keras" in ensemble and "unknown" not in ensemble
    assert "shared" not in trained + ensemble and f"sha256 27a5{'0' * 60}" in ensemble
    synthetic = provenance({"recipe": {"epochs": 3}, "best_epoch": 2, "val_split": "PublicTest",
                            "data": {"source": "synthetic(n=3500, seed=0)", "synthetic": True, "sha256": None}})
    assert "SYNTHETIC" in synthetic and "epoch 2 of 3" in synthetic
    assert "no training record" in provenance({"history": {}})


def test_run_notebook_refuses_a_parameter_the_notebook_does_not_set(tmp_path):
    """papermill injects any name: a misspelt or renamed parameter would change nothing, and a test would run the
    notebook with its full-size defaults. run_notebook (and so make workbook and every test here) refuses it."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("EPOCHS = 2  # a comment\nSIZE: int = 3\nOUT = None",
                                          metadata={"tags": ["parameters"]})]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    assert notebook_parameters(tmp_path / "tiny.ipynb") == {"EPOCHS": 2, "SIZE": 3, "OUT": None}
    with pytest.raises(ValueError, match="tiny.ipynb has no parameter EPOCH; its parameters cell sets EPOCHS, SIZE, OUT"):
        run_notebook(tmp_path / "tiny.ipynb", tmp_path / "out", {"EPOCH": 3})
    assert not (tmp_path / "out").exists()  # refused before any kernel started


def test_headless_parameters_are_the_notebooks_own():
    for name, parameters in HEADLESS_PARAMETERS.items():
        assert (NOTEBOOKS / name).is_file(), f"HEADLESS_PARAMETERS names {name}, which is not in notebooks/"
        assert set(parameters) <= set(notebook_parameters(NOTEBOOKS / name)), name
