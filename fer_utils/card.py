"""Model cards: what a shipped model is, how it was trained, and what it scores; and `reproduce`, which retrains
each shipped model from its card's recipe on the user's FER2013 and compares with the recorded figures.

``models/<name>.json`` holds the figures (read by tests, the README table and ``reproduce``);
``models/<name>.md`` is the same for people. A model trained on a collection of your own faces
(``train --init MODEL --data FOLDER``) is carded on the hold-out it was trained with, beside the model, with its
report before and after fine-tuning.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shlex
from pathlib import Path

import numpy as np

from fer_utils.atomic import write_atomic
from fer_utils.constants import EMOTIONS, PROJECT_ROOT
from fer_utils.data import HOLDOUT, report_split
from fer_utils.evaluation import compare, evaluate, evaluate_corruptions, paired_text
from fer_utils.litert import litert_path
from fer_utils.loader import FERData
from fer_utils.models import correct_priors, export_litert, load_model
from fer_utils.recipe import Recipe
from fer_utils.shipped import read_info
from fer_utils.training import train


def training_command(info: dict, out: str) -> str:
    """The ``python -m fer_utils train`` command that reruns ``info``'s recipe (every field of it); on the collection
    it was trained on, by that folder's name, where it was."""
    recipe = Recipe.from_dict(shown_recipe(info["recipe"]))
    d = info.get("data") or {}
    if d.get("collection"):
        return recipe.command(data=shlex.quote(d["source"]), out=out, collection=True)
    return recipe.command(out=out)


def shown_recipe(recipe: dict) -> dict:
    """``recipe`` with the models it names (``init``, ``teacher``) relative to the project's folder where they lie in
    it, as a command run there names them: a card says which model, not where it lay on some machine."""
    return recipe | {k: _from_project(recipe[k]) for k in ("init", "teacher") if recipe.get(k)}


def _from_project(path: str) -> str:
    if not Path(path).is_absolute() or not Path(path).resolve().is_relative_to(PROJECT_ROOT):
        return path
    return Path(path).resolve().relative_to(PROJECT_ROOT).as_posix()


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
    if record.get("collection"):
        if record["collection"].get("generated"):
            return f"the GENERATED face collection {name} (cartoon faces, not real ones; not FER2013)"
        return f"the face collection {name} (not FER2013)"
    return f"{name} (sha256 {code}{record['sha256']}{code})" if record.get("sha256") else name


def provenance(info: dict) -> str:
    """Where a model comes from, in one line for a notebook: the data it was trained on (file name and sha256) and
    the epoch kept, or for an ensemble the members it averages. ``info`` is :func:`fer_utils.shipped.read_info`'s."""
    d = info.get("data")
    if info.get("members"):
        return (f"an ensemble: it averages the probabilities of {' and '.join(info['members'])}, each trained on "
                f"{data_text(d)} with its own best epoch (see their cards)")
    if not info.get("recipe"):
        return "no training record (not saved by fer_utils.training.train)"
    faces = f"the {d['n_train']:,} {'' if d.get('collection') else 'Training '}faces of " if d and d.get("n_train") else ""
    start = f"fine-tuned from {shown_recipe(info['recipe'])['init']} " if info["recipe"].get("init") else ""
    text = (f"{start or 'trained '}on {faces}{data_text(d)}, epoch {info.get('best_epoch')} of "
            f"{info['recipe']['epochs']} chosen on {info.get('val_split', 'PublicTest')}")
    if info.get("prior_correction"):
        text += f", then prior-corrected (tau {info['prior_correction']['tau']})"
    return text


def training_speed(info: dict) -> float | None:
    """Training faces a second over a whole run (the epochs' own seconds, evaluation on the validation split
    included), from a training record; None for an ensemble or a record without per-epoch times."""
    seconds = (info.get("history") or {}).get("seconds")
    n = (info.get("data") or {}).get("n_train")
    return n * len(seconds) / sum(seconds) if seconds and n else None


