"""Fine-tuning a shipped model on a collection of your own faces: a stratified hold-out that keeps each person on one
side, one-line errors for collections it cannot work with, and a generated collection in another look than FER2013's
that the shipped vgg8 does poorly on until it is fine-tuned."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fer_utils.__main__ import build_parser, main
from fer_utils.card import write_card
from fer_utils.collection import load_faces
from fer_utils.constants import EMOTIONS, PROJECT_ROOT
from fer_utils.data import holdout_mask, people, validation_split
from fer_utils.evaluation import evaluate
from fer_utils.models import load_model
from fer_utils.recipe import FINE_TUNING, fine_tuning
from fer_utils.shipped import read_info
from fer_utils.synthetic import GENERATED_MARKER, draw_face, write_shifted_collection
from fer_utils.training import train

VGG8 = PROJECT_ROOT / "models" / "vgg8.keras"


def a_collection(n_people: int = 10, per_emotion: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(emotions, files) of ``n_people`` people showing each emotion ``per_emotion`` times, named person<NN>_<k>."""
    rows = [(e, f"{EMOTIONS[e]}/person{p:02d}_{k}.png") for e in range(7) for p in range(n_people) for k in range(per_emotion)]
    return np.array([e for e, _ in rows]), np.array([f for _, f in rows])


def test_grouped_holdout_keeps_each_person_on_one_side_and_every_emotion_on_both():
    emotions, files = a_collection()
    persons = people(files, r"person(\d+)")
    assert persons[0] == "00" and len(set(persons)) == 10
    hold = holdout_mask(emotions, 0.2, seed=0, groups=persons)
    assert not set(persons[hold]) & set(persons[~hold])  # no person on both sides
    assert set(emotions[hold]) == set(emotions[~hold]) == set(range(7))
    assert hold.sum() == 28  # two of the ten people: a fifth
    np.testing.assert_array_equal(hold, holdout_mask(emotions, 0.2, seed=0, groups=persons))  # seeded
    assert any(not np.array_equal(hold, holdout_mask(emotions, 0.2, seed=s, groups=persons)) for s in (1, 2, 3))
    plain = holdout_mask(emotions, 0.2, seed=0)  # without people: a fifth of each emotion's faces
    assert all(plain[emotions == e].sum() == 4 for e in range(7))
    assert set(persons[plain]) & set(persons[~plain])  # which is why photos of one person need --group-by


def test_people_are_named_by_the_first_group_or_the_whole_match():
    files = np.array(["happy/anna_1.jpg", "sad/anna_2.jpg", "sad/bob_1.jpg", "happy/IMG_0001.jpg"])
    with pytest.warns(UserWarning, match="matches 3 of 4 file names; the other 1"):
        assert people(files, r"/([a-z]+)_\d").tolist() == ["anna", "anna", "bob", "file happy/IMG_0001.jpg"]
    assert people(files[:3], r"(?<=/)[a-z]+").tolist() == ["anna", "anna", "bob"]
    with pytest.raises(ValueError, match=r"matches none of the 4 file names \(e.g. 'happy/anna_1.jpg'\)"):
        people(files, r"person(\d+)")


def test_holdout_needs_faces_of_every_emotion_on_both_sides():
    with pytest.raises(ValueError, match="too few faces for a hold-out of every emotion: sad has 1"):
        holdout_mask(np.array([3, 3, 3, 4]), 0.2)
    emotions, files = a_collection(n_people=6)
    keep = (emotions != 1) | np.char.startswith(files, "disgust/person00")  # disgust: two faces of one person
    with pytest.raises(ValueError, match="grouped by person, the (hold-out|faces to learn from) have no disgust"):
        holdout_mask(emotions[keep], 0.2, groups=people(files[keep], r"person(\d+)"))
    emotions, files = a_collection(n_people=3)
    with pytest.raises(ValueError, match="group_by found 3, a 20% hold-out needs at least 5"):
        holdout_mask(emotions, 0.2, groups=people(files, r"person(\d+)"))


def test_only_a_collections_command_spells_the_holdout():
    from fer_utils.recipe import Recipe

    assert "--holdout" not in Recipe().command()  # FER2013 chooses the epoch on PublicTest
    assert "--holdout 0.2 --group-by 'p(\\d)'" in Recipe(group_by=r"p(\d)").command(collection=True)


def test_fine_tuning_takes_the_network_from_the_model_it_starts_from():
    recorded = read_info(VGG8)["recipe"]
    recipe = fine_tuning(VGG8, group_by="x")
    assert (recipe.model, recipe.model_kwargs, recipe.init) == ("vgg", recorded["model_kwargs"], str(VGG8))
    assert {k: getattr(recipe, k) for k in FINE_TUNING} == FINE_TUNING and recipe.group_by == "x"
    assert fine_tuning(VGG8, epochs=30, schedule={}).learning_rate == 2e-3  # FER2013: the default schedule
    assert fine_tuning(VGG8, model="lenet").model_kwargs == {}  # another network: none of vgg8's settings
    with pytest.raises(ValueError, match="records no recipe"):
        fine_tuning(PROJECT_ROOT / "models" / "vgg8x2_resnet.keras")  # an ensemble
    args = build_parser().parse_args(["train", "--out", "o.keras", "--init", "m.keras", "--epochs", "30",
                                      "--mixed-precision"])
    assert args.recipe_flags_given == {"init", "epochs", "mixed_precision"} and args.epochs == 30  # even a default
    assert build_parser().parse_args(["train", "--out", "o.keras"]).recipe_flags_given == set()


