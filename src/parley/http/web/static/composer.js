// parley: the composer. Sends replies and notes with fetch (the draft stays on failure and
// the server's reason is shown), inserts canned replies (picker or "/shortcut"), and binds
// the keyboard shortcuts. Without this file every part still works as a plain form.
"use strict";
(function () {
  const composer = document.querySelector('[data-test="composer"]');
  if (!composer) return;
  const form = composer.querySelector('[data-test="composer-form"]');
  const body = composer.querySelector('[data-test="reply-body"]');
  const channel = composer.querySelector('[data-test="reply-channel"]');
  const errorBox = composer.querySelector('[data-test="composer-error"]');
  const canned = composer.querySelector('[data-test="canned-picker"]');
  const help = composer.querySelector('[data-test="shortcut-help"]');
  const conversationId = composer.dataset.conversationId;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  async function reasonOf(response) {
    try {
      const data = await response.json();
      if (data && data.error) return data.error;
    } catch (ignored) { /* not JSON: fall through */ }
    return "Not sent (" + response.status + "). Your text is still here.";
  }

  // ---- Reply / note mode -------------------------------------------------------------
  function setMode(mode) {
    composer.dataset.mode = mode;
    composer.querySelectorAll("[data-mode]").forEach(function (tab) {
      if (tab.classList.contains("mode")) tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
    });
    body.placeholder = mode === "note"
      ? "Write an internal note… only your team sees it"
      : "Write a reply… type / for canned replies";
  }
  composer.querySelectorAll("button.mode").forEach(function (tab) {
    tab.addEventListener("click", function () { setMode(tab.dataset.mode); body.focus(); });
  });
  setMode("reply");

  // ---- Channel window part: show the chosen channel's notice, keep it after a refresh ---
  function applyChannel() {
    const chosen = channel ? channel.value : "";
    composer.querySelectorAll("[data-channel-state]").forEach(function (state) {
      const active = state.dataset.channelState === chosen;
      state.hidden = !active;
      state.querySelectorAll("select, input").forEach(function (field) { field.disabled = !active; });
      // Outside WhatsApp's window a reply is a template: free text only for notes.
      if (active) composer.dataset.templateOnly = state.dataset.needsTemplate;
    });
  }
  if (channel) channel.addEventListener("change", applyChannel);
  applyChannel();
  // The live script swaps [data-refresh] parts in place; re-apply the agent's choices.
  new MutationObserver(applyChannel).observe(composer, { childList: true, subtree: true });

  // ---- Sending -----------------------------------------------------------------------
  let sending = false;
  async function send() {
    if (sending) return;
    const mode = composer.dataset.mode || "reply";
    const url = "/inbox/" + conversationId + "/" + (mode === "note" ? "note" : "reply");
    const data = new FormData(form);
    data.delete("csrf_token");
    sending = true;
    showError("");
    try {
      const response = await window.parleyPost(url, data);
      if (!response.ok) {
        showError(await reasonOf(response));
        return;
      }
      body.value = "";
      const key = form.querySelector('input[name="draft_key"]');
      if (key) key.value = Math.random().toString(36).slice(2) + Date.now().toString(36);
      const template = form.querySelector('select[name="template"]');
      if (template) template.value = "";
      composer.dispatchEvent(new CustomEvent("parley:sent", { bubbles: true, detail: { mode: mode } }));
      refresh("moves");
    } catch (failure) {
      showError("Could not reach parley. Your text is still here; try again.");
    } finally {
      sending = false;
    }
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (event.submitter && event.submitter.dataset.test === "add-note") setMode("note");
    send();
  });

  // ---- Moves (assign, snooze, resolve, hand back…) -----------------------------------
  async function refresh(part) {
    const region = composer.querySelector(part === "moves" ? ".composer-moves" : ".composer-window");
    if (!region) return;
    const response = await fetch(region.dataset.refresh, { credentials: "same-origin" });
    if (!response.ok) return;
    const holder = document.createElement("template");
    holder.innerHTML = await response.text();  // parley's own escaped template, not customer text
    const fresh = holder.content.firstElementChild;
    if (fresh) region.replaceWith(fresh);
  }
  composer.addEventListener("submit", async function (event) {
    const move = event.target.closest("form[data-move]");
    if (!move) return;
    event.preventDefault();
    const data = new FormData(move);
    data.delete("csrf_token");
    showError("");
    const response = await window.parleyPost(move.action, data);
    if (!response.ok) {
      showError(await reasonOf(response));
      return;
    }
    await refresh("moves");
    await refresh("window");
  });

  // ---- Canned replies ----------------------------------------------------------------
  async function insertCanned(id, replaceShortcut) {
    const response = await fetch(canned.dataset.cannedUrl + id, {
      credentials: "same-origin", headers: { "Accept": "application/json" },
    });
    if (!response.ok) { showError(await reasonOf(response)); return; }
    const text = (await response.json()).text;
    const start = replaceShortcut ? replaceShortcut.start : body.selectionStart;
    const end = replaceShortcut ? replaceShortcut.end : body.selectionEnd;
    body.value = body.value.slice(0, start) + text + body.value.slice(end);
    body.focus();
    body.selectionStart = body.selectionEnd = start + text.length;
  }
  if (canned) {
    canned.addEventListener("change", function () {
      if (canned.value) insertCanned(canned.value, null);
      canned.value = "";
    });
  }
  // "/shortcut" followed by space or Tab, at the start of the text or after whitespace.
  body.addEventListener("keydown", function (event) {
    if (!canned || (event.key !== " " && event.key !== "Tab")) return;
    const before = body.value.slice(0, body.selectionStart);
    const found = before.match(/(^|\s)\/([a-z0-9_-]+)$/);
    if (!found) return;
    const option = canned.querySelector('option[data-shortcut="' + found[2] + '"]');
    if (!option) return;
    event.preventDefault();
    const start = body.selectionStart - found[2].length - 1;
    insertCanned(option.value, { start: start, end: body.selectionStart });
  });

  // ---- Keyboard ----------------------------------------------------------------------
  body.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    }
  });
  function click(selector) {
    const button = composer.querySelector(selector);
    if (button) button.click();
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    const actions = {
      r: function () { setMode("reply"); body.focus(); },
      n: function () { setMode("note"); body.focus(); },
      a: function () { click('[data-test="assign-me"]'); },
      e: function () { click('[data-test="resolve"]'); },
      s: function () { const until = composer.querySelector('[data-test="snooze-until"]'); if (until) until.focus(); },
      h: function () { click('[data-test="hand-back"]'); },
      "?": function () { if (help && !help.open) help.showModal(); },
    };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });
})();
