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
  video.className = "fer-webcam-video";
  // the boxes live on a transparent canvas over the video, redrawn only when the kernel answers: the browser
  // composites the video itself, so no full frame is painted by script
  const overlay = document.createElement("canvas");
  overlay.className = "fer-webcam-overlay";
  const stage = document.createElement("div");
  stage.className = "fer-webcam-stage";
  stage.append(video, overlay);
  const note = document.createElement("div");
  note.className = "fer-webcam-note";
  root.append(stage, note);
  el.append(root);

  const grab = document.createElement("canvas"); // the frame sent to the kernel
  let stream = null;
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
    drawFaces([], [1, 1]);
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

  // Look for a frame to send once per new camera frame where the browser can tell (requestVideoFrameCallback),
  // else once per screen refresh.
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
  }

  function drawFaces(faces, size) {
    const w = video.videoWidth || 640;
    const h = video.videoHeight || 480;
    if (overlay.width !== w) overlay.width = w;
    if (overlay.height !== h) overlay.height = h;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    const sx = w / size[0];
    const sy = h / size[1];
    ctx.lineWidth = Math.max(2, w / 320);
    const th = Math.max(14, Math.round(w / 32));
    ctx.font = `${th}px sans-serif`;
    for (const f of faces) {
      const [x, y, bw, bh] = f.box;
      ctx.strokeStyle = "#22dd55";
      ctx.strokeRect(x * sx, y * sy, bw * sx, bh * sy);
      const text = `${f.emotion} ${f.score.toFixed(2)}`;
      const tw = ctx.measureText(text).width;
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
    if (stream) drawFaces(msg.faces || [], [msg.width || 1, msg.height || 1]);
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
