// The console's call page: a WebRTC test call to an agent, with live transcript and levels.
//
// The browser offers its microphone and a "control" data channel to POST /v1/webrtc/offer
// (ICE gathered first: the bridge does not trickle), plays the agent's audio, and follows the
// call's journal live over Server-Sent Events (/v1/calls/{id}/live). Turn latency is measured
// here, where the caller is: from the last moment the microphone carried voice to the first
// moment agent voice played back — what a caller perceives, network and jitter buffer included.

import { apiUrl, el, EventStream, getJSON, offsetElement, postJSON, replaceChildren } from "./common.js";

const VOICE_LEVEL = 0.02; // RMS (full scale 1.0) above which a 20 ms window counts as voice
const AGENT_GAP_MS = 300; // agent voice after this much quiet starts a new agent utterance
const ICE_GATHER_MS = 5000;

const $ = (id) => document.getElementById(id);
const form = $("call-form");
const agentSelect = $("agent");
const callButton = $("call-button");
const hangupButton = $("hangup-button");
const muteButton = $("mute-button");
const stateText = $("call-state");
const errorText = $("call-error");
const transcript = $("transcript");
const audio = $("agent-audio");

/** What a test (or a curious user in the devtools) can read of the call. */
const stats = {
  state: "idle",
  callId: null,
  micVoicedMs: 0,
  agentVoicedMs: 0,
  latencies: [], // { ms, at } per agent reply, in order
  turns: 0,
  events: [],
};
window.callbridgeConsole = stats;

let call = null; // { pc, channel, stream, source, meters, timer }

function setState(state) {
  stats.state = state;
  stateText.textContent = state;
  const live = state === "connecting" || state === "live";
  callButton.disabled = live;
  agentSelect.disabled = live;
  hangupButton.disabled = !live;
  muteButton.disabled = state !== "live";
}

function showError(message) {
  errorText.textContent = message || "";
}

function parseContext(text) {
  const context = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`context line "${line}" is not name=value`);
    context[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return context;
}

async function loadAgents() {
  try {
    const { agents } = await getJSON(apiUrl("/v1/agents"));
    const params = new URLSearchParams(location.search);
    const wanted = params.get("agent");
    replaceChildren(
      agentSelect,
      agents.map((agent) =>
        el(
          "option",
          { value: agent.name, selected: wanted ? agent.name === wanted : agent.default },
          `${agent.name} (${agent.engine})`,
        ),
      ),
    );
  } catch (error) {
    replaceChildren(agentSelect, el("option", { value: "" }, "default agent"));
    showError(`Could not list agents: ${error.message}`);
  }
}

function buildKeypad() {
  const keypad = $("keypad");
  for (const key of "123456789*0#") {
    keypad.append(
      el("button", { type: "button", class: "secondary", "aria-label": `key ${key}`, onclick: () => sendDigit(key) }, key),
    );
  }
}

function sendDigit(digit) {
  if (call && call.channel.readyState === "open") {
    call.channel.send(JSON.stringify({ type: "dtmf", digit }));
    marker(`key ${digit} pressed`);
  }
}

// --- levels and latency ----------------------------------------------------------------------

function level(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (const x of buffer) sum += x * x;
  return Math.sqrt(sum / buffer.length);
}

function startMeters(micStream, agentStream) {
  const context = new AudioContext();
  const mic = context.createAnalyser();
  const agent = context.createAnalyser();
  mic.fftSize = agent.fftSize = 1024;
  context.createMediaStreamSource(micStream).connect(mic);
  context.createMediaStreamSource(agentStream).connect(agent);
  const buffer = new Float32Array(mic.fftSize);
  let micVoiceEnd = null; // when the caller last made a sound
  let agentVoiceEnd = null; // when the agent last made a sound
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const step = now - last;
    last = now;
    const micLevel = call && call.muted ? 0 : level(mic, buffer);
    const agentLevel = level(agent, buffer);
    $("mic-level").value = Math.min(1, micLevel * 4);
    $("agent-level").value = Math.min(1, agentLevel * 4);
    if (micLevel >= VOICE_LEVEL) {
      micVoiceEnd = now;
      stats.micVoicedMs += step;
    }
    if (agentLevel >= VOICE_LEVEL) {
      const fresh = agentVoiceEnd === null || now - agentVoiceEnd > AGENT_GAP_MS;
      if (fresh && micVoiceEnd !== null && (agentVoiceEnd === null || micVoiceEnd > agentVoiceEnd)) {
        stats.latencies.push({ ms: Math.round(now - micVoiceEnd), at: now, turn: null });
        showLatency();
      }
      agentVoiceEnd = now;
      stats.agentVoicedMs += step;
    }
  }, 20);
  return { context, timer };
}

function showLatency() {
  const values = stats.latencies.map((l) => l.ms).sort((a, b) => a - b);
  if (!values.length) return;
  const median = values[Math.floor(values.length / 2)];
  $("latency-summary").textContent = `reply latency: median ${median} ms over ${values.length} turn${values.length > 1 ? "s" : ""}`;
}

// --- the live transcript ---------------------------------------------------------------------

function addTurn(turn) {
  $("transcript-empty").hidden = true;
  stats.turns += 1;
  const user = turn.role === "user";
  const meta = [
    el("span", { class: "turn-role" }, user ? "Caller" : "Agent"),
    offsetElement(turn.time_in_call_secs),
  ];
  if (turn.interrupted) meta.push(el("span", { class: "interrupted-mark" }, "interrupted"));
  if (!user) {
    const latency = stats.latencies.find((l) => l.turn === null);
    if (latency) {
      latency.turn = stats.turns;
      meta.push(el("span", { class: "latency", title: "from the end of your speech to the agent's first sound" }, `${latency.ms} ms`));
    }
  }
  transcript.append(
    el(
      "li",
      { class: ["turn", user ? "turn-user" : "turn-agent", turn.interrupted && "interrupted"] },
      el("div", { class: "turn-meta" }, meta),
      el("p", { class: "turn-text" }, turn.text),
    ),
  );
  transcript.lastElementChild.scrollIntoView({ block: "nearest" });
}

