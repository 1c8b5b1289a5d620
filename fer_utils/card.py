"""Model cards: what a shipped model is, how it was trained, and what it scores; and `reproduce`, which retrains
each shipped model from its card's recipe on the user's FER2013 and compares with the recorded figures.

``models/<name>.json`` holds the figures (read by tests, the README table and ``reproduce``);
``models/<name>.md`` is the same for people.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

from fer_utils.atomic import write_atomic
from fer_utils.evaluation import evaluate, evaluate_corruptions
from fer_utils.litert import litert_path
from fer_utils.loader import EMOTIONS, FERData
from fer_utils.models import correct_priors, export_litert, load_model, read_info
from fer_utils.recipe import Recipe


def training_command(info: dict, out: str) -> str:
    """The ``python -m fer_utils train`` command that reruns ``info``'s recipe (every field of it)."""
    return Recipe.from_dict(info["recipe"]).command(out=out)


def machine_text(machine: dict | None) -> str:
    """Where a model was trained, in words: the GPU, else the CPU and its cores; and the Keras backend."""
    if not machine:
        return "a 2-core CPU"  # cards from before the machine was recorded: all were trained on the project's CPUs
    where = machine["accelerator"] or f"{machine['cpu']} ({machine['cores']} cores)"
    return f"{where}, Keras on {machine['backend']}"


def data_text(record: dict | None, code: str = "") -> str:
    """The data a model was trained on, named by what it is, never by where it lay on some machine: its file name and
    sha256 (``info["data"]``, see :func:`fer_utils.training.data_record`). ``code="`"`` quotes them for Markdown."""
    if not record:
        return "unrecorded data"
    name = f"{code}{Path(record.get('source') or '?').name}{code}"
    if record.get("synthetic"):
        return f"the SYNTHETIC embedded default {name} (not FER2013)"
    return f"{name} (sha256 {code}{record['sha256']}{code})" if record.get("sha256") else name


def provenance(info: dict) -> str:
    """Where a model comes from, in one line for a notebook: the data it was trained on (file name and sha256) and
    the epoch kept, or for an ensemble the members it averages. ``info`` is :func:`fer_utils.models.read_info`'s."""
    d = info.get("data")
    if info.get("members"):
        return (f"an ensemble: it averages the probabilities of {' and '.join(info['members'])}, each trained on "
                f"{data_text(d)} with its own best epoch (see their cards)")
    if not info.get("recipe"):
        return "no training record (not saved by fer_utils.training.train)"
    faces = f"the {d['n_train']:,} Training faces of " if d and d.get("n_train") else ""
    text = (f"trained on {faces}{data_text(d)}, epoch {info.get('best_epoch')} of {info['recipe']['epochs']} chosen "
            f"on {info.get('val_split', 'PublicTest')}")
    if info.get("prior_correction"):
        text += f", then prior-corrected (tau {info['prior_correction']['tau']})"
    return text


def training_records(model_path: str | os.PathLike) -> dict[str, dict]:
    """The training records (:func:`fer_utils.models.read_info`) with a per-epoch history, by file name: the model's
    own, or for an ensemble (which has none) those of its members found beside it."""
    path = Path(model_path)
    info = read_info(path)
    if info.get("history"):
        return {path.name: info}
    members = [path.parent / m for m in info.get("members") or []]
    return {m.name: record for m in members if m.exists() and (record := read_info(m)).get("history")}


def write_card(model_path: str | os.PathLike, data: FERData, split: str = "PublicTest", ablation: list[dict] | None = None) -> dict:
    """Evaluate the model without TTA, with flip TTA, with flip and shift TTA and under the corruption suite, and
    write ``<model>.json`` and ``<model>.md`` beside it; and its ``.tflite`` too where it has none, since a shipped
    model is what a fresh clone recognises faces with, without TensorFlow."""
    model_path = Path(model_path)
    info = read_info(model_path)
    model = load_model(model_path)
    if not litert_path(model_path).exists():
        export_litert(model, litert_path(model_path))
    plain, tta, tta_shift = (evaluate(model, data, split, tta=mode) for mode in (False, "flip", "shift"))
    summary = io.StringIO()
    with redirect_stdout(summary):
        model.summary(line_length=100)
    card = {
        "name": model_path.stem,
        "file": model_path.name,
        "model": info.get("model"),
        "params": info.get("params"),
        "flops": info.get("flops"),
        "recipe": info.get("recipe"),
        "command": training_command(info, f"models/{model_path.name}") if info.get("recipe") else None,
        "machine": info.get("machine"),
        "train_seconds": info.get("train_seconds"),
        "precision_epochs": info.get("precision_epochs"),
        "best_epoch": info.get("best_epoch"),
        "members": info.get("members"),
        "prior_correction": info.get("prior_correction"),
        "data": info.get("data"),
        "split": split,
        "results": {"plain": plain, "tta": tta, "tta_shift": tta_shift},
        "corruptions": evaluate_corruptions(model, data, split),
        "ablation": ablation or [],
    }
    write_atomic(model_path.with_suffix(".json"), json.dumps(card, indent=1))
    write_atomic(model_path.with_suffix(".md"), _markdown(card, summary.getvalue()))
    return card


