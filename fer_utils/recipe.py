"""The recipe of a training run: every choice, as plain values in one frozen dataclass.

``train``'s keywords, the command line's flags, the checkpoint's resume check and the cards' commands are all made
from its fields, so a recipe is spelt in one place. No Keras here: the command line builds its parser from it.
"""

from __future__ import annotations

import dataclasses
import json
import shlex


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every training choice, recorded whole in the saved model and its card (``help`` feeds the CLI)."""

    model: str = dataclasses.field(default="lenet", metadata={"help": "lenet or vgg"})
    model_kwargs: dict = dataclasses.field(default_factory=dict, metadata={"help": 'JSON, e.g. \'{"filters": [32, 64]}\''})
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = dataclasses.field(default=2e-3, metadata={"help": "peak of AdamW's warm-up then cosine decay"})
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    warmup_epochs: int = 1
    class_weight: str | None = dataclasses.field(default=None, metadata={"help": "none, balanced or sqrt"})
    seed: int = 0
    mixed_precision: bool = dataclasses.field(
        default=False, metadata={"help": "mixed_bfloat16: for GPUs and AVX512-BF16/AMX CPUs, ~9x slower on others"})
    teacher: str | None = dataclasses.field(
        default=None, metadata={"help": "distil from this .keras model: its flip-averaged probabilities on the "
                                        "Training faces are mixed into the targets"})
    teacher_weight: float = dataclasses.field(default=0.7, metadata={"help": "share of the teacher in the targets"})
    init: str | None = dataclasses.field(
        default=None, metadata={"help": "start from this .keras model's weights (same network) instead of at random"})

    def __post_init__(self):
        if self.class_weight == "none":  # the command line's spelling of None
            object.__setattr__(self, "class_weight", None)
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs} must be at least 1")
        if self.class_weight not in (None, "balanced", "sqrt"):
            raise ValueError(f"class_weight={self.class_weight!r} is unknown; expected None, 'balanced' or 'sqrt'")
        if not 0 <= self.teacher_weight <= 1:
            raise ValueError(f"teacher_weight={self.teacher_weight} must be in [0, 1]")

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        """The recipe a card or checkpoint recorded; fields added since then take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        """Every field as JSON-ready plain values."""
        return dataclasses.asdict(self)

    def command(self, data: str = '"$FER2013_PATH"', out: str = "OUT.keras") -> str:
        """The ``python -m fer_utils train`` command that reruns this recipe exactly (every field spelt out)."""
        args = ["python", "-m", "fer_utils", "train", "--data", "DATA", "--out", out]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "teacher_weight" and self.teacher is None:
                continue  # means nothing without a teacher
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                args += [flag] if value else []
            elif value is not None and value != {}:
                args += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
        return shlex.join(args).replace("DATA", data)