def training_records(model_path: str | os.PathLike) -> dict[str, dict]:
    """The training records (:func:`fer_utils.shipped.read_info`) with a per-epoch history, by file name: the model's
    own, or for an ensemble (which has none) those of its members found beside it."""
    path = Path(model_path)
    info = read_info(path)
    if info.get("history"):
        return {path.name: info}
    members = [path.parent / m for m in info.get("members") or []]
    return {m.name: record for m in members if m.exists() and (record := read_info(m)).get("history")}


def write_card(model_path: str | os.PathLike, data: FERData, split: str | None = None,
               ablation: list[dict] | None = None, against: str | os.PathLike | None = None) -> dict:
    """Evaluate the model without TTA, with flip TTA, with flip and shift TTA and under the corruption suite, and
    write ``<model>.json`` and ``<model>.md`` beside it; and its ``.tflite`` too where it has none (at
    :func:`~fer_utils.litert.litert_path`), since a shipped model's network is what the recognizer runs, without
    TensorFlow. ``split``: by default PublicTest, or for a model trained on a collection of faces (``data``) the
    hold-out it was trained with. ``against``: the model this one was meant to replace; the card carries their paired
    comparison on the same faces (:func:`~fer_utils.evaluation.compare`, without TTA and with flip and shift TTA)."""
    model_path = Path(model_path)
    info = read_info(model_path)
    model = load_model(model_path)
    split, data = _scored(info, data, split, model_path.name)
    if not litert_path(model_path).exists():
        export_litert(model, litert_path(model_path))
    plain, tta, tta_shift = (_portable(evaluate(model, data, split, tta=mode)) for mode in (False, "flip", "shift"))
    summary = io.StringIO()
    model.summary(line_length=100, print_fn=summary.write)  # captured in Jupyter too, where Keras would display it
    card = {
        "name": model_path.stem,
        "file": model_path.name,
        "model": info.get("model"),
        "params": info.get("params"),
        "flops": info.get("flops"),
        "recipe": shown_recipe(info["recipe"]) if info.get("recipe") else None,
        "command": training_command(info, f"{'runs' if split == HOLDOUT else 'models'}/{model_path.name}")
        if info.get("recipe") else None,
        "machine": info.get("machine"),
        "train_seconds": info.get("train_seconds"),
        "train_faces_per_second": training_speed(info),
        "precision_epochs": info.get("precision_epochs"),
        "best_epoch": info.get("best_epoch"),
        "members": info.get("members"),
        "prior_correction": info.get("prior_correction"),
        "data": info.get("data"),
        "val_split": info.get("val_split"),
        "split": split,
        "results": {"plain": plain, "tta": tta, "tta_shift": tta_shift},
        "fine_tuning": _before_after(info, model, data, split, plain),
        "comparison": _against(against, model, data, split),
        "corruptions": evaluate_corruptions(model, data, split),
        "ablation": ablation or [],
    }
    write_atomic(model_path.with_suffix(".json"), json.dumps(card, indent=1))
    write_atomic(model_path.with_suffix(".md"), _markdown(card, summary.getvalue()))
    return card


def _before_after(info: dict, model, data: FERData, split: str, after: dict) -> dict | None:
    """For a model fine-tuned from another (``init``), that model's scores on the same faces ("before") beside this
    one's ("after"), and the two paired (``"paired"``: after against before); None for a model trained from scratch,
    or when the model it started from is not here."""
    init = (info.get("recipe") or {}).get("init")
    path = next((p for p in (Path(init), PROJECT_ROOT / init) if p.is_file()), None) if init else None
    if path is None:
        return None
    before = load_model(path)
    return {"before": _portable(evaluate(before, data, split)), "after": after,
            "paired": compare(model, before, data, split)}


def result_text(title: str, result: dict) -> str:
    """One evaluation (:func:`~fer_utils.evaluation.evaluate`'s result) in a line: accuracy with its 95% interval,
    and macro-F1."""
    low, high = result["accuracy_ci"]
    return (f"{title} (n={result['n']}): accuracy {result['accuracy']:.4f} (95% CI {low:.4f}-{high:.4f}), "
            f"macro-F1 {result['macro_f1']:.4f}")


