// The preview page: swaps in each new render pushed by the server (server-sent events).
"use strict";
const body = document.body;
const csrf = body.dataset.csrf;
const ui = { width: "desktop", scheme: "light", tab: "html", version: -1, recipients: [] };
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
  $("inbox-from").textContent = (headers.From || "").replace(/\s*<[^>]*>$/, "");
  $("inbox-subject").textContent = headers.Subject || "";
  $("inbox-preheader").textContent = headers.Preheader ? `— ${headers.Preheader}` : "";
  const table = $("headers");
  const caption = table.querySelector("caption");
  table.replaceChildren(caption);
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
  const errors = state.warnings.filter((w) => / error /.test(w)).length;
  const count = state.warnings.length;
  $("findings-count").textContent = count ? `${count} finding${count === 1 ? "" : "s"}${errors ? ` (${errors} error${errors === 1 ? "" : "s"})` : ""}` : "No findings";
  $("findings-count").className = `count${count ? " some" : ""}${errors ? " errors" : ""}`;
  $("no-findings").hidden = count > 0;
  ui.recipients = state.test_recipients || [];
  if (!state.error && state.version !== ui.version) {
    ui.version = state.version;
    $("frame").src = frameSrc();
    loadPanes();
  }
  if (!$("status").classList.contains("sent") && !$("status").classList.contains("failed")) {
    say(state.error ? "This save does not render." : `Rendered in ${state.build_ms} ms.`);
  }
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
const tabs = [...document.querySelectorAll("[data-tab]")];
function selectTab(b) {
  ui.tab = b.dataset.tab;
  toggle("tab", ui.tab);
  for (const t of tabs) t.tabIndex = t === b ? 0 : -1;
  for (const pane of document.querySelectorAll(".pane")) pane.classList.toggle("on", pane.id === `pane-${ui.tab}`);
}
for (const b of tabs) {
  b.addEventListener("click", () => selectTab(b));
  // The tab list's keys: left and right arrows move between tabs.
  b.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(tabs.indexOf(b) + step + tabs.length) % tabs.length];
    selectTab(next);
    next.focus();
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

function say(text, kind) {
  $("status").textContent = text;
  $("status").className = `status${kind ? ` ${kind}` : ""}`;
}

$("send").addEventListener("click", () => {
  const panel = $("send-panel");
  const open = panel.hidden;
  panel.hidden = !open;
  $("send").setAttribute("aria-expanded", String(open));
  if (!open) return;
  const edition = $("edition-label").hidden ? "" : ` (the ${$("edition").value} edition)`;
  if (ui.recipients.length) {
    $("send-to").textContent = `Send a test copy${edition}, marked [TEST], to ${ui.recipients.join(", ")}?`;
    $("send-go").disabled = false;
  } else {
    $("send-to").textContent = "No test recipients are set: add NEWSLETTER_TEST_RECIPIENTS (addresses, comma-separated) to the settings.";
    $("send-go").disabled = true;
  }
  $("send-go").focus();
});

$("send-cancel").addEventListener("click", () => {
  $("send-panel").hidden = true;
  $("send").setAttribute("aria-expanded", "false");
});

$("send-go").addEventListener("click", async () => {
  const button = $("send-go");
  button.disabled = true;
  say("Sending a test copy…");
  try {
    const result = await post("/test-send");
    if (result.ok) {
      say("Test sent: " + result.results.map((r) => `${r.to} (${r.result})`).join(", "), "sent");
    } else {
      say("Test not sent: " + (result.error || result.results.map((r) => `${r.to}: ${r.result}`).join(", ")), "failed");
    }
  } catch (error) {
    say(`Test not sent: ${error}`, "failed");
  } finally {
    button.disabled = false;
    $("send-panel").hidden = true;
    $("send").setAttribute("aria-expanded", "false");
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
