"""The notebooks: committed clean (no outputs, a `parameters` cell), and each runs top to bottom on the
synthetic default with tiny parameters, through papermill (fer_utils.workbook.run_notebook)."""

import json

import nbformat
import pytest

from fer_utils.card import provenance
from fer_utils.loader import find_dataset
from fer_utils.models import build_lenet, save_model
from fer_utils.recipe import Recipe
from fer_utils.workbook import NOTEBOOKS, main, run_notebook

ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
TINY_LENET = {"filters": [4, 8], "units": [16]}


def test_there_are_notebooks():
    assert {"01_data_exploration.ipynb", "02_train_lenet.ipynb", "03_evaluation.ipynb"} <= {p.name for p in ALL}


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


def run(name: str, tmp_path, parameters: dict):
    out = run_notebook(NOTEBOOKS / name, tmp_path / "out", parameters, html=True, timeout=600)
    assert out.with_suffix(".html").stat().st_size > 0
    return nbformat.read(out, as_version=4)


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
    model_path = save_model(build_lenet(**TINY_LENET), tmp_path / "tiny.keras",
                            {"history": {"loss": [2.0, 1.8], "accuracy": [0.2, 0.3], "val_loss": [1.9, 1.85],
                                         "val_accuracy": [0.25, 0.27]},
                             "recipe": Recipe(model="lenet", model_kwargs=TINY_LENET, epochs=2).to_dict(),
                             "val_accuracy": 0.27, "best_epoch": 2, "train_seconds": 60.0})
    nb = run("03_evaluation.ipynb", tmp_path, {"MODEL": str(model_path), "SYNTHETIC_SIZE": 210, "N_BOOT": 100,
                                               "N_EXAMPLES": 4, "TTA": "shift"})
    text, images = outputs(nb)
    assert "SYNTHETIC DATA" in text and "tiny.keras" in text and "(shift TTA): " in text
    # confusion x2, ROC, PR, reliability x2, TTA, mistakes, unsure, Grad-CAM, learning curves
    assert images >= 11
    assert "macro-F1" in text and "ECE" in text and "tiny" in text
    assert "shift TTA - no TTA: " in text and "McNemar p = " in text  # TTA on against off, paired
    assert "vs_best_p" in text  # every model paired with the best
    assert ("tiny.keras: best PublicTest accuracy 0.2700 at epoch 2, 1 min of training; rerun: python -m fer_utils "
            "train --data \"$FER2013_PATH\" --out models/tiny.keras --model lenet") in text


@pytest.mark.slow
def test_your_own_faces_runs(tmp_path):
    model_path = tmp_path / "mine.keras"
    nb = run("05_your_own_faces.ipynb", tmp_path, {"GENERATED": str(tmp_path / "faces"), "PEOPLE": 5, "PER_EMOTION": 1,
                                                   "EPOCHS": 1, "OUT": str(model_path), "VERBOSE": 2})
    text, images = outputs(nb)
    assert "35 faces of the GENERATED face collection faces (cartoon faces, not real ones; not FER2013)" in text
    assert "learn from 28 faces, hold out 7" in text and "of them among the faces to learn from: 0" in text
    assert "vgg8.keras before fine-tuning (n=7): accuracy" in text and "epoch 1/1" in text
    assert "after - before: " in text and "McNemar p = " in text  # paired on the same held-out faces
    assert f"saved {model_path}: epoch 1 of 1" in text and "rerun: python -m fer_utils train --data faces" in text
    assert "--init models/vgg8.keras --holdout 0.2 --group-by 'person(\\d+)'" in text  # no path of this machine
    assert images == 3  # the faces, the confusion matrices before and after
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("mine")) == [
        "mine.json", "mine.keras", "mine.md", "mine.tflite"]
    card = json.loads((tmp_path / "mine.json").read_text())
    assert card["split"] == "hold-out" and card["fine_tuning"]["before"]["n"] == 7


@pytest.mark.parametrize("path", [p for p in ALL if p.name[:2] not in {"01", "02", "03", "05"}], ids=lambda p: p.name)
def test_other_notebooks_are_covered_elsewhere(path):
    pytest.skip(f"{path.name} has no tiny parameters here; its own test runs it")


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


def test_tiny_parameters_are_json():
    json.dumps(TINY_LENET)
