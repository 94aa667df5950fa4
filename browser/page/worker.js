// The page's model, in a Web Worker: ONNX Runtime Web runs SmolLM2 (the project's int8 build) and this
// file's loop generates greedily with a key/value cache, so the page stays responsive while it computes.
//
// Messages in:  {type: "load", backend: "webgpu"|"wasm", threads, files: [{name, etag}], config}
//               {type: "generate", ids, maxNewTokens, penalty, eos}   {type: "stop"}
// Messages out: {type: "progress", name, loaded, total}  {type: "loaded", backend, threads, seconds, cached}
//               {type: "token", id, text, count, ttft}    {type: "done", reason, ids, text, ttft, seconds, decodeTps}
//               {type: "error", message, hint}
//
// The model (an ONNX Runtime GenAI build: GroupQueryAttention) takes input_ids, attention_mask (ones, as
// long as everything seen so far) and past_key_values.N.key/value ([1, kv_heads, past, head_size]; empty
// at first) and returns the last position's logits and present.N.key/value, fed back as the next past.
// Greedy with the same repetition penalty as the in-process engine (onnxruntime-genai: every token of the
// sequence so far, prompt included; a positive logit divided by it, a negative one multiplied).
import { Vocabulary } from "./tokens.js";

const MODEL_BASE = "/browser/model/";
const RUNTIME_BASE = "/browser/ort/";
const CACHE_NAME = "lrc-browser-model";

let ort = null;
let session = null;
let vocab = null;
let config = null;
let backend = "wasm";
let stopRequested = false;

// Lets queued messages (a "stop") in between two steps: session.run can finish without ever giving
// the worker's task queue a turn. A MessageChannel round trip is a task, without setTimeout's 4 ms clamp.
const tick = new MessageChannel();
function nextTask() {
  return new Promise((resolve) => {
    tick.port1.onmessage = () => resolve();
    tick.port2.postMessage(null);
  });
}

function post(message) {
  self.postMessage(message);
}

class PageError extends Error {
  constructor(message, hint = "") {
    super(message);
    this.hint = hint;
  }
}

function readable(err) {
  if (err instanceof PageError) return { message: err.message, hint: err.hint };
  const text = String(err?.message || err);
  if (/out of memory|allocation failed|OOM|could not allocate|Cannot enlarge memory/i.test(text)) {
    return {
      message: "The browser ran out of memory for the model (it needs about 700 MB: the weights and their working copy).",
      hint: "Close other tabs or programs and reload; the chat itself is not affected.",
    };
  }
  return { message: `The model could not run in this browser: ${text}`, hint: "The chat (/) still answers with the in-process engine." };
}

// A model file: from the Cache API when this version is there, else from the app (then kept there, in
// 64 MB parts: Chromium refuses one entry of the 540 MB weights, but takes them in parts).
const PART = 64 << 20;

async function openCache() {
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null; // not a secure context: the browser's HTTP cache (ETag) is all there is
  }
}

async function fromCache(cache, url, file) {
  const head = await cache.match(url + "?parts");
  if (!head || head.headers.get("x-lrc-version") !== file.etag) return null;
  const parts = Number(head.headers.get("x-lrc-parts"));
  const bytes = new Uint8Array(Number(head.headers.get("x-lrc-size")));
  let at = 0;
  for (let i = 0; i < parts; i++) {
    const part = await cache.match(`${url}?part=${i}`);
    if (!part) return null;
    const chunk = new Uint8Array(await part.arrayBuffer());
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return at === bytes.length ? bytes : null;
}

async function keep(cache, url, file, bytes) {
  try {
    await cache.delete(url + "?parts");
    let parts = 0;
    for (let at = 0; at < bytes.length; at += PART, parts++) {
      await cache.put(`${url}?part=${parts}`, new Response(bytes.slice(at, at + PART)));
    }
    const headers = { "x-lrc-version": file.etag, "x-lrc-parts": String(parts), "x-lrc-size": String(bytes.length) };
    await cache.put(url + "?parts", new Response("", { headers }));
  } catch { /* no room to keep it: it is fetched again next time */ }
}

async function fileBytes(file) {
  const url = MODEL_BASE + file.name;
  const cache = await openCache();
  if (cache) {
    const bytes = await fromCache(cache, url, file);
    if (bytes) {
      post({ type: "progress", name: file.name, loaded: bytes.length, total: bytes.length, cached: true });
      return { bytes, cached: true };
    }
  }
  const response = await fetch(url);
  if (!response.ok) {
    let problem = { message: `The app did not send ${file.name} (HTTP ${response.status}).`, hint: "" };
    try {
      problem = (await response.json()).error || problem;
    } catch { /* not JSON */ }
    throw new PageError(problem.message, problem.hint);
  }
  const total = Number(response.headers.get("content-length")) || file.size || 0;
  let bytes = new Uint8Array(total);
  let loaded = 0;
  const reader = response.body.getReader();
  let lastReport = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > bytes.length) { // no or a wrong length: grow
      const bigger = new Uint8Array(Math.max(bytes.length * 2, loaded + value.length));
      bigger.set(bytes.subarray(0, loaded));
      bytes = bigger;
    }
    bytes.set(value, loaded);
    loaded += value.length;
    if (loaded - lastReport > (1 << 22) || loaded === total) {
      lastReport = loaded;
      post({ type: "progress", name: file.name, loaded, total });
    }
  }
  bytes = loaded === bytes.length ? bytes : bytes.slice(0, loaded);
  if (cache) await keep(cache, url, file, bytes);
  return { bytes, cached: false };
}

