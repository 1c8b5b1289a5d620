"""Keep native libraries' start-up lines and TensorFlow's chatter out of notebooks and terminals.

Native libraries print start-up lines straight to the process's stderr (LiteRT's "Created TensorFlow Lite XNNPACK
delegate", TensorFlow's absl, oneDNN and CPU-feature lines), where Python cannot filter them and notebooks show them
in red; :func:`quiet_native_logs` keeps them out while such a library loads. :func:`quiet_tensorflow_log` does the
same for TensorFlow's Python log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator

_quiet_lock = threading.RLock()
_quiet_depth = 0


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null inside the block (set ``FER_UTILS_NATIVE_LOGS=1`` to see them).

    Python exceptions still surface: they propagate after stderr is restored. The redirect is process-wide, so
    blocks in several threads take turns.
    """
    global _quiet_depth
    if os.environ.get("FER_UTILS_NATIVE_LOGS"):
        yield
        return
    with _quiet_lock:
        _quiet_depth += 1
        saved = None
        if _quiet_depth == 1:
            sys.stderr.flush()
            saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        try:
            yield
        finally:
            _quiet_depth -= 1
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)


@contextlib.contextmanager
def quiet_tensorflow_log() -> Iterator[None]:
    """TensorFlow's Python log says only errors inside the block. Its INFO and WARNING lines about its own workings
    ("Assets written to /tmp/...", "5 out of the last 9 calls ... triggered tf.function retracing" when several
    models each predict once) would show as red blocks in notebooks, with nothing for the user to do."""
    log = logging.getLogger("tensorflow")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
