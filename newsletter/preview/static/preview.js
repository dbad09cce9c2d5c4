// The preview page: swaps in each new render pushed by the server (server-sent events).
"use strict";
const body = document.body;
const csrf = body.dataset.csrf;
const ui = { width: "desktop", scheme: "light", tab: "html", version: -1 };
const $ = (id) => document.getElementById(id);
window.__preview = { shown: -1, shownAt: 0 };

function frameSrc() { return `/email?scheme=${ui.scheme}&v=${ui.version}`; }

async function loadPanes() {
  const [text, source, headers] = await Promise.all([
    fetch("/text").then((r) => r.text()),
    fetch("/source").then((r) => r.text()),
    fetch("/headers").then((r) => r.json()),
  ]);
  $("text").textContent = text;
  $("source").textContent = source;
  const table = $("headers");
  table.replaceChildren();
  for (const [name, value] of Object.entries(headers)) {
    const row = table.insertRow();
    const th = document.createElement("th");
    th.textContent = name;
    row.appendChild(th);
    row.insertCell().textContent = value;
  }
}

function show(state) {
  const error = $("error");
  if (state.error) {
    $("error-lines").textContent = state.error.join("\n");
    error.hidden = false;
  } else {
    error.hidden = true;
  }
  const kb = (state.size / 1024).toFixed(1);
  $("size").textContent = `${kb} KB of ${(state.size_limit / 1024).toFixed(0)} KB`;
  $("size").classList.toggle("warn", state.size_warning);
  const editions = state.editions || [];
  $("edition-label").hidden = editions.length < 2;
  if ([...$("edition").options].map((o) => o.value).join() !== editions.join()) {
    $("edition").replaceChildren(...editions.map((e) => new Option(e, e)));
  }
  $("edition").value = state.language;
  $("warnings").replaceChildren(...state.warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  if (!state.error && state.version !== ui.version) {
    ui.version = state.version;
    $("frame").src = frameSrc();
    loadPanes();
  }
  $("status").textContent = state.error ? "error" : `rendered in ${state.build_ms} ms`;
}

$("frame").addEventListener("load", () => {
  window.__preview = { shown: ui.version, shownAt: Date.now() };
});

function toggle(attr, value) {
  for (const b of document.querySelectorAll(`[data-${attr}]`)) {
    const on = b.dataset[attr] === value;
    b.classList.toggle("on", on);
    b.setAttribute(attr === "tab" ? "aria-selected" : "aria-pressed", String(on));
  }
}

for (const b of document.querySelectorAll("[data-width]")) {
  b.addEventListener("click", () => {
    ui.width = b.dataset.width;
    body.classList.toggle("mobile", ui.width === "mobile");
    toggle("width", ui.width);
  });
}
for (const b of document.querySelectorAll("[data-scheme]")) {
  b.addEventListener("click", () => {
    ui.scheme = b.dataset.scheme;
    toggle("scheme", ui.scheme);
    $("frame").src = frameSrc();
  });
}
for (const b of document.querySelectorAll("[data-tab]")) {
  b.addEventListener("click", () => {
    ui.tab = b.dataset.tab;
    toggle("tab", ui.tab);
    for (const pane of document.querySelectorAll(".pane")) pane.classList.toggle("on", pane.id === `pane-${ui.tab}`);
  });
}

async function post(url, data) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(data || {}),
  });
  return response.json();
}

$("send").addEventListener("click", async () => {
  const button = $("send");
  button.disabled = true;
  $("status").textContent = "sending a test copy...";
  try {
    const result = await post("/test-send");
    $("status").textContent = result.ok
      ? "Test sent: " + result.results.map((r) => `${r.to} (${r.result})`).join(", ")
      : "Test send failed: " + (result.error || result.results.map((r) => `${r.to}: ${r.result}`).join(", "));
  } finally {
    button.disabled = false;
  }
});

$("edition").addEventListener("change", async (event) => {
  const result = await post("/language", { language: event.target.value });
  if (!result.ok) $("status").textContent = result.error;
});

$("as").addEventListener("change", async (event) => {
  const result = await post("/select", { email: event.target.value });
  if (!result.ok) $("status").textContent = result.error;
});

fetch("/subscribers").then((r) => r.json()).then((people) => {
  for (const p of people) {
    $("as").appendChild(new Option(p.name ? `${p.name} <${p.email}>` : p.email, p.email));
  }
});

show(JSON.parse(body.dataset.state));
new EventSource("/events").onmessage = (event) => show(JSON.parse(event.data));
