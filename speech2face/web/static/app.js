// speech2face's page: record or drop a voice, show the portrait the server draws.
// Plain browser JavaScript, no libraries: everything comes from this server.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const MAX_RECORD_SECONDS = 120;
  let limits = { max_upload_bytes: 25 * 1024 * 1024, max_seconds: 120, min_seconds: 1 };
  let state = "connecting";
  let pending = null; // a request refused while the model loaded: sent again once it is ready
  let sentUrl = null;
  let galleryLoaded = false;

  // ------------------------------------------------------------------ status

  function setStatus(kind, text) {
    const box = $("status");
    box.className = "status " + kind;
    $("status-text").textContent = text;
  }

  function describe(model) {
    const name = model.checkpoint ? model.checkpoint.split(/[\\/]/).slice(-3).join("/") : "the default model";
    const px = model.portrait_px;
    return `Model ready: ${name} · ${px}×${px} portraits · ${model.window_seconds} s windows · ${model.device}`;
  }

  async function pollStatus() {
    let status;
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      status = await response.json();
    } catch (error) {
      setStatus("error", "The server does not answer: is s2f-serve still running?");
      setTimeout(pollStatus, 3000);
      return;
    }
    limits = status.limits || limits;
    $("formats").textContent =
      `wav, flac, ogg, mp3, m4a, or the audio of an mp4; up to ${megabytes(limits.max_upload_bytes)}`;
    $("tips").textContent =
      `Speak naturally for 6 seconds or more. Silence is left out; at least ${limits.min_seconds} s ` +
      `of sound is needed, and the first ${limits.max_seconds} s are used.`;
    $("version").textContent = status.version ? `speech2face ${status.version}.` : "";
    $("gallery-count").textContent = status.gallery ? String(status.gallery) : "";
    state = status.state;
    if (state === "loading") {
      setStatus("loading", `Loading the model… (${Math.round(status.waited_s || 0)} s)`);
      setTimeout(pollStatus, 1000);
    } else if (state === "ready") {
      setStatus("ready", describe(status.model));
      if (pending) {
        const again = pending;
        pending = null;
        send(again.body, again.name);
      }
      if (galleryLoaded) retryGalleryPortraits();
    } else {
      setStatus("error", "No model loaded");
      $("model-error-text").textContent = capitalise(status.message);
      $("model-error").hidden = false;
      $("placeholder").querySelector("p").textContent = "No portrait can be drawn without a model (see above).";
      if (pending) {
        pending = null;
        showMessage(`No model: ${status.message}`);
        showBusy(false);
      }
    }
  }

  function megabytes(bytes) {
    return `${Math.round((bytes / 1048576) * 10) / 10} MB`;
  }

  // ------------------------------------------------------------------ messages

  function showMessage(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = "message" + (kind ? " " + kind : "");
    box.hidden = !text;
  }

  function showBusy(on, text) {
    $("busy").hidden = !on;
    if (on) {
      $("busy-text").textContent = text || "Drawing the portrait…";
      $("placeholder").hidden = true;
      $("result").hidden = true;
    } else if ($("result").hidden) {
      $("placeholder").hidden = false;
    }
  }

  // ------------------------------------------------------------------ sending a voice

  function showSent(blob, name) {
    if (sentUrl) URL.revokeObjectURL(sentUrl);
    sentUrl = URL.createObjectURL(blob);
    $("sent-audio").src = sentUrl;
    $("sent-name").textContent = name;
    $("sent").hidden = false;
  }

  function sendFile(blob, name) {
    showTab("voice");
    showSent(blob, name);
    if (blob.size > limits.max_upload_bytes) {
      showMessage(
        `${name} is larger than the ${megabytes(limits.max_upload_bytes)} limit: ` +
          "send a shorter recording (a minute of speech is plenty)"
      );
      return;
    }
    send(blob, name);
  }

  async function send(blob, name) {
    showMessage("");
    const began = performance.now();
    showBusy(true);
    const ticker = setInterval(() => {
      const seconds = ((performance.now() - began) / 1000).toFixed(0);
      $("busy-text").textContent = `Drawing the portrait… ${seconds} s`;
    }, 1000);
    const form = new FormData();
    form.append("file", blob, name);
    let response, body;
    try {
      response = await fetch("/api/portrait", { method: "POST", body: form });
      body = await response.json().catch(() => null);
    } catch (error) {
      clearInterval(ticker);
      showBusy(false);
      showMessage("The server did not answer: is s2f-serve still running? Reload the page once it is.");
      return;
    }
    clearInterval(ticker);
    if (response.ok && body) {
      showResult(body);
      return;
    }
    const text = body && body.error ? body.error : `The server answered ${response.status} ${response.statusText}.`;
    if (response.status === 503 && state !== "error" && /loading/.test(text)) {
      pending = { body: blob, name: name };
      showBusy(true, "Waiting for the model to load…");
      showMessage(`${capitalise(text)}. The voice will be drawn as soon as the model is ready.`, "info");
      state = "loading";
      setTimeout(pollStatus, 1000);
      return;
    }
    showBusy(false);
    showMessage(capitalise(text));
  }

  function capitalise(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
  }

  function showResult(r) {
    showBusy(false);
    $("placeholder").hidden = true;
    $("result").hidden = false;
    $("portrait").src = r.portrait;
    $("zoom-img").src = r.upscaled;
    $("download").href = r.portrait;
    $("download").download = r.name.replace(/\.[^.]*$/, "") + "-portrait.png";
    $("portrait-caption").textContent =
      r.portrait_px === 224 ? "224 × 224" : `drawn at ${r.portrait_px} × ${r.portrait_px}, shown at 224 × 224`;
    const attrs = r.attributes;
    $("attributes").hidden = !attrs;
    if (attrs) {
      $("gender").textContent = attrs.gender || "cannot tell";
      const years = attrs.age == null ? null : Math.round(attrs.age);
      $("age").textContent = years == null ? "cannot tell" : `about ${years} year${years === 1 ? "" : "s"}`;
      $("attributes-note").textContent =
        `Predicted from the portrait, not from the voice, by ${r.attributes_note.split(":")[0]}.`;
    } else {
      $("attributes-note").textContent = capitalise(r.attributes_note) + ".";
    }
    const windows = r.windows === 1 ? "1 window" : `${r.windows} windows`;
    let summary =
      `${r.name}: ${r.seconds.toFixed(1)} s of voice in ${windows} of ${r.window_seconds} s, ` +
      `drawn in ${r.elapsed_s.toFixed(2)} s.`;
    if (r.truncated) summary += ` Only the first ${limits.max_seconds} s were used.`;
    $("summary").textContent = summary;
    $("spectrogram").src = r.spectrogram;
    let note =
      "The voice encoder's input for each window whose predictions were averaged: the magnitude " +
      "of the compressed spectrogram, time across, frequency up (0 to 8 kHz), brighter is louder. " +
      "A recording shorter than a window is repeated to fill it.";
    if (r.shown_windows < r.windows) note += ` The first ${r.shown_windows} of ${r.windows} windows are shown.`;
    $("spec-note").textContent = note;
    $("spec-card").hidden = false;
  }

  // ------------------------------------------------------------------ files

  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) sendFile(file, file.name);
    $("file").value = "";
  });
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((type) =>
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    })
  );
  ["dragleave", "drop"].forEach((type) =>
    drop.addEventListener(type, () => drop.classList.remove("over"))
  );
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) sendFile(file, file.name);
  });
  // A file dropped outside the box is not opened by the browser in place of the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  // ------------------------------------------------------------------ the microphone

  let recorder = null;
  let recordTimer = null;

  function micProblem() {
    if (!window.isSecureContext) {
      const port = location.port || "80";
      const local = `http://localhost:${port}/`;
      return [
        `Browsers allow the microphone only on a secure page, and this one is plain http from ${location.hostname}. Open `,
        [local],
        " on the machine running s2f-serve, or tunnel the port from this one with ",
        [`ssh -N -L ${port}:127.0.0.1:${port} USER@HOST`],
        " and open ",
        [local],
        ". Dropping a file works here anyway.",
      ];
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || typeof MediaRecorder === "undefined") {
      return ["This browser cannot record audio. Dropping a file works anyway."];
    }
    return null;
  }

  function setupMic() {
    const problem = micProblem();
    if (!problem) return;
    $("record").disabled = true;
    const note = $("mic-note");
    // Plain strings are text, one-element arrays are code.
    for (const part of problem) {
      if (typeof part === "string") {
        note.append(part);
      } else {
        const code = document.createElement("code");
        code.textContent = part[0];
        note.append(code);
      }
    }
    note.hidden = false;
  }

  async function startRecording() {
    showMessage("");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      const reasons = {
        NotAllowedError: "The browser was not allowed to use the microphone: allow it in the address bar's site settings, then record again.",
        NotFoundError: "No microphone was found. Dropping a file works anyway.",
        NotReadableError: "The microphone is in use by another program, or cannot be read.",
      };
      showMessage(reasons[error.name] || `The microphone could not be opened: ${error.message || error.name}`);
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
    });
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((track) => track.stop());
      clearInterval(recordTimer);
      $("input-card").classList.remove("recording");
      $("record").hidden = false;
      $("stop").hidden = true;
      $("rec-time").hidden = true;
      const type = recorder.mimeType || (chunks[0] && chunks[0].type) || "audio/webm";
      const blob = new Blob(chunks, { type: type });
      recorder = null;
      const suffix = /ogg/.test(type) ? "ogg" : /mp4|aac/.test(type) ? "m4a" : "webm";
      sendFile(blob, `recording.${suffix}`);
    });
    const began = performance.now();
    recorder.start(250);
    $("input-card").classList.add("recording");
    $("record").hidden = true;
    $("stop").hidden = false;
    $("rec-time").hidden = false;
    $("rec-time").textContent = "Recording… 0.0 s";
    recordTimer = setInterval(() => {
      const seconds = (performance.now() - began) / 1000;
      $("rec-time").textContent = `Recording… ${seconds.toFixed(1)} s`;
      if (seconds >= MAX_RECORD_SECONDS) stopRecording();
    }, 100);
  }

  function stopRecording() {
    if (recorder && recorder.state !== "inactive") recorder.stop();
  }

  $("record").addEventListener("click", startRecording);
  $("stop").addEventListener("click", stopRecording);

  // ------------------------------------------------------------------ upscaled view

  $("upscale").addEventListener("click", () => $("zoom").showModal());
  $("portrait").addEventListener("click", () => $("zoom").showModal());
  $("zoom").addEventListener("click", (event) => {
    if (event.target === $("zoom")) $("zoom").close();
  });

  // ------------------------------------------------------------------ tabs

  function showTab(name) {
    for (const tab of ["voice", "gallery"]) {
      $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
      $(`panel-${tab}`).hidden = tab !== name;
    }
    if (name === "gallery" && !galleryLoaded) loadGallery();
  }
  $("tab-voice").addEventListener("click", () => showTab("voice"));
  $("tab-gallery").addEventListener("click", () => showTab("gallery"));

  // ------------------------------------------------------------------ the gallery

  const waitingPortraits = [];

  async function loadGallery() {
    galleryLoaded = true;
    let data;
    try {
      data = await (await fetch("/api/gallery")).json();
    } catch (error) {
      galleryLoaded = false;
      $("gallery-note").textContent = "The gallery could not be loaded: is s2f-serve still running?";
      return;
    }
    const note = $("gallery-note");
    note.textContent = data.note;
    note.classList.toggle("empty", data.examples.length === 0);
    const grid = $("gallery");
    grid.textContent = "";
    for (const example of data.examples) grid.appendChild(exampleCard(example));
    drawGalleryPortraits();
  }

  function exampleCard(example) {
    const card = document.createElement("article");
    card.className = "card example";
    const title = document.createElement("h3");
    title.textContent = `Speaker ${example.speaker}`;
    const labels = document.createElement("p");
    labels.className = "labels";
    const parts = [];
    if (example.labels.gender) parts.push(example.labels.gender);
    if (example.labels.age != null) parts.push(`${example.labels.age} years`);
    labels.textContent = parts.length ? `Data set: ${parts.join(", ")}` : "Held-out voice";
    const pair = document.createElement("div");
    pair.className = "pair";
    const truth = figure("True face");
    const img = document.createElement("img");
    img.src = example.true_face;
    img.alt = `True face of speaker ${example.speaker}`;
    truth.frame.appendChild(img);
    const drawn = figure("Portrait from the voice");
    drawn.frame.textContent = "waiting for the model…";
    pair.append(truth.figure, drawn.figure);
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = example.audio;
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Show spectrogram and details";
    open.addEventListener("click", async () => {
      const blob = await (await fetch(example.audio)).blob();
      sendFile(blob, `example ${example.index + 1} (speaker ${example.speaker}).wav`);
    });
    card.append(title, labels, pair, audio, open);
    waitingPortraits.push({ url: example.portrait, frame: drawn.frame, speaker: example.speaker });
    return card;
  }

  function figure(caption) {
    const fig = document.createElement("figure");
    const frame = document.createElement("div");
    frame.className = "frame";
    const cap = document.createElement("figcaption");
    cap.textContent = caption;
    fig.append(frame, cap);
    return { figure: fig, frame: frame };
  }

  let drawingGallery = false;

  async function drawGalleryPortraits() {
    if (state === "error") {
      for (const item of waitingPortraits) item.frame.textContent = "no model: see the top of the page";
      return;
    }
    if (drawingGallery) return;
    drawingGallery = true;
    // One at a time, in order: the model serves one request at a time anyway.
    while (waitingPortraits.length && state === "ready") {
      const item = waitingPortraits[0];
      item.frame.textContent = "drawing…";
      let response;
      try {
        response = await fetch(item.url);
      } catch (error) {
        break;
      }
      if (response.status === 503) {
        item.frame.textContent = "waiting for the model…";
        break;
      }
      waitingPortraits.shift();
      if (response.ok) {
        const img = document.createElement("img");
        img.src = URL.createObjectURL(await response.blob());
        img.alt = `Portrait drawn from the voice of speaker ${item.speaker}`;
        item.frame.textContent = "";
        item.frame.appendChild(img);
      } else {
        const body = await response.json().catch(() => null);
        item.frame.classList.add("failed");
        item.frame.textContent = body && body.error ? body.error : `error ${response.status}`;
      }
    }
    drawingGallery = false;
  }

  function retryGalleryPortraits() {
    if (waitingPortraits.length) drawGalleryPortraits();
  }

  // ------------------------------------------------------------------ start

  setupMic();
  pollStatus();
  if (location.hash === "#examples") showTab("gallery");
})();
