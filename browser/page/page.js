// The /browser page: picks the backend (WebGPU when the browser has it, else WebAssembly), loads the
// model in a Web Worker (worker.js), asks the app for the passages and the pipeline's prompt
// (POST /browser/api/context) and shows the answer as the worker generates it.
// Everything it loads comes from this app; it says why when it cannot run. The chat's loop guard
// (guard.js) stops an answer that starts repeating itself.

import { LoopGuard } from "./guard.js";

const LOOPED = "[The model started repeating itself and was stopped.]";

const $ = (id) => document.getElementById(id);
const state = { worker: null, ready: false, busy: false, backend: null, threads: 1, context: null, result: null,
  status: null, load: null, tokens: [] };
window.lrc = state; // for the tests and the benchmark

function setState(name, text = name) {
  $("state").dataset.state = name;
  $("state").textContent = text;
}

function note(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("notes").append(li);
}

function problem(message, hint = "") {
  $("problem").hidden = false;
  $("problem-message").textContent = message;
  $("problem-hint").textContent = hint;
  setState("error", "cannot run");
}

function updateButtons() {
  $("ask-button").disabled = !state.ready || state.busy;
  $("stop-button").disabled = !state.busy;
}

// ----------------------------------------------------------------------------- what this browser can do
async function hasWebGPU() {
  if (!("gpu" in navigator) || !navigator.gpu) return { ok: false, why: "this browser has no WebGPU (navigator.gpu)" };
  try {
    const adapter = await navigator.gpu.requestAdapter();
    return adapter ? { ok: true } : { ok: false, why: "WebGPU is there but offers no GPU adapter" };
  } catch (err) {
    return { ok: false, why: `WebGPU failed: ${err.message || err}` };
  }
}

async function chooseBackend() {
  const params = new URLSearchParams(location.search);
  const wanted = params.get("backend");
  const gpu = await hasWebGPU();
  const wasm = typeof WebAssembly === "object";
  const isolatedThreads = self.crossOriginIsolated && typeof SharedArrayBuffer === "function";
  if (!gpu.ok && !wasm) {
    problem("This browser has neither WebGPU nor WebAssembly: the model cannot run in it.",
      "Use a current Chrome, Edge, Firefox or Safari — or the chat (/), which answers with the in-process engine.");
    return null;
  }
  let backend = gpu.ok && wanted !== "wasm" ? "webgpu" : "wasm";
  if (wanted === "webgpu" && !gpu.ok) note(`WebGPU was asked for, but ${gpu.why}.`);
  if (backend === "wasm" && !wasm) backend = "webgpu";
  const cores = navigator.hardwareConcurrency || 1;
  let threads = isolatedThreads ? Math.max(1, Math.min(4, cores)) : 1;
  if (params.get("threads")) threads = Math.max(1, Math.min(isolatedThreads ? 16 : 1, Number(params.get("threads")) || 1));
  state.backend = backend;
  state.threads = threads;
  if (backend === "webgpu") {
    $("backend").textContent = "WebGPU (ONNX Runtime Web's WebGPU execution provider)";
  } else {
    $("backend").textContent = `WebAssembly (${threads} thread${threads > 1 ? "s" : ""})`;
    if (!gpu.ok && wanted !== "wasm") note(`Using WebAssembly: ${gpu.why}.`);
  }
  if (!isolatedThreads) {
    note("No SharedArrayBuffer (the page is not cross-origin isolated): WebAssembly runs on one thread, which is slower.");
  }
  return backend;
}

// ----------------------------------------------------------------------------- the model
async function fetchStatus() {
  const response = await fetch("/browser/api/status", { cache: "no-store" });
  return response.json();
}

function startWorker(status) {
  const worker = new Worker("/browser/page/worker.js", { type: "module" });
  state.worker = worker;
  worker.onerror = (event) => {
    problem(`The page's worker failed: ${event.message || "it could not start"}.`, "Reload the page; the chat (/) is not affected.");
    state.busy = false;
    updateButtons();
  };
  worker.onmessage = (event) => onWorker(event.data);
  const files = status.model.files;
  $("model-state").textContent = "loading…";
  $("load-progress").hidden = false;
  setState("loading", "loading the model");
  state.loadStarted = performance.now();
  state.progress = Object.fromEntries(files.map((f) => [f.name, { loaded: 0, total: f.size }]));
  worker.postMessage({ type: "load", backend: state.backend, threads: state.threads, files, config: status.model.config });
}

