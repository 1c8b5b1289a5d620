// The browser camera: getUserMedia frames -> JPEG bytes -> kernel; the kernel's faces are drawn over the video.
// At most `max_in_flight` frames wait for the kernel at any time; a frame that would exceed it is dropped, never
// queued, so latency stays bounded however slow the kernel is.

const STALE_MS = 3000; // a frame the kernel never answered (restart, lost message) stops counting as in flight

function describe(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError")
    return "camera permission denied: allow the camera for this page in the browser's address bar, then press Start";
  if (name === "NotFoundError" || name === "OverconstrainedError")
    return "no camera found by the browser: plug one in, or choose the kernel camera or a video file";
  if (name === "NotReadableError" || name === "AbortError")
    return "the camera is busy or failed to start (another application may be using it)";
  return `camera error: ${name || ""} ${(err && err.message) || err}`;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "fer-webcam";
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.autoplay = true;
  const view = document.createElement("canvas"); // what the user sees: video frame + boxes
  view.className = "fer-webcam-view";
  const note = document.createElement("div");
  note.className = "fer-webcam-note";
  root.append(view, note);
  el.append(root);

  const grab = document.createElement("canvas"); // the frame sent to the kernel
  let stream = null;
  let faces = [];
  let facesSize = [1, 1];
  let inFlight = new Map(); // frame id -> performance.now() when captured
  let nextId = 0;
  let lastSent = 0;
  let lastLatency = null;
  let raf = 0;
  let vfc = 0;
  let alive = true;

  const setError = (msg) => {
    model.set("error", msg);
    model.save_changes();
    note.textContent = msg;
  };

  async function start() {
    if (stream) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setError(
        "this page cannot use a camera: browsers allow cameras only on https:// or http://localhost pages " +
          "(navigator.mediaDevices is missing); open Jupyter over https or localhost, or use the kernel camera",
      );
      model.set("running", false);
      model.save_changes();
      return;
    }
    try {
      const w = model.get("width");
      const h = model.get("height");
      const s = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: w }, height: { ideal: h } }, audio: false });
      if (!alive || !model.get("running")) {
        s.getTracks().forEach((t) => t.stop());
        return;
      }
      stream = s;
      for (const track of stream.getVideoTracks())
        track.addEventListener("ended", () => {
          if (stream) {
            stop();
            setError("the camera stopped delivering frames (unplugged, or taken by another application)");
            model.set("running", false);
            model.save_changes();
          }
        });
      video.srcObject = stream;
      await video.play();
      schedule();
      model.set("error", "");
      model.save_changes();
      note.textContent = "";
    } catch (err) {
      setError(describe(err));
      model.set("running", false);
      model.save_changes();
    }
  }

  function stop() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    inFlight.clear();
    faces = [];
    schedule(); // a stopped video calls no frame callback: back to screen refreshes
  }

  function send(now) {
    const vw = video.videoWidth;
    const vh = video.videoHeight;
    if (!vw || !vh) return;
    const maxW = model.get("width");
    const scale = Math.min(1, maxW / vw);
    grab.width = Math.round(vw * scale);
    grab.height = Math.round(vh * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const id = nextId++;
    inFlight.set(id, now);
    lastSent = now;
    const size = [grab.width, grab.height];
    grab.toBlob(
      async (blob) => {
        if (!blob || !stream) {
          inFlight.delete(id);
          return;
        }
        const buf = await blob.arrayBuffer();
        model.send({ type: "frame", id, width: size[0], height: size[1], latency_ms: lastLatency }, undefined, [buf]);
      },
      "image/jpeg",
      model.get("quality"),
    );
  }

  // Redraw (and maybe send) once per new camera frame where the browser can tell (requestVideoFrameCallback),
  // else once per screen refresh: drawing at 60 Hz a 30 fps camera only burns the CPU the kernel needs.
  // Exactly one pending callback at any time: schedule() cancels the other kind before asking for one.
  function schedule() {
    cancelAnimationFrame(raf);
    if (vfc && video.cancelVideoFrameCallback) video.cancelVideoFrameCallback(vfc);
    raf = vfc = 0;
    if (!alive) return;
    if (stream && video.requestVideoFrameCallback) vfc = video.requestVideoFrameCallback(tick);
    else raf = requestAnimationFrame(tick);
  }

  function tick() {
    draw();
    schedule();
  }

  function draw() {
    const now = performance.now();
    for (const [id, t] of inFlight) if (now - t > STALE_MS) inFlight.delete(id);
    if (!stream || !video.videoWidth) return;
    const fps = model.get("max_fps");
    // 0.8: camera frames jitter around 1000/fps ms apart; an exact test would skip every other one
    if (inFlight.size < model.get("max_in_flight") && (!fps || now - lastSent >= 800 / fps)) send(now);

    if (view.width !== video.videoWidth) view.width = video.videoWidth;
    if (view.height !== video.videoHeight) view.height = video.videoHeight;
    const ctx = view.getContext("2d");
    ctx.drawImage(video, 0, 0, view.width, view.height);
    const sx = view.width / facesSize[0];
    const sy = view.height / facesSize[1];
    ctx.lineWidth = Math.max(2, view.width / 320);
    ctx.font = `${Math.max(14, Math.round(view.width / 32))}px sans-serif`;
    for (const f of faces) {
      const [x, y, w, h] = f.box;
      ctx.strokeStyle = "#22dd55";
      ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
      const text = `${f.emotion} ${f.score.toFixed(2)}`;
      const tw = ctx.measureText(text).width;
      const th = parseInt(ctx.font, 10);
      const ty = Math.max(th + 4, y * sy);
      ctx.fillStyle = "#22dd55";
      ctx.fillRect(x * sx, ty - th - 4, tw + 8, th + 4);
      ctx.fillStyle = "#000";
      ctx.fillText(text, x * sx + 4, ty - 4);
    }
  }

  model.on("msg:custom", (msg) => {
    if (!msg || msg.type !== "result") return;
    const t = inFlight.get(msg.id);
    inFlight.delete(msg.id);
    if (t !== undefined) lastLatency = performance.now() - t;
    faces = msg.faces || [];
    facesSize = [msg.width || 1, msg.height || 1];
  });

  const onRunning = () => (model.get("running") ? start() : stop());
  model.on("change:running", onRunning);
  onRunning();
  schedule();

  return () => {
    alive = false;
    schedule();
    model.off("change:running", onRunning);
    stop();
  };
}

export default { render };
