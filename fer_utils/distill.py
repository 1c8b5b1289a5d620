"""Consistent, patient knowledge distillation (Beyer et al. 2022, "Knowledge distillation: a good teacher is patient
and consistent"): in every training step the teacher answers on the very view of each face that the student sees.

The view is the student's own augmentation, run once, then optionally mixed up across the batch (mixup: each face
blended with another by a Beta(alpha, alpha) share). The student learns the teacher's probabilities on it, plus
``1 - teacher_weight`` of the equally blended one-hot labels. Precomputed targets (the teacher's answers on the clean
Training faces, :func:`fer_utils.training.targets`) mostly repeat the labels, which the teacher gets right 86.5% of
the time there; on augmented and mixed faces it has more to say.

:class:`Distiller` wraps a compiled student network (a :func:`fer_utils.models.build_model` net, whose optimizer, loss
and metrics it shares) and a frozen teacher, and is ``fit`` in its place. Only the student has weights to learn, and
the student is what gets saved (its optimizer state with it, so a checkpoint resumes); validation and ``predict`` run
the student alone. The step is Keras' own, customised through ``call`` and ``compute_loss`` as in keras.io's
"Knowledge Distillation" example, so it runs on TensorFlow and JAX, in mixed_bfloat16 and split across devices.
"""

from __future__ import annotations

from fer_utils.constants import SIDE
from fer_utils.quiet import quiet_native_logs

with quiet_native_logs():  # TensorFlow's oneDNN start-up line, which TF_CPP_MIN_LOG_LEVEL does not hide
    import keras
    from keras import ops


class Distiller(keras.Model):
    """``student`` (compiled) learning from ``teacher``'s answers on the student's own augmented, mixed-up views.

    ``call`` in training returns a dict: the student's probabilities on the view (``"student"``), the teacher's on
    the same view (``"teacher"``) and each face's share of it (``"mix"``, 1 without mixup); otherwise the student's
    probabilities alone. ``compute_loss`` turns the dict into the targets (:meth:`targets`) and applies the student's
    compiled loss to them.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, *, teacher_weight: float = 1.0,
                 mixup: float = 0.0, seed: int = 0):
        super().__init__(name="distiller")
        self.student = student
        self.teacher = in_global_policy(teacher)
        self.teacher.trainable = False
        # the student's layers up to its augmentation (up to its scaling where it has none), and those after it:
        # uint8 faces -> the view, a float face in [0, 1] -> probabilities; the same layers and weights as student
        names = [layer.name for layer in student.layers]
        cut = student.get_layer("augmentation" if "augmentation" in names else "scale").output
        self.front, self.back = keras.Model(student.input, cut), keras.Model(cut, student.output)
        self.teacher_weight, self.mixup = teacher_weight, mixup
        self.mixing = keras.random.SeedGenerator(seed)
        self.built = True  # every layer is built already

    def view(self, faces, training: bool = False):
        """(view, mix): the faces scaled to [0, 1] and, in training, augmented and mixed up; each face's share."""
        view = self.front(faces, training=training)
        if not (training and self.mixup):
            return view, ops.ones(ops.shape(view)[:1])
        share = keras.random.beta(ops.shape(view)[:1], self.mixup, self.mixup, seed=self.mixing)
        share = ops.maximum(share, 1 - share)  # each face stays the larger part of its view: "accuracy" means its label
        # partner: the batch reversed (as timm's mixup does): the batches are shuffled every epoch already
        s = ops.cast(ops.reshape(share, (-1, 1, 1, 1)), view.dtype)
        return s * view + (1 - s) * ops.flip(view, 0), share

    def call(self, faces, training: bool = False):
        if not training:
            return self.student(faces, training=False)
        view, share = self.view(faces, training=True)
        # the teacher takes uint8 faces: it gets the view rounded to grey levels (in float32; bfloat16 has steps of
        # one grey level above 128), which its own Rescaling brings back to within 1/510 of what the student sees
        levels = ops.round(ops.clip(ops.cast(view, "float32"), 0, 1) * 255)
        taught = self.teacher(ops.cast(ops.reshape(levels, (-1, SIDE, SIDE)), "uint8"), training=False)
        return {"student": self.back(view, training=True), "teacher": ops.stop_gradient(taught), "mix": share}

    def targets(self, onehot, answers: dict):
        """What the student learns on a training step's views: ``teacher_weight`` of the teacher's probabilities plus
        the rest of the one-hot labels blended in the view's shares."""
        share = ops.expand_dims(ops.cast(answers["mix"], "float32"), -1)
        onehot = ops.cast(onehot, "float32")
        labels = share * onehot + (1 - share) * ops.flip(onehot, 0)
        return self.teacher_weight * ops.cast(answers["teacher"], "float32") + (1 - self.teacher_weight) * labels

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if isinstance(y_pred, dict):  # a training step; validation compares the student with the labels
            y, y_pred = self.targets(y, y_pred), y_pred["student"]
        return super().compute_loss(x, y, y_pred, sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # training accuracy: the student's answer on the view against the label of the face that is most of it
        return super().compute_metrics(x, y, y_pred["student"] if isinstance(y_pred, dict) else y_pred, sample_weight)


def in_global_policy(model: keras.Model) -> keras.Model:
    """A copy of the float32 ``model`` (a loaded teacher, an ensemble's nested members included) that computes in the
    global dtype policy, e.g. mixed_bfloat16, for the speed of native bfloat16: a loaded model keeps the policy it
    was saved with. Its inputs and its softmax and averaging layers (named "emotion") stay as they are."""

    def clone(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer) and layer.name != "emotion":
            config.pop("dtype", None)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def distiller(student: keras.Model, teacher: keras.Model, *, teacher_weight: float = 1.0, mixup: float = 0.0,
              seed: int = 0) -> Distiller:
    """A :class:`Distiller` of the compiled ``student``, compiled with its optimizer (built on the student's weights,
    so that saving the student saves its state) and loss; its metric is accuracy."""
    if student.optimizer is None:
        raise ValueError("student must be compiled (an optimizer and a loss) before it is distilled into")
    if not student.optimizer.built:
        student.optimizer.build(student.trainable_variables)
    d = Distiller(student, teacher, teacher_weight=teacher_weight, mixup=mixup, seed=seed)
    d.compile(optimizer=student.optimizer, loss=student.loss, metrics=["accuracy"])
    return d