function onWorker(msg) {
  if (msg.type === "progress") {
    state.progress[msg.name] = { loaded: msg.loaded, total: msg.total };
    const all = Object.values(state.progress);
    const loaded = all.reduce((s, p) => s + p.loaded, 0);
    const total = all.reduce((s, p) => s + p.total, 0) || 1;
    $("load-progress").value = loaded / total;
    $("model-state").textContent = `loading… ${(loaded / 1e6).toFixed(0)} of ${(total / 1e6).toFixed(0)} MB`;
  } else if (msg.type === "loaded") {
    state.ready = true;
    state.load = msg;
    if (msg.backend === "wasm" && msg.threads !== state.threads) {
      state.threads = msg.threads;
      $("backend").textContent = `WebAssembly (${msg.threads} thread${msg.threads > 1 ? "s" : ""})`;
      note("The worker is not cross-origin isolated (no SharedArrayBuffer): WebAssembly runs on one thread.");
    }
    $("load-progress").hidden = true;
    $("model-state").textContent = `${state.status.model.name} loaded in ${msg.seconds.toFixed(1)} s` +
      (msg.cached ? " from this browser's cache" : " (kept in this browser's cache for next time)");
    setState("ready");
    updateButtons();
  } else if (msg.type === "token") {
    if (state.looped) return; // the stop is on its way to the worker
    state.tokens.push(msg.id);
    if (state.guard.feed(msg.text)) {
      state.looped = true;
      state.worker.postMessage({ type: "stop" });
      $("answer").textContent = state.guard.kept;
    } else {
      $("answer").textContent += msg.text;
    }
    showStats({ ttft: msg.ttft, count: msg.count, running: true });
  } else if (msg.type === "done") {
    state.result = { ...msg, looped: state.looped };
    const answer = state.looped ? state.guard.kept : msg.text || $("answer").textContent;
    $("answer").textContent = state.looped ? `${answer}\n\n${LOOPED}` : answer;
    showStats(state.result);
    checkAnswer(answer, msg.reason !== "stop").finally(() => {
      state.busy = false;
      setState("done", msg.reason === "stopped" ? "stopped" : "done");
      updateButtons();
    });
  } else if (msg.type === "error") {
    state.busy = false;
    if (msg.stage === "load") $("model-state").textContent = "not loaded";
    problem(msg.message, msg.hint);
    updateButtons();
  }
}

function showStats(r) {
  const parts = [];
  if (r.ttft != null) parts.push(`first token after ${r.ttft.toFixed(2)} s`);
  if (r.running) parts.push(`${r.count} tokens`);
  else {
    parts.push(`${r.ids.length} tokens`);
    if (r.decodeTps) parts.push(`${r.decodeTps.toFixed(1)} tokens/s`);
    parts.push(`prompt ${r.promptTokens} tokens`);
    if (r.reason === "stop") parts.push("ended by the model");
    else if (r.reason === "length") parts.push("reached the answer length limit");
    else if (r.looped) parts.push("stopped: the model started repeating itself");
    else parts.push("stopped");
  }
  parts.push(state.backend === "webgpu" ? "WebGPU" : `WebAssembly, ${state.threads} thread(s)`);
  $("stats").textContent = parts.join(" · ");
}

// ----------------------------------------------------------------------------- a question
function showQuote(quote) {
  // what the documents say, as the chat shows it before the model's answer: sentence — source
  const lines = $("quote-lines");
  lines.replaceChildren();
  for (const q of quote || []) {
    const line = document.createElement("blockquote");
    const cite = document.createElement("cite");
    cite.textContent = q.citation;
    const plain = q.text.replace(/\*\*(.+?)\*\*/g, "$1").replace(/__(.+?)__/g, "$1");  // Markdown bold, as the chat renders it
    line.append(document.createTextNode(plain + " — "), cite);
    lines.append(line);
  }
  $("quote").hidden = !(quote && quote.length);
}

