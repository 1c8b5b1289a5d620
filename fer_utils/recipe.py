"""The recipe of a training run: every choice, as plain values in one frozen dataclass.

``train``'s keywords, the command line's flags, the checkpoint's resume check and the cards' commands are all made
from its fields, so a recipe is spelt in one place. No Keras here: the command line builds its parser from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex

import numpy as np

from fer_utils.constants import EMOTIONS
from fer_utils.shipped import read_info

CLASS_WEIGHTS = {"balanced": 1.0, "sqrt": 0.5}  # the power of n / (7 * count): sqrt is a milder boost for disgust


def class_weight_mode(mode: str | None) -> str | None:
    """``mode`` checked: None (also spelt "none" on the command line) or a key of :data:`CLASS_WEIGHTS`."""
    if mode is None or mode == "none":
        return None
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight={mode!r} is unknown; expected None, {', '.join(map(repr, CLASS_WEIGHTS))}")
    return mode


def class_weights(emotions: np.ndarray, mode: str | None) -> dict[int, float] | None:
    """Each emotion's weight in the loss: None, or (n / (7 * count)) ** power for a mode of :data:`CLASS_WEIGHTS`."""
    mode = class_weight_mode(mode)
    if mode is None:
        return None
    counts = np.bincount(emotions, minlength=len(EMOTIONS)).astype(float)
    w = (len(emotions) / (len(EMOTIONS) * np.maximum(counts, 1))) ** CLASS_WEIGHTS[mode]
    return {i: float(v) for i, v in enumerate(w)}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every training choice, recorded whole in the saved model and its card (``help`` and ``flag`` feed the CLI)."""

    # the network's architecture; its flag is --arch (--model names a model file in every command)
    model: str = dataclasses.field(default="lenet", metadata={"help": "the network: lenet, vgg or resnet",
                                                              "flag": "--arch"})
    model_kwargs: dict = dataclasses.field(default_factory=dict, metadata={
        "help": 'the network\'s options as JSON, e.g. \'{"filters": [32, 64]}\'', "flag": "--arch-kwargs"})
    epochs: int = dataclasses.field(default=30, metadata={"help": "passes over the training faces"})
    batch_size: int = dataclasses.field(default=64, metadata={"help": "faces per training step"})
    learning_rate: float = dataclasses.field(default=2e-3, metadata={"help": "peak of AdamW's warm-up then cosine decay"})
    weight_decay: float = dataclasses.field(default=1e-4, metadata={"help": "AdamW's weight decay"})
    label_smoothing: float = dataclasses.field(
        default=0.1, metadata={"help": "share of each target spread evenly over the seven emotions"})
    warmup_epochs: int = dataclasses.field(default=1, metadata={"help": "epochs of linear learning-rate warm-up"})
    class_weight: str | None = dataclasses.field(
        default=None, metadata={"help": "the loss weight of each emotion: none, balanced (inverse to its faces) or "
                                        "sqrt (the square root of that)"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of the weights, the data order and every draw"})
    mixed_precision: bool = dataclasses.field(
        default=False, metadata={"help": "mixed_bfloat16: for GPUs and AVX512-BF16/AMX CPUs, ~9x slower on others"})
    teacher: str | None = dataclasses.field(
        default=None, metadata={"help": "distil from this .keras model: its probabilities are mixed into the "
                                        "targets (see --distill)"})
    teacher_weight: float = dataclasses.field(default=0.7, metadata={"help": "share of the teacher in the targets"})
    distill: str = dataclasses.field(
        default="precomputed", metadata={"help": "precomputed: the teacher's flip-averaged answers on the clean "
                                                 "Training faces, once; consistent: its answers in every step on the "
                                                 "view the student sees, augmented and mixed up (Beyer et al. 2022)"})
    mixup: float = dataclasses.field(
        default=0.0, metadata={"help": "alpha of mixup's Beta(alpha, alpha) share: each augmented face blended with "
                                       "another of its batch, labels likewise; 0 = off; with --distill consistent"})
    init: str | None = dataclasses.field(
        default=None, metadata={"help": "start from this .keras model's weights instead of at random; its network "
                                        "(--arch, --arch-kwargs) unless given: fine-tuning"})
    holdout: float = dataclasses.field(
        default=0.2, metadata={"help": "share of a collection of your own faces held out, stratified by emotion, to "
                                       "choose the epoch and report on (FER2013 has PublicTest for that)"})
    group_by: str | None = dataclasses.field(
        default=None, metadata={"help": "regex searched in each face's path in a collection: its first group (else "
                                        "the whole match) names the person, whose faces stay on one side of the "
                                        "hold-out"})

    def __post_init__(self):
        object.__setattr__(self, "class_weight", class_weight_mode(self.class_weight))
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs} must be at least 1")
        if not 0 <= self.teacher_weight <= 1:
            raise ValueError(f"teacher_weight={self.teacher_weight} must be in [0, 1]")
        if self.distill not in ("precomputed", "consistent"):
            raise ValueError(f"distill={self.distill!r} is unknown; expected 'precomputed' or 'consistent'")
        if self.distill == "consistent" and self.teacher is None:
            raise ValueError("distill='consistent' needs a teacher to answer in every step; pass --teacher MODEL.keras")
        if self.mixup < 0:
            raise ValueError(f"mixup={self.mixup} must be at least 0 (0 = off), e.g. 0.2")
        if self.mixup and self.distill != "consistent":
            raise ValueError(f"mixup={self.mixup} needs distill='consistent' (the teacher answers on the mixed faces); "
                             "pass --teacher MODEL.keras --distill consistent, or --mixup 0")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout={self.holdout} must be in (0, 1), e.g. 0.2 for a fifth of the faces")
        if self.group_by is not None:
            try:
                re.compile(self.group_by)
            except re.error as e:
                raise ValueError(f"group_by={self.group_by!r} is not a regular expression ({e}); e.g. "
                                 r"'^(\w+?)_' for names like anna_happy_1.jpg") from e

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        """The recipe a card or checkpoint recorded; fields added since then take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        """Every field as JSON-ready plain values."""
        return dataclasses.asdict(self)

    def command(self, data: str = '"$FER2013_PATH"', out: str = "OUT.keras", *, collection: bool = False) -> str:
        """The ``python -m fer_utils train`` command that reruns this recipe exactly (every field that means something
        spelt out; the hold-out's fields only for a ``collection`` of faces, as FER2013 has PublicTest)."""
        args = ["python", "-m", "fer_utils", "train", "--data", "DATA", "--out", out]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("teacher_weight", "distill", "mixup") and self.teacher is None:
                continue  # means nothing without a teacher
            if f.name in ("holdout", "group_by") and not collection:
                continue
            if isinstance(value, bool):
                args += [flag(f)] if value else []
            elif value is not None and value != {}:
                args += [flag(f), json.dumps(value) if isinstance(value, dict) else str(value)]
        return shlex.join(args).replace("DATA", data)