def _markdown(card: dict, summary: str) -> str:
    plain, tta, tta_shift = (card["results"][k] for k in ("plain", "tta", "tta_shift"))
    d = card["data"] or {}
    lines = [
        f"# Model card: `{card['file']}`",
        "",
        f"- Architecture: `{card['model']}` ({card['params']:,} parameters, {card['flops'] / 1e6:.0f} MFLOPs per face); "
        "input raw uint8 48x48 gray faces, output the seven emotion probabilities "
        f"({', '.join(EMOTIONS)}). Scaling and augmentation are layers of the model.",
        f"- Data: {data_text(d, code='`')}, trained on the {d.get('n_train')} "
        f"Training faces, epoch selected on the {d.get('n_val')} PublicTest faces; PrivateTest never used.",
        *(_recipe_lines(card) if card["recipe"] else _member_lines(card)),
        "",
        f"## Results on {card['split']} (n={plain['n']})",
        "",
        "| | accuracy | macro-F1 |",
        "| --- | --- | --- |",
        f"| plain | {plain['accuracy']:.4f} | {plain['macro_f1']:.4f} |",
        f"| flip TTA (`--tta`) | {tta['accuracy']:.4f} | {tta['macro_f1']:.4f} |",
        f"| flip and 2 px shift TTA, 10 views (`--tta shift`) | {tta_shift['accuracy']:.4f} | {tta_shift['macro_f1']:.4f} |",
        "",
        "| emotion | precision | recall | F1 | n |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e, m in plain["per_emotion"].items():
        lines.append(f"| {e} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1-score']:.3f} | {int(m['support'])} |")
    lines += ["", "Confusion matrix (rows: true emotion, columns: predicted, order as above):", "", "```"]
    lines += [" ".join(f"{v:5d}" for v in row) for row in plain["confusion_matrix"]]
    lines += ["```", ""]
    if card.get("corruptions"):
        acc = card["corruptions"]["accuracy"]
        lines += ["## Robustness (`evaluate --corruptions`, no TTA)", "", "| " + " | ".join(acc) + " | mean | mean / clean |",
                  "|" + " --- |" * (len(acc) + 2),
                  "| " + " | ".join(f"{v:.4f}" for v in acc.values())
                  + f" | {card['corruptions']['mean']:.4f} | {card['corruptions']['relative']:.1%} |", ""]
    if card["ablation"]:
        keys = list(card["ablation"][0])
        lines += ["## Ablation", "", "| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in card["ablation"]]
        lines.append("")
    lines += ["## Layers", "", "```", summary.strip(), "```", ""]
    return "\n".join(lines)


def _recipe_lines(card: dict) -> list[str]:
    lines = [f"- Recipe: `{json.dumps(card['recipe'])}`", f"- Command: `{card['command']}`",
             f"- Training time on {machine_text(card.get('machine'))}: {card['train_seconds'] / 60:.1f} min; "
             f"best epoch {card['best_epoch']}."]
    if len(card.get("precision_epochs") or {}) > 1:  # resumed on a machine of another kind
        epochs = ", ".join(f"{n} in {p}" for p, n in card["precision_epochs"].items())
        lines.append(f"- Epochs by precision: {epochs} (the run moved between machines).")
    if card["prior_correction"]:
        tau = card["prior_correction"]["tau"]
        lines.append(f"- Prior correction: the trained model's probabilities divided by the Training emotion shares "
                     f"to the power {tau} (`python -m fer_utils correct-priors MODEL --tau {tau}`), so rare emotions "
                     "are answered more often.")
    return lines


def _member_lines(card: dict) -> list[str]:
    members = ", ".join(f"`{m}`" for m in card["members"] or [])
    return [f"- Ensemble: the average of the probabilities of {members} (their cards give their recipes), one file "
            "and one call; made with `python -m fer_utils ensemble`.",
            f"- Training time: {card['train_seconds'] / 60:.1f} min for all members (on {machine_text(card.get('machine'))})."]


def reproduce(models_dir: str | os.PathLike, data: FERData, out_dir: str | os.PathLike) -> list[dict]:
    """Retrain every carded model in ``models_dir`` from its recipe into ``out_dir`` and compare with its card."""
    from fer_utils.training import train

    rows = []
    for card_file in sorted(Path(models_dir).glob("*.json")):
        card = json.loads(card_file.read_text())
        if not card.get("recipe"):
            continue
        out = Path(out_dir) / card["file"]
        train(Recipe.from_dict(card["recipe"]), data, out)
        model = load_model(out)
        if card.get("prior_correction"):
            model = correct_priors(model, card["prior_correction"]["prior"], card["prior_correction"]["tau"])
        got = evaluate(model, data, card["split"])
        want = card["results"]["plain"]
        rows.append({"model": card["name"], "recorded_accuracy": want["accuracy"], "reproduced_accuracy": got["accuracy"],
                     "recorded_macro_f1": want["macro_f1"], "reproduced_macro_f1": got["macro_f1"]})
        print(f"{card['name']}: recorded accuracy {want['accuracy']:.4f}, reproduced {got['accuracy']:.4f} "
              f"(difference {got['accuracy'] - want['accuracy']:+.4f})", flush=True)
    return rows

