// speechkd live transcription page: microphone -> 16 kHz float32 PCM -> WebSocket -> partial/committed text.
"use strict";

const TARGET_RATE = 16000;
const SEND_EVERY = 0.25; // seconds of audio per WebSocket message

const $ = (id) => document.getElementById(id);
const state = { socket: null, ready: false, running: false, committed: [], partial: "", latencies: [],
                final: null, error: null, audio: null, sentSeconds: 0 };

// Streaming resampler: box-filter (anti-aliasing for downsampling) then pick samples at the output rate.
class Resampler {
  constructor(inRate, outRate) { this.step = inRate / outRate; this.width = Math.max(1, Math.round(this.step));
                                 this.pos = 0; this.tail = new Float32Array(0); }
  push(input) {
    const x = new Float32Array(this.tail.length + input.length);
    x.set(this.tail); x.set(input, this.tail.length);
    const out = [];
    while (this.pos + this.width <= x.length) {
      const i = Math.floor(this.pos);
      let sum = 0;
      for (let k = 0; k < this.width; k++) sum += x[i + k];
      out.push(sum / this.width);
      this.pos += this.step;
    }
    const used = Math.min(Math.floor(this.pos), x.length);
    this.tail = x.slice(used); this.pos -= used;
    return Float32Array.from(out);
  }
}

function seconds(x) { return x === null || x === undefined ? "–" : `${x.toFixed(1)} s`; }

function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  const index = (sorted.length - 1) * q, lo = Math.floor(index), hi = Math.ceil(index);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (index - lo);
}

function render() {
  $("committed").textContent = state.committed.join(" ");
  $("partial").textContent = state.partial;
  const lat = state.latencies;
  $("lat-last").textContent = lat.length ? seconds(lat[lat.length - 1]) : "–";
  $("lat-mean").textContent = lat.length ? seconds(lat.reduce((a, b) => a + b, 0) / lat.length) : "–";
  $("lat-p90").textContent = lat.length ? seconds(percentile(lat, 0.9)) : "–";
}

function setStatus(text, live = false) { $("status").textContent = text; $("status").className = live ? "live" : ""; }

function connect() {
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = (event) => {
    state.ready = false;
    if (state.running) stopAudio();
    if (event.code !== 1000) setStatus(`disconnected (${event.code} ${event.reason || ""})`);
    $("start").disabled = true; $("stop").disabled = true;
    setTimeout(connect, 1000); // a fresh session for the next recording
  };
}

function onMessage(message) {
  if (message.type === "ready") {
    state.ready = true; $("model").textContent = message.model || "?";
    $("start").disabled = state.running;
    if (!state.running && !state.final) setStatus("ready");
  } else if (message.type === "update") {
    for (const word of message.committed) { state.committed.push(word.text); state.latencies.push(word.latency); }
    state.partial = message.partial;
    $("audio").textContent = seconds(message.audio_seconds);
    $("buffer").textContent = seconds(message.buffer_seconds);
    $("compute").textContent = seconds(message.compute_seconds);
    render();
  } else if (message.type === "final") {
    state.final = message; state.partial = ""; render();
    setStatus(`done: ${message.audio_seconds.toFixed(1)} s of audio, real-time factor ${message.rtf.toFixed(2)}`);
  } else if (message.type === "error") {
    state.error = message.message; setStatus(`error: ${message.message}`);
  }
}

async function openAudio() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  let context;
  try { context = new AudioContext({ sampleRate: TARGET_RATE }); } catch (_) { context = new AudioContext(); }
  const source = context.createMediaStreamSource(stream);
  const resampler = new Resampler(context.sampleRate, TARGET_RATE);
  const queue = [];
  let queued = 0;
  const onSamples = (samples) => {
    const pcm = resampler.push(samples);
    queue.push(pcm); queued += pcm.length;
    if (queued >= SEND_EVERY * TARGET_RATE) flush();
  };
  const flush = () => {
    if (!queued || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    const out = new Float32Array(queued);
    let offset = 0;
    for (const part of queue) { out.set(part, offset); offset += part.length; }
    queue.length = 0; queued = 0;
    state.socket.send(out.buffer);
    state.sentSeconds += out.length / TARGET_RATE;
  };
  let node;
  if (context.audioWorklet) {
    await context.audioWorklet.addModule("pcm-worklet.js");
    node = new AudioWorkletNode(context, "pcm-capture");
    node.port.onmessage = (event) => onSamples(event.data);
  } else { // older browsers
    node = context.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (event) => onSamples(event.inputBuffer.getChannelData(0));
  }
  const mute = context.createGain();
  mute.gain.value = 0; // keep the graph pulled without playing the microphone back
  source.connect(node); node.connect(mute); mute.connect(context.destination);
  await context.resume();
  return { stream, context, flush };
}

function stopAudio() {
  if (!state.audio) return;
  state.audio.flush();
  state.audio.stream.getTracks().forEach((track) => track.stop());
  state.audio.context.close();
  state.audio = null; state.running = false;
}

async function start() {
  if (!state.ready || state.running) return;
  state.running = true; state.committed = []; state.partial = ""; state.latencies = []; state.final = null;
  state.error = null; state.sentSeconds = 0; render();
  $("start").disabled = true; $("stop").disabled = false;
  try {
    state.socket.send(JSON.stringify({ type: "start", sample_rate: TARGET_RATE, format: "f32" }));
    state.audio = await openAudio();
    setStatus("listening", true);
  } catch (error) {
    state.running = false; state.error = String(error); setStatus(`microphone unavailable: ${error}`);
    $("start").disabled = false; $("stop").disabled = true;
  }
}

function stop() {
  if (!state.running) return;
  stopAudio();
  $("stop").disabled = true;
  setStatus("finishing…");
  state.socket.send(JSON.stringify({ type: "stop" }));
}

$("start").onclick = start;
$("stop").onclick = stop;
window.speechkd = { start, stop, state }; // for the browser test
connect();