// The chat's check of every sentence against the passages (POST /browser/api/check): each sentence no
// passage supports gets a ⚠️, and a last line says how many.
async function checkAnswer(answer, cut) {
  if (!answer.trim() || !state.context?.answerable) return;
  setState("checking", "checking the answer against the passages");
  try {
    const response = await fetch("/browser/api/check", { method: "POST", headers: state.request.headers,
      body: JSON.stringify({ ...state.request.body, answer, cut }) });
    const checked = await response.json();
    if (!response.ok) throw new Error(checked.error?.message || `HTTP ${response.status}`);
    state.checked = checked;
    // lines in Markdown italics in the chat (the closing line; "the model's own answer is left out"): plain here
    const text = checked.text.replace(/^\*([^*\n]+)\*$/gmu, "$1");
    $("answer").textContent = state.looped ? `${text}\n\n${LOOPED}` : text;
  } catch (err) {
    note(`The answer could not be checked against the passages: ${err.message || err}`);
  }
}

function showPassages(passages) {
  const list = $("passages");
  list.replaceChildren();
  for (const p of passages || []) {
    const li = document.createElement("li");
    const source = document.createElement("div");
    source.className = "source";
    source.textContent = p.file + (p.page ? `, page ${p.page}` : "") + (p.heading ? ` — ${p.heading}` : "");
    const text = document.createElement("div");
    text.textContent = p.text.length > 400 ? p.text.slice(0, 400) + " …" : p.text;
    li.append(source, text);
    list.append(li);
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || !state.ready || state.busy) return;
  state.busy = true;
  state.tokens = [];
  state.result = null;
  state.guard = new LoopGuard();
  state.looped = false;
  updateButtons();
  $("problem").hidden = true;
  $("answer").textContent = "";
  $("stats").textContent = "";
  showQuote([]);
  setState("retrieving", "finding passages");
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) {
    headers.Authorization = `Bearer ${key}`;
    sessionStorage.setItem("lrc-key", key);
  }
  const body = { question };
  if ($("max-tokens").value) body.max_new_tokens = Number($("max-tokens").value);
  state.request = { headers, body };
  state.checked = null;
  let context;
  try {
    const response = await fetch("/browser/api/context", { method: "POST", headers, body: JSON.stringify(body) });
    context = await response.json();
    if (!response.ok) throw Object.assign(new Error(context.error?.message || `HTTP ${response.status}`), { hint: context.error?.hint });
  } catch (err) {
    state.busy = false;
    updateButtons();
    problem(err.message, err.hint || "");
    return;
  }
  state.context = context;
  showQuote(context.quote);
  showPassages(context.passages);
  for (const text of context.notes || []) note(text);
  if (!context.answerable) {
    $("answer").textContent = context.message;
    state.busy = false;
    setState("done", "answered without the model");
    updateButtons();
    return;
  }
  if (context.message) note(context.message);
  const penalty = $("penalty").value ? Number($("penalty").value) : context.repetition_penalty;
  setState("generating");
  state.worker.postMessage({ type: "generate", ids: context.input_ids, maxNewTokens: context.max_new_tokens,
    penalty, eos: context.eos });
}

async function main() {
  setState("checking");
  $("ask").addEventListener("submit", ask);
  $("stop-button").addEventListener("click", () => state.worker && state.worker.postMessage({ type: "stop" }));
  $("api-key").value = sessionStorage.getItem("lrc-key") || "";
  let status;
  try {
    status = await fetchStatus();
  } catch (err) {
    problem(`The app did not answer (${err.message || err}).`, "Is `make run` still running?");
    return;
  }
  state.status = status;
  $("key-row").hidden = !status.key_required;
  const backend = await chooseBackend();
  if (!backend) return;
  const missing = [status.runtime, status.model].filter((part) => !part.ready).map((part) => part.problem);
  if (missing.length) {
    $("model-state").textContent = status.model.ready ? "not loaded" : "not built";
    problem(missing.map((p) => p.message).join(" "), missing.map((p) => p.hint).join(" "));
    return;
  }
  if (status.model.note) note(status.model.note);
  startWorker(status);
}

main();