async function load({ backend: wanted, threads: asked, files, config: modelConfig }) {
  let threads = asked;
  const t0 = performance.now();
  config = modelConfig;
  backend = wanted;
  const bundle = backend === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs";
  try {
    ort = await import(RUNTIME_BASE + bundle);
  } catch (err) {
    throw new PageError(`ONNX Runtime Web could not be loaded from the app (${err.message || err}).`,
      "Run `make browser-setup` on the server and reload this page.");
  }
  ort.env.wasm.wasmPaths = new URL(RUNTIME_BASE, self.location.origin).href;
  if (!self.crossOriginIsolated) threads = 1; // no SharedArrayBuffer in this worker: one thread
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  const byName = Object.fromEntries(files.map((f) => [f.name, f]));
  const tokenizer = await fileBytes(byName["tokenizer.json"]);
  vocab = new Vocabulary(JSON.parse(new TextDecoder().decode(tokenizer.bytes)));
  const graph = await fileBytes(byName["model.onnx"]);
  let weights = await fileBytes(byName["model.onnx.data"]);
  const options = {
    executionProviders: [backend],
    graphOptimizationLevel: "all",
    externalData: [{ path: "model.onnx.data", data: weights.bytes }],
  };
  if (backend === "webgpu") {
    // the cache stays on the GPU between steps; only the logits come back
    options.preferredOutputLocation = Object.fromEntries(presentNames().map((n) => [n, "gpu-buffer"]));
  }
  const t1 = performance.now();
  session = await ort.InferenceSession.create(graph.bytes, options);
  const cached = graph.cached && weights.cached;
  weights = null; // the runtime holds its own copy now
  const t2 = performance.now();
  return { type: "loaded", backend, threads, seconds: (t2 - t0) / 1000, cached,
    filesSeconds: (t1 - t0) / 1000, sessionSeconds: (t2 - t1) / 1000,
    inputs: session.inputNames.length, version: ort.env.versions?.web || "" };
}

function presentNames() {
  const names = [];
  for (let i = 0; i < config.layers; i++) names.push(`present.${i}.key`, `present.${i}.value`);
  return names;
}

function emptyCache() {
  const past = {};
  const shape = [1, config.kv_heads, 0, config.head_size];
  for (let i = 0; i < config.layers; i++) {
    past[`past_key_values.${i}.key`] = new ort.Tensor("float32", new Float32Array(0), shape);
    past[`past_key_values.${i}.value`] = new ort.Tensor("float32", new Float32Array(0), shape);
  }
  return past;
}

function disposeCache(past) {
  if (backend !== "webgpu") return; // CPU tensors are garbage collected
  for (const tensor of Object.values(past)) {
    if (tensor.location === "gpu-buffer") tensor.dispose();
  }
}

// The greedy choice from the last position's logits, with the repetition penalty over `seen`.
function pick(logits, seen, penalty) {
  const vocabSize = logits.dims[logits.dims.length - 1];
  const data = logits.data;
  const offset = data.length - vocabSize; // the last position (the model returns only that one)
  if (penalty !== 1) {
    for (const id of seen) {
      const v = data[offset + id];
      data[offset + id] = v > 0 ? v / penalty : v * penalty;
    }
  }
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < vocabSize; i++) {
    const v = data[offset + i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

async function generate({ ids, maxNewTokens, penalty = 1, eos = [] }) {
  if (!session) throw new PageError("The model is not loaded yet.", "Wait for it to load, then ask again.");
  stopRequested = false;
  const stream = vocab.stream();
  const seen = new Set(ids);
  const out = [];
  let text = "";
  let past = emptyCache();
  let input = ids;
  let total = 0;
  let reason = "length";
  const t0 = performance.now();
  let tFirst = null;
  let runs = 0;
  while (out.length < maxNewTokens) {
    await nextTask();
    if (stopRequested) {
      reason = "stopped";
      break;
    }
    total += input.length;
    const feeds = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(input, (v) => BigInt(v)), [1, input.length]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]),
      ...past,
    };
    const result = await session.run(feeds);
    runs += 1;
    const next = pick(result.logits, seen, penalty);
    disposeCache(past);
    past = {};
    for (let i = 0; i < config.layers; i++) {
      past[`past_key_values.${i}.key`] = result[`present.${i}.key`];
      past[`past_key_values.${i}.value`] = result[`present.${i}.value`];
    }
    if (tFirst === null) tFirst = performance.now();
    if (eos.includes(next)) {
      reason = "stop";
      break;
    }
    out.push(next);
    seen.add(next);
    const piece = stream.push(next);
    text += piece;
    post({ type: "token", id: next, text: piece, count: out.length, ttft: (tFirst - t0) / 1000 });
    input = [next];
  }
  disposeCache(past);
  text += stream.end();
  const end = performance.now();
  const decodeSeconds = tFirst === null ? 0 : (end - tFirst) / 1000;
  return { type: "done", reason, ids: out, text, ttft: tFirst === null ? null : (tFirst - t0) / 1000,
    seconds: (end - t0) / 1000, promptTokens: ids.length,
    decodeTps: runs > 1 && decodeSeconds > 0 ? (runs - 1) / decodeSeconds : null };
}

self.onmessage = async (event) => {
  const msg = event.data;
  if (msg.type === "stop") {
    stopRequested = true;
    return;
  }
  try {
    if (msg.type === "load") post(await load(msg));
    else if (msg.type === "generate") post(await generate(msg));
  } catch (err) {
    post({ type: "error", stage: msg.type, ...readable(err) });
  }
};
