// The page: files and recordings go to /v1/audio/transcriptions (or /translations) one at a
// time with stream=true; segments are shown as their `transcript.text.segment` events arrive.
// Plain JavaScript, no dependencies, nothing loaded from elsewhere.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = {
  server: $("#server"), drop: $("#drop"), file: $("#file"), record: $("#record"), recTime: $("#rec-time"),
  model: $("#model"), language: $("#language"), translate: $("#translate"), timestamps: $("#timestamps"),
  words: $("#words"), keyField: $("#key-field"), key: $("#api-key"), results: $("#results"),
  empty: $("#empty"), clear: $("#clear"), template: $("#result-template"),
};
const KEY_STORAGE = "whisper-edge.api-key";
const queue = [];
let busy = false;

// ---- server, models, API key ----

function authHeaders() {
  const key = el.key.value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

function askForKey(message) {
  el.keyField.hidden = false;
  setServer(message || "This server needs an API key", "bad");
  el.key.focus();
}

function setServer(text, kind) {
  el.server.textContent = text;
  el.server.className = "pill" + (kind ? " " + kind : "");
}

async function loadModels() {
  try {
    const r = await fetch("/v1/models", { headers: authHeaders() });
    if (r.status === 401) return askForKey(el.key.value ? "That API key was refused" : "This server needs an API key");
    if (r.status === 503) {
      // Still loading (or busy): ask again when the server says.
      const wait = Math.min(30, Number(r.headers.get("retry-after")) || 2);
      setServer("Starting… retrying in " + wait + " s");
      return setTimeout(loadModels, wait * 1000);
    }
    if (!r.ok) return setServer("Models unavailable (" + r.status + ")", "bad");
    const { data } = await r.json();
    const ids = data.map((m) => m.id).filter((id) => id !== "whisper-1");
    const chosen = el.model.value;
    el.model.replaceChildren(new Option("Server default", ""), ...ids.map((id) => new Option(id, id)));
    if (ids.includes(chosen)) el.model.value = chosen;
    setServer(ids.length ? "Ready · " + ids.length + (ids.length === 1 ? " model" : " models") : "No models loaded", ids.length ? "ok" : "bad");
  } catch (e) {
    setServer("Server unreachable", "bad");
  }
}

el.key.value = localStorage.getItem(KEY_STORAGE) || "";
if (el.key.value) el.keyField.hidden = false;
el.key.addEventListener("change", () => {
  localStorage.setItem(KEY_STORAGE, el.key.value.trim());
  loadModels();
});

// ---- choosing, dropping, recording ----

el.file.addEventListener("change", () => {
  addFiles(el.file.files);
  el.file.value = "";
});
for (const type of ["dragenter", "dragover"]) {
  el.drop.addEventListener(type, (e) => { e.preventDefault(); el.drop.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  el.drop.addEventListener(type, (e) => { e.preventDefault(); el.drop.classList.remove("over"); });
}
el.drop.addEventListener("drop", (e) => addFiles(e.dataTransfer.files));
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => e.preventDefault());

let recorder = null;
let recTimer = null;

el.record.addEventListener("click", () => (recorder ? recorder.stop() : startRecording()));

async function startRecording() {
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    return showPageError("Recording needs a browser with MediaRecorder, on https or localhost.");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    return showPageError("No microphone: " + (e.message || e.name));
  }
  // Chrome and Firefox record WebM/Opus, Safari MP4/AAC: the server decodes both.
  const mimeType = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t));
  recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  const started = Date.now();
  recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    clearInterval(recTimer);
    const type = recorder.mimeType || mimeType || "audio/webm";
    const ext = type.includes("mp4") ? "m4a" : type.includes("ogg") ? "ogg" : "webm";
    const name = "recording-" + new Date(started).toTimeString().slice(0, 8).replaceAll(":", "") + "." + ext;
    recorder = null;
    el.record.setAttribute("aria-pressed", "false");
    $(".label", el.record).textContent = "Record";
    el.recTime.hidden = true;
    addFiles([new File(chunks, name, { type: type.split(";")[0] })]);
  };
  recorder.start(1000);
  el.record.setAttribute("aria-pressed", "true");
  $(".label", el.record).textContent = "Stop";
  el.recTime.hidden = false;
  el.recTime.textContent = "0:00";
  recTimer = setInterval(() => (el.recTime.textContent = clock((Date.now() - started) / 1000)), 250);
}

function showPageError(message) {
  const card = newCard({ name: "Microphone" });
  fail(card, { message });
}

// ---- the queue ----

