"""The live webcam in Jupyter: an ipywidgets panel that recognises emotions on the browser's camera, the kernel's
camera, a video file or a generated clip; and a photo cell that boxes and classifies every face of a picture.

``cv2.imshow`` (every peer's demo) fails inside notebooks, and ``cv2.VideoCapture(0)`` on a remote kernel opens the
server's camera, not the user's. So the default source is the browser: a small anywidget (``webcam.js``) grabs
``getUserMedia`` frames, sends them to the kernel as JPEG bytes and draws the faces the kernel sends back.

One job a module, in the order frames flow: ``sources`` (cameras, files, the generated clip), ``loop`` (the
kernel's capture thread, one inference at a time), ``browser`` (the browser's camera as a widget), ``panel`` (the
live panel) and ``photo`` (the photo cell). Each frame goes through :class:`fer_utils.video.FrameAnalyzer` and
lands in a :class:`fer_utils.video.FaceTable`, as in videos.
"""

from fer_utils.webcam.browser import BrowserCamera
from fer_utils.webcam.loop import KernelLoop
from fer_utils.webcam.panel import WebcamPanel, main_face, probability_bars_html
from fer_utils.webcam.photo import PhotoPanel, recognize_photo
from fer_utils.webcam.sources import SOURCES, CameraError, ClipCapture, make_clip_frame, open_capture, save_clip

__all__ = [
    "SOURCES",
    "BrowserCamera",
    "CameraError",
    "ClipCapture",
    "KernelLoop",
    "PhotoPanel",
    "WebcamPanel",
    "main_face",
    "make_clip_frame",
    "open_capture",
    "probability_bars_html",
    "recognize_photo",
    "save_clip",
]
