"""The command line names each concept one way: ``--model`` a model file, ``--data`` the faces, ``--arch`` train's
network; ``--json`` prints JSON alone on standard output; the shipped cards' commands are the ones their recipes
make."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from fer_utils.__main__ import build_parser, main
from fer_utils.constants import PROJECT_ROOT
from fer_utils.loader import pack
from fer_utils.scenes import astronaut_bgr
from fer_utils.synthetic import make_synthetic


def _commands() -> dict[str, list[str]]:
    """Each command's option strings, and its positional arguments under "positional"."""
    sub = build_parser()._subparsers._group_actions[0]
    return {name: [o for a in s._actions for o in (a.option_strings or [f"positional {a.metavar or a.dest}"])]
            for name, s in sub.choices.items()}


def test_every_command_names_a_model_file_model_and_data_data():
    commands = _commands()
    for name in ("evaluate", "compare", "card", "export", "correct-priors", "predict", "video"):
        assert "--model" in commands[name], name
    for name in ("info", "pack", "train", "evaluate", "compare", "defaults", "card", "ensemble", "correct-priors",
                 "reproduce"):
        assert "--data" in commands[name], name
    assert "--arch" in commands["train"] and "--arch-kwargs" in commands["train"] and "--model" not in commands["train"]
    positional = {name: [o for o in options if o.startswith("positional")] for name, options in commands.items()}
    # images, a video and an ensemble's members are lists or inputs, not "the model" nor "the data"
    assert {name: p for name, p in positional.items() if p} == {
        "predict": ["positional IMAGE"], "video": ["positional IN"], "ensemble": ["positional MODEL"],
        "corpus": ["positional INPUT"]}
    for name, s in build_parser()._subparsers._group_actions[0].choices.items():  # every flag says what it takes
        for action in s._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_old_spellings_fail_with_a_usage_error(capsys):
    for argv in (["card", "models/lenet.keras"], ["export", "models/lenet.keras"], ["info", "data.csv"],
                 ["train", "--model", "lenet", "--out", "x.keras"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 2, argv
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small packed FER2013-shaped copy, a tiny model and a photo."""
    from fer_utils.models import build_lenet, save_model

    folder = tmp_path_factory.mktemp("cli")
    data = pack(make_synthetic(350, seed=2), folder / "small.npz.xz")
    model = save_model(build_lenet(filters=(4, 8), units=(16,), seed=3), folder / "shipped" / "tiny.keras",
                       litert=False)
    photo = folder / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr())
    return {"data": str(data), "model": str(model), "photo": str(photo), "shipped": model.parent}


JSON_COMMANDS = {
    "info": lambda s: ["info", "--data", s["data"]],
    "evaluate": lambda s: ["evaluate", "--model", s["model"], "--data", s["data"], "--tta"],
    "evaluate --corruptions": lambda s: ["evaluate", "--model", s["model"], "--data", s["data"], "--corruptions"],
    "compare": lambda s: ["compare", "--model", s["model"], "--against", s["model"], "--data", s["data"]],
    "defaults": lambda s: ["defaults", "--data", s["data"]],
    "predict": lambda s: ["predict", s["photo"], "--model", s["model"]],
}


def test_the_json_test_covers_every_command_with_json():
    # corpus's --json is checked where a corpus is run on worker processes: test_corpus.py
    assert {name for name, options in _commands().items() if "--json" in options} == {
        name.split()[0] for name in JSON_COMMANDS} | {"corpus"}


@pytest.mark.parametrize("command", list(JSON_COMMANDS))
def test_json_prints_json_alone_on_standard_output(command, small, capsys, monkeypatch):
    monkeypatch.setattr("fer_utils.shipped.SHIPPED_DIR", small["shipped"])  # defaults: the tiny model is shipped
    capsys.readouterr()
    assert main([*JSON_COMMANDS[command](small), "--json"]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)
    assert result, command
    if command == "predict":
        assert list(result) == [small["photo"]] and len(result[small["photo"]]) == 1


def test_shipped_cards_store_the_command_their_recipe_makes():
    from fer_utils.card import training_command

    cards = sorted((PROJECT_ROOT / "models").glob("*.json"))
    with_recipe = [c for c in cards if json.loads(c.read_text()).get("recipe")]
    assert with_recipe, "no shipped card with a recipe"
    for card in with_recipe:
        info = json.loads(card.read_text())
        command = training_command(info, f"models/{card.stem}.keras")
        assert info["command"] == command, card.name
        assert f"- Command: `{command}`" in Path(card.with_suffix(".md")).read_text(), card.name
