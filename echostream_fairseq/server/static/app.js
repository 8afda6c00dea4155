// The EchoStream page: microphone (or a wav file) -> the server -> live text and speech.
// Protocol: docs/server.md. Everything here is served by echostream-serve itself (no CDN).
'use strict';
const RATE = 16000;
const $ = (id) => document.getElementById(id);
const page = { ws: null, sentMs: 0, speechSamples: 0, player: null, playAt: 0, stopSource: null };

function setStatus(text, state) {
  $('status').textContent = text;
  if (state) document.body.dataset.state = state;  // tests wait on it
}

function connect(onReady) {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  page.ws = ws; page.sentMs = 0; page.speechSamples = 0;
  ws.onopen = () => ws.send(JSON.stringify({ type: 'start', sample_rate: RATE }));
  ws.onmessage = (message) => {
    if (message.data instanceof ArrayBuffer) { play(new Int16Array(message.data)); return; }
    const item = JSON.parse(message.data);
    if (item.type === 'ready') { page.speechRate = item.speech_sample_rate; onReady(); }
    else if (item.type === 'asr') $('source').textContent += item.text + ' ';
    else if (item.type === 'text') {
      $('target').textContent += item.text + ' ';
      $('latency').textContent = `${Math.max(0, page.sentMs - item.source_ms).toFixed(0)} ms`;
    } else if (item.type === 'sentence') {
      const li = document.createElement('li');
      li.textContent = item.target_text;
      $('sentences').appendChild(li);
    } else if (item.type === 'end') { setStatus('done', 'done'); ws.close(); }
    else if (item.type === 'error') setStatus(`error: ${item.message}`, 'error');
  };
  ws.onclose = () => { $('stop').disabled = true; $('mic').disabled = false; };
  ws.onerror = () => setStatus('connection failed', 'error');
}

function sendPcm(int16) {
  if (page.ws && page.ws.readyState === WebSocket.OPEN) {
    page.ws.send(int16.buffer);
    page.sentMs += 1000 * int16.length / RATE;
  }
}

function end() {
  if (page.stopSource) page.stopSource();
  page.stopSource = null;
  if (page.ws && page.ws.readyState === WebSocket.OPEN) page.ws.send(JSON.stringify({ type: 'end' }));
  setStatus('finishing', 'finishing');
}

function play(int16) {  // the translated speech, scheduled back to back as it arrives
  page.speechSamples += int16.length;
  $('speech').textContent = `${(page.speechSamples / page.speechRate).toFixed(1)} s`;
  if (!page.player) page.player = new AudioContext();
  const buffer = page.player.createBuffer(1, int16.length, page.speechRate);
  const data = buffer.getChannelData(0);
  for (let i = 0; i < int16.length; i++) data[i] = int16[i] / 32768;
  const source = page.player.createBufferSource();
  source.buffer = buffer; source.connect(page.player.destination);
  page.playAt = Math.max(page.playAt, page.player.currentTime);
  source.start(page.playAt);
  page.playAt += buffer.duration;
}

async function startMicrophone(seconds) {
  const media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = new AudioContext();
  await context.audioWorklet.addModule('pcm-worklet.js');
  const input = context.createMediaStreamSource(media);
  const node = new AudioWorkletNode(context, 'pcm-downsampler');
  node.port.onmessage = (message) => sendPcm(new Int16Array(message.data));
  input.connect(node);
  page.stopSource = () => { media.getTracks().forEach((t) => t.stop()); context.close(); };
  setStatus('listening', 'streaming');
  if (seconds) setTimeout(end, 1000 * seconds);  // ?seconds=N: stop by itself (tests)
}

function wavPcm(bytes) {  // a 16-bit PCM wav at 16 kHz, its samples as they are (no resampling)
  const view = new DataView(bytes);
  let offset = 12, rate = 0, channels = 1, bits = 0;
  while (offset + 8 <= view.byteLength) {
    const id = String.fromCharCode(...new Uint8Array(bytes, offset, 4));
    const size = view.getUint32(offset + 4, true);
    if (id === 'fmt ') {
      channels = view.getUint16(offset + 10, true); rate = view.getUint32(offset + 12, true);
      bits = view.getUint16(offset + 22, true);
    } else if (id === 'data') {
      if (bits !== 16 || rate !== RATE) throw new Error(`need 16-bit ${RATE} Hz wav, got ${bits}-bit ${rate} Hz`);
      const all = new Int16Array(bytes.slice(offset + 8, offset + 8 + size));
      if (channels === 1) return all;
      const mono = new Int16Array(all.length / channels);
      for (let i = 0; i < mono.length; i++) mono[i] = all[i * channels];
      return mono;
    }
    offset += 8 + size + (size % 2);
  }
  throw new Error('no audio data in this wav');
}

async function sendFile(file) {
  const pcm = wavPcm(await file.arrayBuffer());
  setStatus(`sending ${file.name}`, 'streaming');
  const piece = RATE * 320 / 1000;  // 320 ms at real-time pace, as a live source
  let start = 0, timer = null;
  const next = () => {
    if (start >= pcm.length) { end(); return; }
    sendPcm(pcm.slice(start, start + piece)); start += piece;
    timer = setTimeout(next, 320);
  };
  page.stopSource = () => clearTimeout(timer);
  next();
}

function reset() {
  for (const id of ['source', 'target', 'sentences']) $(id).textContent = '';
  $('latency').textContent = '-';
}

$('mic').onclick = () => {
  reset(); $('mic').disabled = true; $('stop').disabled = false;
  const seconds = Number(new URLSearchParams(location.search).get('seconds')) || 0;
  connect(() => startMicrophone(seconds).catch((e) => setStatus(`microphone: ${e.message}`, 'error')));
};
$('file').onchange = () => {
  const file = $('file').files[0];
  if (!file) return;
  reset(); $('stop').disabled = false;
  connect(() => sendFile(file).catch((e) => { setStatus(e.message, 'error'); end(); }));
};
$('stop').onclick = end;
setStatus('ready: start the microphone or send a wav file', 'idle');