def flag(field: dataclasses.Field) -> str:
    """The command-line flag of a :class:`Recipe` field: its ``flag`` metadata (``model`` is ``--arch``), else its
    name with dashes (``batch_size`` is ``--batch-size``)."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


# A short schedule for adapting a trained model to a few hundred faces of your own (``train --init MODEL --data
# FOLDER``): half the default recipe's 30 epochs and 2e-3 peak learning rate, in batches of 32 so that an epoch
# still takes a few steps. Measured on the generated shifted collection (fer_utils.synthetic.write_shifted_collection:
# 420 faces of 20 people, 4 of them held out): vgg8 went from 29% to 88% held-out accuracy (epoch 12 of 15, 3-5 s an
# epoch on 2 cores). 10 epochs reached 76% at this rate and 86% at 2e-3; the lower rate is the safer for real faces,
# whose FER2013 features a high rate can wash out.
FINE_TUNING = {"epochs": 15, "batch_size": 32, "learning_rate": 1e-3, "warmup_epochs": 1}


def fine_tuning(init: str | os.PathLike, /, *, schedule: dict | None = None, **fields) -> Recipe:
    """The recipe that adapts the trained model ``init`` to new faces: its network (``model`` and ``model_kwargs``
    as recorded in it) and ``schedule`` (default :data:`FINE_TUNING`), each overridden by ``fields``."""
    recorded = read_info(init).get("recipe")
    if recorded is None and "model" not in fields:
        raise ValueError(f"init={str(init)!r} records no recipe (an ensemble, or a model not saved by fer_utils); "
                         "start from a trained model such as models/vgg8.keras, or pass --arch and --arch-kwargs")
    network = {}
    if recorded and fields.get("model", recorded["model"]) == recorded["model"]:
        network = {"model": recorded["model"], "model_kwargs": recorded.get("model_kwargs", {})}
    return Recipe(**network | (FINE_TUNING if schedule is None else schedule) | fields | {"init": str(init)})
