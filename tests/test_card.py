"""Model cards carry the recipe, the figures and a command that parses back into the same recipe."""

from __future__ import annotations

import json
import shlex

from fer_utils.__main__ import build_parser
from fer_utils.card import reproduce, write_card
from fer_utils.models import read_info
from fer_utils.training import train


def test_card_records_figures_and_a_rerunnable_command(tmp_path, synthetic_small):
    kwargs = {"filters": [4, 8], "units": [16]}
    train("lenet", synthetic_small, tmp_path / "tiny.keras", epochs=2, model_kwargs=kwargs, verbose=0)
    card = write_card(tmp_path / "tiny.keras", synthetic_small, ablation=[{"idea": "baseline", "accuracy": 0.5}])
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert saved["results"]["plain"]["n"] == len(synthetic_small.split("PublicTest"))
    cm = saved["results"]["plain"]["confusion_matrix"]
    assert sum(map(sum, cm)) == saved["results"]["plain"]["n"]
    md = (tmp_path / "tiny.md").read_text()
    assert f"{card['results']['plain']['accuracy']:.4f}" in md and "| baseline | 0.5 |" in md
    argv = shlex.split(card["command"].replace('"$FER2013_PATH"', "data.csv"))[3:]
    args = build_parser().parse_args(argv)
    recipe = read_info(tmp_path / "tiny.keras")["recipe"]
    assert (args.model, args.epochs, args.seed, json.loads(args.model_kwargs)) == ("lenet", 2, 0, kwargs)
    assert args.learning_rate == recipe["learning_rate"] and args.batch_size == recipe["batch_size"]
    rows = reproduce(tmp_path, synthetic_small, tmp_path / "again")
    assert rows[0]["model"] == "tiny" and 0 <= rows[0]["reproduced_accuracy"] <= 1