function addFiles(files) {
  for (const file of files) {
    const card = newCard(file);
    queue.push({ file, card, options: currentOptions() });
  }
  pump();
}

function currentOptions() {
  return {
    model: el.model.value, language: el.language.value, translate: el.translate.checked,
    timestamps: el.timestamps.checked, words: el.words.checked,
  };
}

async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const job = queue.shift();
    if (job.card.isConnected) await transcribe(job);
  }
  busy = false;
}

el.clear.addEventListener("click", () => {
  queue.length = 0;
  for (const card of [...el.results.children]) removeCard(card);
});

function newCard(file) {
  const card = el.template.content.firstElementChild.cloneNode(true);
  $(".filename", card).textContent = file.name;
  $(".filename", card).title = file.name;
  setState(card, "queued", "Queued");
  const player = $(".player", card);
  if (file instanceof Blob) {
    card.audioUrl = URL.createObjectURL(file);
    player.src = card.audioUrl;
  } else {
    player.hidden = true;
  }
  player.addEventListener("timeupdate", () => highlight(card, player.currentTime));
  $(".remove", card).addEventListener("click", () => removeCard(card));
  el.results.prepend(card);
  el.empty.hidden = true;
  el.clear.hidden = false;
  return card;
}

function removeCard(card) {
  if (card.abort) card.abort.abort();
  if (card.audioUrl) URL.revokeObjectURL(card.audioUrl);
  for (const a of card.querySelectorAll(".downloads a")) if (a.href) URL.revokeObjectURL(a.href);
  card.remove();
  const none = !el.results.children.length;
  el.empty.hidden = !none;
  el.clear.hidden = none;
}

function setState(card, state, label) {
  card.dataset.state = state;
  $(".badge", card).textContent = label;
  $(".progress", card).hidden = state !== "running";
}

// ---- one transcription, streamed ----

async function transcribe(job) {
  const { file, card, options } = job;
  const form = new FormData();
  form.append("file", file, file.name);
  if (options.model) form.append("model", options.model);
  if (options.language) form.append("language", options.language);
  form.append("stream", "true");
  form.append("timestamp_granularities[]", "segment");
  if (options.words) form.append("timestamp_granularities[]", "word");
  const route = options.translate ? "/v1/audio/translations" : "/v1/audio/transcriptions";

  const result = { file: file.name, task: options.translate ? "translate" : "transcribe", segments: [], text: "" };
  card.result = result;
  card.classList.toggle("no-times", !options.timestamps);
  $(".transcript", card).replaceChildren();
  $(".error", card).hidden = true;
  $(".retry", card).hidden = true;
  $(".downloads", card).hidden = true;
  setState(card, "running", "Transcribing");
  const started = performance.now();
  card.abort = new AbortController();
  try {
    const r = await fetch(route, { method: "POST", body: form, headers: authHeaders(), signal: card.abort.signal });
    if (!r.ok) return fail(card, await errorOf(r), job);
    await readEvents(r, (event) => onEvent(card, result, event));
    if (card.dataset.state === "running") {
      fail(card, { message: "The stream ended before the transcript was done." }, job);
    }
  } catch (e) {
    if (e.name !== "AbortError") fail(card, { message: "The request failed: " + (e.message || e) }, job);
  } finally {
    const meta = $(".elapsed", card);
    meta.textContent = ((performance.now() - started) / 1000).toFixed(1) + " s to transcribe";
    meta.hidden = card.dataset.state !== "done";
  }
}

async function errorOf(r) {
  let message = r.statusText || "error";
  try {
    const body = await r.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON */ }
  const titles = {
    400: "Bad request", 401: "API key needed", 404: "Not found", 408: "Upload stalled", 413: "File too large",
    415: "Unsupported format", 422: "Could not decode the audio", 500: "Server error", 503: "Server busy",
  };
  const error = { status: r.status, title: titles[r.status] || "Error " + r.status, message };
  const retry = Number(r.headers.get("retry-after"));
  if (r.status === 503 && retry > 0) error.retryAfter = retry;
  if (r.status === 401) askForKey(el.key.value ? "That API key was refused" : "This server needs an API key");
  return error;
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
    if (done) return;
  }
}

function onEvent(card, result, event) {
  switch (event.type) {
    case "transcript.text.segment":
      result.segments.push(event);
      $(".transcript", card).append(segmentElement(card, event));
      break;
    case "transcript.text.done":
      Object.assign(result, {
        text: event.text, language: event.language, language_probability: event.language_probability,
        duration: event.duration,
      });
      finish(card, result);
      break;
    case "error":
      fail(card, { title: "Transcription failed", message: (event.error && event.error.message) || "unknown error" });
      break;
  }
}