function marker(text, time) {
  $("transcript-empty").hidden = true;
  transcript.append(
    el("li", { class: "marker" }, time === undefined ? "" : [offsetElement(time), " "], text),
  );
}

function onJournalEvent(event) {
  stats.events.push(event.kind);
  if (event.kind === "barge_in") {
    const heard = event.data && event.data.heard_ms;
    marker(`↯ you interrupted the agent${heard === undefined ? "" : ` after ${Math.round(heard)} ms`}`, event.time_in_call_secs);
  } else if (event.kind === "tool_call" || event.kind === "protocol_error" || event.kind === "error") {
    marker(`${event.kind}: ${JSON.stringify(event.data)}`, event.time_in_call_secs);
  }
}

function follow(callId) {
  const source = new EventStream(apiUrl(`/v1/calls/${callId}/live`));
  source.addEventListener("turn", (e) => addTurn(JSON.parse(e.data)));
  source.addEventListener("event", (e) => onJournalEvent(JSON.parse(e.data)));
  source.addEventListener("tool_call", (e) => {
    const tool = JSON.parse(e.data);
    marker(`tool ${tool.name} ${tool.ok ? "answered" : "failed"} in ${Math.round(tool.duration_ms)} ms`, tool.time_in_call_secs);
  });
  source.addEventListener("status", (e) => {
    const status = JSON.parse(e.data);
    if (status.final) {
      source.close();
      marker(`call ${status.status}${status.end_reason ? `: ${status.end_reason}` : ""}`);
      finish();
    }
  });
  source.onerror = () => {
    if (source.readyState === EventStream.CLOSED && stats.state === "live") {
      showError("The live transcript was cut off; the call's page has the full journal.");
    }
  };
  return source;
}

// --- the call --------------------------------------------------------------------------------

function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHER_MS); // use what was gathered so far
  });
}

async function start() {
  showError("");
  let context;
  try {
    context = parseContext($("context").value);
  } catch (error) {
    showError(error.message);
    return;
  }
  setState("connecting");
  replaceChildren(transcript);
  $("transcript-empty").hidden = false;
  $("latency-summary").textContent = "";
  Object.assign(stats, { callId: null, micVoicedMs: 0, agentVoicedMs: 0, latencies: [], turns: 0, events: [] });
  try {
    const processing = $("processing").checked;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: processing, noiseSuppression: processing, autoGainControl: processing },
    });
    const { ice_servers: iceServers } = await getJSON(apiUrl("/v1/webrtc/config"));
    const pc = new RTCPeerConnection({ iceServers });
    call = { pc, stream, muted: false, source: null, meters: null };
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    call.channel = pc.createDataChannel("control");
    call.channel.onmessage = (e) => {
      const message = JSON.parse(e.data);
      if (message.type === "hangup") marker("the agent hung up");
    };
    const agentStream = new MediaStream();
    pc.ontrack = (e) => {
      agentStream.addTrack(e.track);
      audio.srcObject = agentStream;
      audio.play().catch(() => showError("Press Call again to allow audio playback."));
      call.meters = startMeters(stream, agentStream);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") setState("live");
      if (pc.connectionState === "failed") {
        showError("The connection to callbridge failed (check ICE servers: CALLBRIDGE_ICE_SERVERS).");
        finish();
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc);
    const answer = await postJSON(apiUrl("/v1/webrtc/offer"), {
      sdp: pc.localDescription.sdp,
      type: "offer",
      agent: agentSelect.value || null,
      context,
    });
    stats.callId = answer.call_id;
    replaceChildren($("call-link"), "· ", el("a", { href: `call.html?id=${encodeURIComponent(answer.call_id)}` }, "journal"));
    call.source = follow(answer.call_id);
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  } catch (error) {
    showError(`Could not call: ${error.message}`);
    finish();
  }
}

function hangUp() {
  if (call && call.channel && call.channel.readyState === "open") {
    call.channel.send(JSON.stringify({ type: "hangup" }));
  }
  setTimeout(finish, 300); // let the hang-up leave before the connection closes
}

function finish() {
  if (!call) {
    setState(stats.state === "connecting" ? "idle" : "ended");
    return;
  }
  const ending = call;
  call = null;
  if (ending.meters) {
    clearInterval(ending.meters.timer);
    ending.meters.context.close();
  }
  for (const track of ending.stream.getTracks()) track.stop();
  ending.pc.close();
  // the live stream ends by itself with the final status; keep it open until then
  setState("ended");
  $("mic-level").value = 0;
  $("agent-level").value = 0;
}

function toggleMute() {
  if (!call) return;
  call.muted = !call.muted;
  for (const track of call.stream.getAudioTracks()) track.enabled = !call.muted;
  muteButton.setAttribute("aria-pressed", String(call.muted));
  muteButton.textContent = call.muted ? "Unmute" : "Mute";
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
hangupButton.addEventListener("click", hangUp);
muteButton.addEventListener("click", toggleMute);
window.addEventListener("pagehide", () => call && hangUp());
$("processing").checked = new URLSearchParams(location.search).get("processing") !== "off";
buildKeypad();
setState("idle");
loadAgents();