def fine_tuning_text(card: dict) -> str:
    """A card's report before and after fine-tuning, for people: a line each, then the two paired on the same faces
    (for a model trained from scratch on a collection, its line alone)."""
    report = card["fine_tuning"] or {"after": card["results"]["plain"]}
    lines = [result_text(f"{when} training, on the {card['split']}", report[when])
             for when in ("before", "after") if when in report]
    if report.get("paired"):
        lines.append(paired_text(report["paired"], "after", "before"))
    return "\n".join(lines)


def _against(against: str | os.PathLike | None, model, data: FERData, split: str) -> dict | None:
    """The paired comparison with the model this one was meant to replace, without TTA and with flip and shift TTA."""
    if against is None:
        return None
    other = load_model(against)
    return {"against": Path(against).stem, "file": _from_project(str(Path(against).resolve()))} | {
        name: compare(model, other, data, split, tta=tta)
        for name, tta in (("plain", False), ("tta_shift", "shift"))}


def _scored(info: dict, data: FERData, split: str | None, name: str) -> tuple[str, FERData]:
    """The split a card reports on and the data that has it: ``split`` (default :func:`~fer_utils.data.report_split`:
    PublicTest); on a collection of faces, the hold-out the model's record names, relabelled ``HOLDOUT``."""
    if data.collection is None or split is not None:
        return split or report_split(data), data
    held = (info.get("data") or {}).get("holdout_files")
    if held is None:
        raise ValueError(f"{name} was not trained on a collection of faces: its card reports on FER2013's PublicTest "
                         f"(--data FER2013); for its scores on {data.label}, run `python -m fer_utils evaluate`")
    rows = np.isin(data.files, held)
    if rows.sum() != len(held):
        raise ValueError(f"{data.label} lacks {len(held) - rows.sum()} of the {len(held)} hold-out faces {name} was "
                         f"trained with (e.g. {sorted(set(held) - set(data.files))[0]!r}); card it on that collection")
    part = data.take(rows)
    return HOLDOUT, dataclasses.replace(part, splits=np.full(len(part), HOLDOUT, part.splits.dtype))


def _portable(result: dict) -> dict:
    """An evaluation's result without where the collection lay on this machine: a card names data by what it is."""
    return {k: v for k, v in result.items() if k != "collection"}