def test_shifted_collection_is_deterministic_and_written_whole(tmp_path):
    folder = write_shifted_collection(tmp_path / "faces", people=2, per_emotion=1, seed=3)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert len(names) == 14 and names[0] == "angry/person00_0.png"
    assert json.loads((folder / GENERATED_MARKER).read_text())["seed"] == 3
    again = write_shifted_collection(tmp_path / "again", people=2, per_emotion=1, seed=3)
    assert all((folder / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert write_shifted_collection(folder, people=2, per_emotion=1, seed=3) == folder  # already there: kept
    with pytest.raises(ValueError, match="is not this generated collection"):
        write_shifted_collection(folder, people=2, per_emotion=1, seed=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "faces"]  # no temp folder left behind
    face = cv2.imread(str(folder / names[0]), cv2.IMREAD_UNCHANGED)
    assert face.shape == (48, 48) and face.dtype == np.uint8  # a face already: the loader needs no detector


def _write(folder, emotion: str, n: int, seed: int = 0):
    (folder / emotion).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        cv2.imwrite(str(folder / emotion / f"person{k:02d}_{emotion}.png"), draw_face(EMOTIONS.index(emotion), rng))


@pytest.mark.parametrize("case, message", [
    ("empty", "no images"),
    ("one emotion", "has faces of one emotion only (happy): training needs at least two emotions"),
    ("one sad face", "too few faces for a hold-out of every emotion: sad has 1"),
    ("group-by matches nothing", "group_by='anna_(\\\\d+)' matches none of the 8 file names"),
    ("another network", "is another network than the recipe's lenet"),
])
def test_collections_it_cannot_fine_tune_on_get_a_one_line_error_and_nothing_written(tmp_path, capsys, case, message):
    folder = tmp_path / "faces"
    folder.mkdir()
    extra = []
    if case != "empty":
        _write(folder, "happy", 4)
        (folder / "happy" / "broken.png").write_bytes(b"not a png")  # unreadable: skipped and counted
    if case in ("one sad face", "group-by matches nothing", "another network"):
        _write(folder, "sad", 1 if case == "one sad face" else 4, seed=1)
    if case == "group-by matches nothing":
        extra = ["--group-by", r"anna_(\d+)"]
    if case == "another network":
        extra = ["--arch", "lenet"]
    out = tmp_path / "runs" / "mine.keras"
    code = main(["train", "--init", str(VGG8), "--data", str(folder), "--out", str(out), *extra])
    printed = capsys.readouterr()
    assert code == 2 and printed.err.count("\n") == 1 and printed.err.startswith("error: "), printed.err
    assert message in printed.err, printed.err
    if case != "empty":
        assert "skipped 1 image(s): 1 unreadable" in printed.out  # counted as the collection loads
    assert not (tmp_path / "runs").exists()  # nothing half-written: no model, no checkpoint


@pytest.mark.slow
def test_fine_tuning_vgg8_on_a_shifted_collection_improves_held_out_accuracy(tmp_path):
    data = load_faces(write_shifted_collection(tmp_path / "faces", people=10, per_emotion=4, seed=1))
    out = tmp_path / "runs" / "mine.keras"
    recipe = fine_tuning(VGG8, group_by=r"person(\d+)", epochs=5)
    info = train(recipe, data, out, verbose=0)
    card = write_card(out, data)
    before, after = card["fine_tuning"]["before"], card["fine_tuning"]["after"]
    assert before["n"] == after["n"] == info["data"]["n_val"] == 56  # two of ten people
    assert before["accuracy"] < 0.45  # the shipped model on faces of another look (about 0.30 measured)
    assert after["accuracy"] > before["accuracy"] + 0.15, (before["accuracy"], after["accuracy"])  # 0.30 -> 0.62
    paired = card["fine_tuning"]["paired"]  # after against before, on the same 56 faces
    assert paired["difference"] == pytest.approx(after["accuracy"] - before["accuracy"])
    assert paired["significant"] and paired["right_only"] > paired["against_right_only"]
    held = set(info["data"]["holdout_files"])
    _, hold = validation_split(data, recipe.seed, holdout=recipe.holdout, group_by=recipe.group_by)
    assert held == set(hold.files)
    assert not {f.split("_")[0].split("/")[1] for f in held} & {f.split("_")[0].split("/")[1] for f in data.files
                                                                 if f not in held}
    assert evaluate(load_model(out), hold, None)["accuracy"] == pytest.approx(after["accuracy"])
    assert card["split"] == "hold-out" and card["results"]["plain"]["n"] == 56
    md = out.with_suffix(".md").read_text()
    assert "GENERATED face collection `faces`" in md and "not FER2013" in md and "## Before and after" in md
    assert "Paired on the same faces: after - before: +" in md
    assert "--group-by 'person(\\d+)'" in md  # as the shell takes it
    assert "--data faces --out runs/mine.keras" in card["command"] and "--init" in card["command"]
    assert out.with_suffix(".tflite").stat().st_size > 0 and str(tmp_path) not in out.with_suffix(".json").read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine.json", "mine.keras", "mine.md", "mine.tflite"]
