// geex playground: the coding assistant's four tasks against this server, streamed.
// Plain JS, no build step. Every request streams over fetch; a new keystroke, Esc or a new run
// aborts the one in flight (the server frees its slot at once and counts the cancel).
"use strict";

const $ = (sel) => document.querySelector(sel);
const stat = (id) => document.querySelector(`[data-testid="${id}"]`);
let inflight = null;   // AbortController of the request in flight
let debounce = null;
const DEBOUNCE_MS = 250;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("#key").value.trim();
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

function cancel(why) {
  if (inflight) { inflight.abort(); inflight = null; stat("status").textContent = why || "cancelled"; }
}

// POST `body` to `path` as a stream; `onText(piece)` for each text piece; resolves with the stats.
async function stream(path, body, onText) {
  cancel("superseded");
  const ctl = new AbortController();
  inflight = ctl;
  const started = performance.now();
  let first = null, last = null, usage = null, geex = null, finish = null, result = null;
  stat("status").textContent = "streaming";
  try {
    const resp = await fetch(path, { method: "POST", headers: headers(), signal: ctl.signal,
      body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }) });
    if (!resp.ok) {
      const err = await resp.json().catch(() => ({}));
      stat("status").textContent = `error ${resp.status}: ${(err.error && err.error.message) || resp.statusText}`;
      return null;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).trimEnd();
        buffer = buffer.slice(nl + 1);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const frame = JSON.parse(line.slice(6));
        if (frame.error) { stat("status").textContent = `error: ${frame.error.message}`; continue; }
        for (const choice of frame.choices || []) {
          if (choice.text) {
            if (first === null) first = performance.now();
            last = performance.now();
            onText(choice.text);
          }
          if (choice.finish_reason) finish = choice.finish_reason;
          if (choice.result !== undefined) result = choice.result;
        }
        if (frame.usage) { usage = frame.usage; geex = frame.geex; }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") return null;
    stat("status").textContent = `error: ${e.message}`;
    return null;
  } finally {
    if (inflight === ctl) inflight = null;
  }
  const tokens = usage ? usage.completion_tokens : 0;
  stat("ttft").textContent = first === null ? "–" : (first - started).toFixed(1);
  const span = (last || 0) - (first || 0);
  stat("tps").textContent = tokens > 1 && span > 0 ? ((tokens - 1) / (span / 1000)).toFixed(1) : "–";
  stat("cached").textContent = usage ? usage.prompt_tokens_details.cached_tokens : "–";
  stat("finish").textContent = (geex && geex.finish_detail) || finish || "–";
  stat("status").textContent = "done";
  return { result };
}

// -- Complete: ghost text at the cursor -----------------------------------------------------------
function complete() {
  const ghost = stat("ghost");
  ghost.textContent = "";
  stream("/v1/completions", {
    prompt: $("#prefix").value, suffix: $("#suffix").value, max_tokens: 64, temperature: 0,
    mode: $("#mode").value, language: $("#language").value,
  }, (piece) => { ghost.textContent += piece; });
}

$("#prefix").addEventListener("input", () => {
  cancel("typing");   // each keystroke aborts the request in flight
  stat("ghost").textContent = "";
  clearTimeout(debounce);
  debounce = setTimeout(complete, DEBOUNCE_MS);
});
$("#prefix").addEventListener("keydown", (e) => {
  const ghost = stat("ghost");
  if (e.key === "Tab" && ghost.textContent) {
    e.preventDefault();
    $("#prefix").value += ghost.textContent;
    ghost.textContent = "";
  }
});

// -- Generate, Translate, Explain --------------------------------------------------------------------
const TASKS = {
  generate: () => ["/v1/geex/generate", { description: $("#description").value, language: $("#language").value }],
  translate: () => ["/v1/geex/translate", { code: $("#translate-code").value, src_lang: $("#source").value,
                                            dst_lang: $("#language").value }],
  explain: () => ["/v1/geex/explain", { code: $("#explain-code").value, language: $("#language").value,
                                        style: $("#style").value }],
};

for (const button of document.querySelectorAll("[data-run]")) {
  button.addEventListener("click", async () => {
    const task = button.dataset.run;
    const out = stat(`out-${task}`);
    out.textContent = "";
    const [path, body] = TASKS[task]();
    const done = await stream(path, { ...body, max_tokens: 96, temperature: 0 }, (piece) => { out.textContent += piece; });
    if (done && done.result) out.textContent = done.result;  // the answer taken out of the output
  });
}

// -- tabs, Esc, the model's name ---------------------------------------------------------------------
for (const tab of document.querySelectorAll("[role=tab]")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll("[role=tab]")) t.setAttribute("aria-selected", String(t === tab));
    for (const panel of document.querySelectorAll("[role=tabpanel]")) panel.hidden = panel.id !== tab.dataset.tab;
  });
}
document.addEventListener("keydown", (e) => { if (e.key === "Escape") cancel("cancelled"); });

fetch("/v1/models", { headers: headers() }).then((r) => r.json()).then((m) => {
  const model = m.data && m.data[0];
  if (model) {
    const fim = model.meta && model.meta.fim;
    stat("model").textContent = `${model.id} · FIM: ${fim && fim.supported ? fim.family : "prefix only"}`;
  }
}).catch(() => {});