function segmentElement(card, seg) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "segment";
  b.dataset.start = seg.start;
  b.dataset.end = seg.end;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = clock(seg.start);
  const text = document.createElement("span");
  text.className = "text";
  if (seg.words && seg.words.length) {
    seg.words.forEach((w, i) => {
      const span = document.createElement("span");
      span.className = "word";
      span.dataset.start = w.start;
      span.dataset.end = w.end;
      span.textContent = w.word;
      text.append(i ? " " : "", span);
    });
  } else {
    text.textContent = seg.text.trim();
  }
  b.append(time, text);
  b.setAttribute("aria-label", "Play from " + clock(seg.start) + ": " + seg.text.trim());
  b.addEventListener("click", () => {
    const player = $(".player", card);
    player.currentTime = seg.start;
    player.play().catch(() => {});
  });
  return b;
}

function finish(card, result) {
  setState(card, "done", "Done");
  if (!result.segments.length) {
    const p = document.createElement("p");
    p.className = "text none";
    p.textContent = result.text || "(no speech found)";
    $(".transcript", card).append(p);
  }
  const lang = $(".language", card);
  if (result.language) {
    const name = languageName(result.language);
    const p = result.language_probability;
    lang.textContent = name + (p != null ? " · " + Math.round(p * 100) + "%" : "");
    lang.title = "Detected language and its probability";
    lang.hidden = false;
  }
  const dur = $(".duration", card);
  dur.textContent = clock(result.duration) + " of audio";
  dur.hidden = result.duration == null;
  const base = result.file.replace(/\.[^.]+$/, "") || "transcript";
  for (const a of card.querySelectorAll(".downloads a")) {
    const format = a.dataset.format;
    if (a.href) URL.revokeObjectURL(a.href);
    const [body, type] = render(result, format);
    a.href = URL.createObjectURL(new Blob([body], { type }));
    a.download = base + "." + format;
  }
  $(".downloads", card).hidden = false;
}

function fail(card, error, job) {
  setState(card, "error", error.status ? String(error.status) : "Error");
  const box = $(".error", card);
  const title = document.createElement("strong");
  title.textContent = error.title || "Error";
  const text = document.createElement("span");
  text.className = "message";
  text.textContent = error.message + (error.retryAfter ? " Retry in " + error.retryAfter + " s." : "");
  box.replaceChildren(title, text);
  box.hidden = false;
  // Retrying helps when the server was busy or failed, not when the file itself was refused.
  if (job && (!error.status || error.status === 408 || error.status >= 500)) {
    const retry = $(".retry", card);
    retry.hidden = false;
    retry.onclick = () => {
      queue.push({ ...job, options: job.options });
      setState(card, "queued", "Queued");
      box.hidden = true;
      retry.hidden = true;
      pump();
    };
  }
}

// ---- the player follows the transcript ----

function highlight(card, t) {
  for (const node of card.querySelectorAll(".segment, .word")) {
    const on = t >= Number(node.dataset.start) && t < Number(node.dataset.end);
    if (node.classList.contains("active") !== on) node.classList.toggle("active", on);
  }
}

// ---- downloads ----

function render(result, format) {
  const segs = result.segments.length ? result.segments : [{ start: 0, end: result.duration || 0, text: result.text }];
  switch (format) {
    case "txt":
      return [result.text.trim() + "\n", "text/plain"];
    case "srt":
      return [segs.map((s, i) => `${i + 1}\n${stamp(s.start, ",")} --> ${stamp(s.end, ",")}\n${s.text.trim()}\n`).join("\n"), "application/x-subrip"];
    case "vtt":
      return ["WEBVTT\n\n" + segs.map((s) => `${stamp(s.start, ".")} --> ${stamp(s.end, ".")}\n${s.text.trim()}\n`).join("\n"), "text/vtt"];
    default: {
      const out = {
        task: result.task, language: result.language, language_probability: result.language_probability,
        duration: result.duration, text: result.text,
        segments: result.segments.map(({ type, words, ...s }) => s),
      };
      const words = result.segments.flatMap((s) => s.words || []);
      if (words.length) out.words = words;
      return [JSON.stringify(out, null, 2) + "\n", "application/json"];
    }
  }
}

function stamp(seconds, sep) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function languageName(code) {
  const option = [...el.language.options].find((o) => o.value === code);
  return option ? option.textContent : code;
}

for (const node of document.querySelectorAll(".origin")) node.textContent = location.origin;
loadModels();
document.body.dataset.ready = "true";