def _markdown(card: dict, summary: str) -> str:
    plain, tta, tta_shift = (card["results"][k] for k in ("plain", "tta", "tta_shift"))
    d = card["data"] or {}
    if d.get("collection"):
        start = f"fine-tuned from `{card['recipe']['init']}`" if (card["recipe"] or {}).get("init") else "trained"
        data_line = (f"- Data: {data_text(d, code='`')}; {start} on {d.get('n_train')} of its faces, epoch selected "
                     f"on {card['val_split']} ({d.get('n_val')} faces), which the results below are on.")
    else:
        data_line = (f"- Data: {data_text(d, code='`')}, trained on the {d.get('n_train')} "
                     f"Training faces, epoch selected on the {d.get('n_val')} PublicTest faces; PrivateTest never used.")
    lines = [
        f"# Model card: `{card['file']}`",
        "",
        f"- Architecture: `{card['model']}` ({card['params']:,} parameters, {card['flops'] / 1e6:.0f} MFLOPs per face); "
        "input raw uint8 48x48 gray faces, output the seven emotion probabilities "
        f"({', '.join(EMOTIONS)}). Scaling and augmentation are layers of the model.",
        data_line,
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
    if card.get("fine_tuning"):
        lines += _fine_tuning_lines(card["fine_tuning"])
    if card.get("comparison"):
        lines += _comparison_lines(card["comparison"], card["name"])
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


def _fine_tuning_lines(report: dict) -> list[str]:
    """Before and after training, on the faces that chose the epoch (so "after" is slightly optimistic)."""
    rows = [("before", report["before"]), ("after", report["after"])] if report.get("before") else [("after", report["after"])]
    lines = ["## Before and after fine-tuning (no TTA)", "",
             "On the faces that chose the epoch, so the figure after is slightly optimistic.", "",
             "| | accuracy | 95% CI | macro-F1 | " + " | ".join(f"{e} recall" for e in report["after"]["per_emotion"]) + " |",
             "|" + " --- |" * (4 + len(report["after"]["per_emotion"]))]
    for name, r in rows:
        low, high = r["accuracy_ci"]
        lines.append(f"| {name} | {r['accuracy']:.4f} | {low:.4f}-{high:.4f} | {r['macro_f1']:.4f} | "
                     + " | ".join(f"{m['recall']:.3f}" for m in r["per_emotion"].values()) + " |")
    if report.get("paired"):
        lines += ["", "Paired on the same faces: " + paired_text(report["paired"], "after", "before") + "."]
    return [*lines, ""]


def _comparison_lines(comparison: dict, name: str) -> list[str]:
    """The paired comparison with the model this one was meant to replace (``card --against``)."""
    other = comparison["against"]
    lines = [f"## Against `{other}`, the model it was meant to replace", "",
             "Paired on the same faces: the difference in accuracy with its 95% paired bootstrap interval, McNemar's "
             "exact test on the faces only one of the two gets right, and the difference in macro-F1.", "",
             "| | accuracy | 95% CI | McNemar p | faces only this / only that gets right | macro-F1 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, key in (("plain", "plain"), ("flip and shift TTA", "tta_shift")):
        c = comparison[key]
        low, high = (100 * v for v in c["difference_ci"])
        lines.append(f"| {label} | {100 * c['difference']:+.2f} points ({c['accuracy']:.4f} vs "
                     f"{c['against_accuracy']:.4f}) | {low:+.2f} to {high:+.2f} | {c['mcnemar_p']:.2g} | "
                     f"{c['right_only']} / {c['against_right_only']} | {c['macro_f1_difference']:+.4f} |")
    return [*lines, "", f"Rerun: `python -m fer_utils compare --model models/{name}.keras --against "
                        f"{comparison['file']} --data FER2013 [--tta shift]`.", ""]


def _recipe_lines(card: dict) -> list[str]:
    speed = card.get("train_faces_per_second")
    speed = f", {speed:.0f} faces/s" if speed else ""
    lines = [f"- Recipe: `{json.dumps(card['recipe'])}`", f"- Command: `{card['command']}`",
             f"- Training time on {machine_text(card.get('machine'))}: {_duration(card['train_seconds'])}{speed}; "
             f"best epoch {card['best_epoch']}."]
    if len(card.get("precision_epochs") or {}) > 1:  # resumed on a machine of another kind
        epochs = ", ".join(f"{n} in {p}" for p, n in card["precision_epochs"].items())
        lines.append(f"- Epochs by precision: {epochs} (the run moved between machines).")
    if card["prior_correction"]:
        tau = card["prior_correction"]["tau"]
        lines.append(f"- Prior correction: the trained model's probabilities divided by the Training emotion shares "
                     f"to the power {tau} (`python -m fer_utils correct-priors --model MODEL --tau {tau}`), so rare emotions "
                     "are answered more often.")
    return lines


def _member_lines(card: dict) -> list[str]:
    members = ", ".join(f"`{m}`" for m in card["members"] or [])
    return [f"- Ensemble: the average of the probabilities of {members} (their cards give their recipes), one file "
            "and one call; made with `python -m fer_utils ensemble`.",
            f"- Training time: {_duration(card['train_seconds'])} for all members (on {machine_text(card.get('machine'))})."]


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds / 3600:.2f} CPU-hours)"


def reproduce(models_dir: str | os.PathLike, data: FERData, out_dir: str | os.PathLike) -> list[dict]:
    """Retrain every carded model in ``models_dir`` from its recipe into ``out_dir`` and compare with its card."""
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

