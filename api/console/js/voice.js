// Voice messages: recorded with MediaRecorder in a type this browser has
// (Opus in WebM or Ogg, AAC in MP4) and uploaded like any file; the server
// measures the length and the waveform, which every reader draws from the
// message itself before a byte of audio is fetched.

import { el, showError } from "./dom.js";
import { api } from "./rest.js";
import { $ } from "./state.js";

const RECORD_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4", "audio/webm"];

export function clock(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const recording = { recorder: null, started: 0, timer: 0 };

// Starts a recording, or stops the one running and hands the file to `done`.
export async function toggleRecording(done) {
  const button = $("record");
  if (recording.recorder) {
    recording.recorder.stop();
    return;
  }
  showError($("chat-error"), "");
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
    return showError($("chat-error"), "This browser cannot record audio.");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    return showError($("chat-error"), `The microphone is not available: ${e.message}`);
  }
  const mimeType = RECORD_TYPES.find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
  const chunks = [];
  recording.recorder = recorder;
  recording.started = Date.now();
  recorder.addEventListener("dataavailable", (e) => e.data.size && chunks.push(e.data));
  recorder.addEventListener("stop", () => {
    clearInterval(recording.timer);
    for (const t of stream.getTracks()) t.stop();
    const took = Date.now() - recording.started;
    recording.recorder = null;
    button.textContent = "Record";
    button.setAttribute("aria-pressed", "false");
    const type = (recorder.mimeType || mimeType || "audio/webm").split(";")[0];
    const ext = type.endsWith("ogg") ? "ogg" : type.endsWith("mp4") ? "m4a" : "webm";
    const blob = new Blob(chunks, { type });
    if (blob.size) done(new File([blob], `voice-message.${ext}`, { type }), `Voice message (${clock(took)})`);
  });
  recorder.start();
  button.setAttribute("aria-pressed", "true");
  const tick = () => (button.textContent = `Stop ${clock(Date.now() - recording.started)}`);
  tick();
  recording.timer = setInterval(tick, 500);
}

// A voice message: play/pause, the waveform (bars fill as it plays), the length.
// The audio is fetched through a fresh signed link on the first play.
export function voiceNode(a) {
  const audio = el("audio", { preload: "none" });
  const play = el("button", { type: "button", class: "play", "aria-label": `Play ${a.name}`, text: "▶" });
  const wave = el("span", { class: "wave", "aria-hidden": "true" });
  const bars = a.audio.waveform.map((p) => {
    const bar = el("i");
    bar.style.height = `${Math.max(8, p)}%`; // CSSOM, which the page's CSP allows
    wave.append(bar);
    return bar;
  });
  const length = el("span", { class: "length", text: clock(a.audio.durationMs) });
  const box = el("span", { class: "voice", "data-id": a.id }, play, wave, length, audio);
  const total = a.audio.durationMs / 1000;
  audio.addEventListener("timeupdate", () => {
    const done = total > 0 ? audio.currentTime / total : 0;
    bars.forEach((b, i) => b.classList.toggle("played", i / bars.length < done));
    length.textContent = clock(audio.currentTime * 1000);
  });
  const reset = () => {
    play.textContent = "▶";
    play.setAttribute("aria-label", `Play ${a.name}`);
  };
  audio.addEventListener("pause", reset);
  audio.addEventListener("ended", () => {
    reset();
    length.textContent = clock(a.audio.durationMs);
  });
  audio.addEventListener("playing", () => {
    play.textContent = "❚❚";
    play.setAttribute("aria-label", `Pause ${a.name}`);
  });
  play.addEventListener("click", async () => {
    if (!audio.paused) return audio.pause();
    try {
      if (!audio.src) audio.src = (await api("GET", `/api/messages/attachments/${a.id}`)).url;
      await audio.play();
    } catch (e) {
      showError($("chat-error"), `Could not play the voice message: ${e.message}`);
    }
  });
  return box;
}
