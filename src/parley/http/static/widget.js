/*
 * parley web chat widget.
 *
 *   <script src="https://parley.example/widget.js" data-workspace="demo" async></script>
 *
 * Optional: data-color="#2f6f4f" (the accent colour).
 *
 * Plain JavaScript, no dependencies, nothing loaded from anywhere but parley. Everything
 * lives in a shadow root, so the store's CSS cannot reach it and its CSS cannot leak out.
 * Text from the network is only ever put on the page with textContent: no markup from a
 * message (the shopper's, the assistant's or an agent's) is ever parsed as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.__parleyChat) return;
  window.__parleyChat = true;

  var WORKSPACE = script.getAttribute("data-workspace") || "";
  if (!WORKSPACE) return;
  var BASE = new URL(script.src, location.href).origin;
  var SOCKET_BASE = BASE.replace(/^http/, "ws");
  var PATH = "/webchat/" + encodeURIComponent(WORKSPACE);
  var TOKEN_KEY = "parley:" + WORKSPACE + ":token";
  var MAX_TEXT = 4000;
  var NONCE = script.nonce || script.getAttribute("nonce") || "";
  var ACCENT = /^#[0-9a-fA-F]{3,8}$/.test(script.getAttribute("data-color") || "")
    ? script.getAttribute("data-color")
    : "";

  var CSS = [
    ":host { all: initial; }",
    "*, *::before, *::after { box-sizing: border-box; }",
    ".root { --accent: #2f6f4f; --accent-ink: #ffffff; --ink: #1f2328; --muted: #667085;",
    "  --line: #e6e8eb; --soft: #f4f6f5; position: fixed; right: 20px; bottom: 20px;",
    "  z-index: 2147483000; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto,",
    "  'Helvetica Neue', Arial, sans-serif; color: var(--ink); }",
    "button, input, textarea { font: inherit; color: inherit; }",
    ".launcher { width: 58px; height: 58px; border-radius: 50%; border: 0; cursor: pointer;",
    "  background: var(--accent); color: var(--accent-ink); display: grid; place-items: center;",
    "  box-shadow: 0 10px 30px rgba(16, 24, 40, .22); position: relative;",
    "  transition: transform .15s ease; }",
    ".launcher:hover { transform: translateY(-2px); }",
    ".launcher:focus-visible, .send:focus-visible, .close:focus-visible, .link:focus-visible",
    "  { outline: 3px solid rgba(47, 111, 79, .35); outline-offset: 2px; }",
    ".launcher svg { width: 26px; height: 26px; }",
    ".badge { position: absolute; top: -2px; right: -2px; min-width: 20px; height: 20px;",
    "  padding: 0 6px; border-radius: 10px; background: #d92d20; color: #fff; font-size: 12px;",
    "  font-weight: 700; display: grid; place-items: center; box-shadow: 0 0 0 2px #fff; }",
    ".badge[hidden] { display: none; }",
    ".panel { position: absolute; right: 0; bottom: 74px; width: 370px; height: 560px;",
    "  max-height: calc(100vh - 110px); background: #fff; border-radius: 18px;",
    "  box-shadow: 0 24px 60px rgba(16, 24, 40, .28); display: flex; flex-direction: column;",
    "  overflow: hidden; transform-origin: bottom right; animation: pop .16s ease-out; }",
    ".panel[hidden] { display: none; }",
    "@keyframes pop { from { opacity: 0; transform: scale(.96) translateY(8px); } }",
    ".head { background: var(--accent); color: var(--accent-ink); padding: 16px 18px 14px;",
    "  display: flex; align-items: flex-start; gap: 12px; }",
    ".avatar { width: 38px; height: 38px; border-radius: 50%; background: rgba(255,255,255,.2);",
    "  display: grid; place-items: center; font-weight: 700; font-size: 15px; flex: none; }",
    ".title { flex: 1; min-width: 0; }",
    ".name { font-weight: 700; font-size: 16px; white-space: nowrap; overflow: hidden;",
    "  text-overflow: ellipsis; }",
    ".status { font-size: 12px; opacity: .85; display: flex; align-items: center; gap: 6px; }",
    ".status::before { content: ''; width: 7px; height: 7px; border-radius: 50%;",
    "  background: #9ca3af; }",
    ".status.online::before { background: #4ade80; }",
    ".close { border: 0; background: transparent; color: inherit; cursor: pointer;",
    "  width: 32px; height: 32px; border-radius: 8px; font-size: 22px; line-height: 1; }",
    ".close:hover { background: rgba(255,255,255,.15); }",
    ".note { font-size: 12px; color: var(--muted); background: var(--soft);",
    "  padding: 8px 18px; border-bottom: 1px solid var(--line); }",
    ".log { flex: 1; overflow-y: auto; padding: 16px 14px 8px; display: flex;",
    "  flex-direction: column; gap: 6px; background: #fff; }",
    ".empty { margin: auto; text-align: center; color: var(--muted); font-size: 13px;",
    "  padding: 0 24px; }",
    ".row { display: flex; flex-direction: column; max-width: 82%; }",
    ".row.mine { align-self: flex-end; align-items: flex-end; }",
    ".row.theirs { align-self: flex-start; align-items: flex-start; }",
    ".row.system { align-self: center; max-width: 92%; }",
    ".who { font-size: 11px; color: var(--muted); margin: 6px 4px 2px; }",
    ".bubble { padding: 9px 13px; border-radius: 16px; white-space: pre-wrap;",
    "  overflow-wrap: anywhere; word-break: break-word; }",
    ".mine .bubble { background: var(--accent); color: var(--accent-ink);",
    "  border-bottom-right-radius: 5px; }",
    ".theirs .bubble { background: var(--soft); border-bottom-left-radius: 5px; }",
    ".system .bubble { background: transparent; color: var(--muted); font-size: 12px;",
    "  text-align: center; }",
    ".meta { font-size: 11px; color: var(--muted); margin: 2px 4px 0; }",
    ".pending .bubble { opacity: .6; }",
    ".failed .bubble { background: #fef3f2; color: #b42318; cursor: pointer; }",
    ".email { border-top: 1px solid var(--line); padding: 8px 14px; font-size: 12px;",
    "  color: var(--muted); }",
    ".email form { display: flex; gap: 6px; margin-top: 6px; }",
    ".email form[hidden] { display: none; }",
    ".email input { flex: 1; min-width: 0; border: 1px solid var(--line); border-radius: 8px;",
    "  padding: 6px 9px; font-size: 13px; }",
    ".email form button { border: 1px solid var(--line); background: #fff; border-radius: 8px;",
    "  padding: 6px 10px; cursor: pointer; font-size: 13px; }",
    ".link { border: 0; background: none; padding: 0; color: var(--accent); cursor: pointer;",
    "  font-size: 12px; text-decoration: underline; }",
    ".compose { display: flex; gap: 8px; align-items: flex-end; padding: 10px 12px 12px;",
    "  border-top: 1px solid var(--line); }",
    ".compose textarea { flex: 1; resize: none; border: 1px solid var(--line);",
    "  border-radius: 12px; padding: 9px 12px; max-height: 120px; min-height: 40px;",
    "  outline: none; background: #fff; }",
    ".compose textarea:focus { border-color: var(--accent); }",
    ".send { width: 40px; height: 40px; border-radius: 50%; border: 0; cursor: pointer;",
    "  background: var(--accent); color: var(--accent-ink); display: grid; place-items: center;",
    "  flex: none; }",
    ".send:disabled { opacity: .45; cursor: default; }",
    ".send svg { width: 18px; height: 18px; }",
    ".banner { font-size: 12px; text-align: center; padding: 6px 12px; background: #fffaeb;",
    "  color: #93370d; border-top: 1px solid #fedf89; }",
    ".banner[hidden] { display: none; }",
    ".brand { font-size: 11px; color: var(--muted); text-align: center; padding: 0 0 8px; }",
    "@media (max-width: 480px) { .root { right: 12px; bottom: 12px; }",
    "  .panel { position: fixed; inset: 0; width: auto; height: auto; max-height: none;",
    "  border-radius: 0; bottom: 0; } .root.open .launcher { display: none; } }",
  ].join("\n");

  // --- small DOM helpers: text only, never markup -----------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function icon(pathData) {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", pathData);
    svg.appendChild(path);
    return svg;
  }

  function storage(action, value) {
    try {
      if (action === "get") return window.localStorage.getItem(TOKEN_KEY);
      if (action === "set") window.localStorage.setItem(TOKEN_KEY, value);
      if (action === "drop") window.localStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // Storage blocked (private mode, a strict browser): the cookie still works.
    }
    return null;
  }

  function clientId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function timeOf(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function initials(name) {
    var words = String(name || "").split(/\s+/).filter(function (w) { return /\w/.test(w); });
    return words.slice(0, 2).map(function (w) { return w.charAt(0).toUpperCase(); }).join("");
  }

  // --- the view ------------------------------------------------------------------------------

  var host = el("div");
  host.setAttribute("data-parley-chat", "");
  var shadow = host.attachShadow({ mode: "open" });
  if (shadow.adoptedStyleSheets !== undefined && window.CSSStyleSheet) {
    // A constructed sheet is not inline style: a store's strict CSP does not block it.
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    var style = el("style", null, CSS);
    if (NONCE) style.nonce = NONCE;
    shadow.appendChild(style);
  }

  var root = el("div", "root");
  if (ACCENT) root.style.setProperty("--accent", ACCENT);
  shadow.appendChild(root);

  var panel = el("section", "panel");
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", "Chat");

  var head = el("header", "head");
  var avatar = el("div", "avatar", "");
  var title = el("div", "title");
  var nameEl = el("div", "name", "Chat");
  var statusEl = el("div", "status", "Connecting…");
  title.appendChild(nameEl);
  title.appendChild(statusEl);
  var closeButton = el("button", "close", "×");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "Close chat");
  head.appendChild(avatar);
  head.appendChild(title);
  head.appendChild(closeButton);

  var note = el("div", "note", "You're chatting with the store's assistant.");
  var log = el("div", "log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var empty = el("div", "empty", "Ask about an order, delivery, returns or a product.");
  log.appendChild(empty);

  var banner = el("div", "banner");
  banner.hidden = true;

  var emailBox = el("div", "email");
  var emailToggle = el("button", "link", "Leave your email so the team can follow up");
  emailToggle.type = "button";
  var emailForm = el("form");
  emailForm.hidden = true;
  emailForm.noValidate = true;
  var emailInput = el("input");
  emailInput.type = "email";
  emailInput.placeholder = "you@example.com";
  emailInput.autocomplete = "email";
  emailInput.setAttribute("aria-label", "Your email address");
  emailInput.maxLength = 320;
  var emailSave = el("button", null, "Save");
  emailSave.type = "submit";
  emailForm.appendChild(emailInput);
  emailForm.appendChild(emailSave);
  var emailStatus = el("span");
  emailBox.appendChild(emailToggle);
  emailBox.appendChild(emailStatus);
  emailBox.appendChild(emailForm);

  var compose = el("form", "compose");
  var input = el("textarea");
  input.rows = 1;
  input.placeholder = "Write a message…";
  input.maxLength = MAX_TEXT;
  input.setAttribute("aria-label", "Message");
  var sendButton = el("button", "send");
  sendButton.type = "submit";
  sendButton.setAttribute("aria-label", "Send");
  sendButton.appendChild(icon("M22 2 11 13M22 2l-7 20-4-9-9-4z"));
  sendButton.disabled = true;
  compose.appendChild(input);
  compose.appendChild(sendButton);

  var brand = el("div", "brand", "Chat by parley");

  panel.appendChild(head);
  panel.appendChild(note);
  panel.appendChild(log);
  panel.appendChild(banner);
  panel.appendChild(emailBox);
  panel.appendChild(compose);
  panel.appendChild(brand);

  var launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "Open chat");
  launcher.setAttribute("aria-expanded", "false");
  launcher.appendChild(icon("M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"));
  var badge = el("span", "badge", "");
  badge.hidden = true;
  launcher.appendChild(badge);

  root.appendChild(panel);
  root.appendChild(launcher);

  // --- state ---------------------------------------------------------------------------------

  var storeName = "";
  var token = storage("get");
  var socket = null;
  var connecting = false;
  var stopped = false;
  var attempt = 0;
  var retryTimer = null;
  var unread = 0;
  var shown = {}; // message id -> true: what this page has rendered
  var pending = []; // {id, text, row, failed}: written here, not yet confirmed stored

  function setStore(name) {
    storeName = name || "the store";
    nameEl.textContent = storeName;
    avatar.textContent = initials(storeName) || "•";
    note.textContent = "You're chatting with " + storeName + "'s assistant. " +
      "A person from the team can take over at any time.";
  }

  function setStatus(text, online) {
    statusEl.textContent = text;
    statusEl.className = online ? "status online" : "status";
  }

  function showBanner(text) {
    banner.textContent = text || "";
    banner.hidden = !text;
  }

  function setUnread(count) {
    unread = count;
    badge.textContent = count > 9 ? "9+" : String(count);
    badge.hidden = count === 0;
  }

  function isOpen() {
    return !panel.hidden;
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function authorLabel(author) {
    if (author === "agent") return storeName + " team";
    if (author === "assistant") return storeName + " assistant";
    return "";
  }

  function renderRow(message) {
    var mine = message.direction === "inbound";
    var system = message.author === "system";
    var row = el("div", "row " + (mine ? "mine" : system ? "system" : "theirs"));
    var label = mine || system ? "" : authorLabel(message.author);
    var previous = log.lastElementChild;
    if (label && !(previous && previous.getAttribute("data-author") === message.author)) {
      row.appendChild(el("div", "who", label));
    }
    row.setAttribute("data-author", mine ? "customer" : message.author);
    row.appendChild(el("div", "bubble", message.text));
    if (message.created_at) row.appendChild(el("div", "meta", timeOf(message.created_at)));
    return row;
  }

  function append(row) {
    if (empty.parentNode) empty.parentNode.removeChild(empty);
    log.appendChild(row);
    scrollToEnd();
  }

  function settle(message) {
    // The server stored what this page sent: its bubble becomes the real one.
    for (var i = 0; i < pending.length; i++) {
      if (pending[i].id === message.client_id) {
        var row = renderRow(message);
        if (pending[i].row.parentNode) log.replaceChild(row, pending[i].row);
        pending.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  function show(message) {
    if (shown[message.id]) return;
    shown[message.id] = true;
    if (message.client_id && settle(message)) return;
    append(renderRow(message));
    if (message.direction === "outbound" && !isOpen()) setUnread(unread + 1);
  }

  function showHistory(messages) {
    shown = {};
    while (log.firstChild) log.removeChild(log.firstChild);
    var waiting = pending;
    pending = [];
    messages.forEach(function (message) {
      shown[message.id] = true;
      log.appendChild(renderRow(message));
    });
    // Messages written here whose echo the history does not hold yet: send them again.
    waiting.forEach(function (item) {
      var stored = messages.some(function (m) { return m.client_id === item.id; });
      if (!stored) {
        pending.push(item);
        log.appendChild(item.row);
        transmit(item);
      }
    });
    if (!log.firstChild) log.appendChild(empty);
    scrollToEnd();
  }

  function markFailed(item, reason) {
    item.failed = true;
    item.row.className = "row mine failed";
    var meta = item.row.querySelector(".meta");
    if (meta) meta.textContent = (reason || "Not sent") + " · tap to retry";
  }

  // --- the network ---------------------------------------------------------------------------

  function transmit(item) {
    if (!socket || socket.readyState !== 1) return;
    item.failed = false;
    item.row.className = "row mine pending";
    var meta = item.row.querySelector(".meta");
    if (meta) meta.textContent = "Sending…";
    socket.send(JSON.stringify({ type: "message", id: item.id, text: item.text }));
  }

  function startSession() {
    return fetch(BASE + PATH + "/session", {
      method: "POST",
      credentials: "include",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: token }),
    }).then(function (response) {
      if (response.status === 403 || response.status === 404) {
        var refusal = new Error("refused");
        refusal.fatal = true;
        throw refusal;
      }
      if (!response.ok) throw new Error("session " + response.status);
      return response.json();
    }).then(function (body) {
      token = body.token;
      storage("set", token);
      setStore(body.store && body.store.name);
    });
  }

  function connect() {
    if (stopped || connecting || (socket && socket.readyState <= 1)) return;
    connecting = true;
    setStatus("Connecting…", false);
    startSession().then(openSocket, function (error) {
      connecting = false;
      if (error && error.fatal) return stop("Chat isn't available on this site.");
      retry();
    });
  }

  function openSocket() {
    var url = SOCKET_BASE + PATH + "/ws?token=" + encodeURIComponent(token);
    var ws = new WebSocket(url);
    socket = ws;
    ws.onopen = function () {
      connecting = false;
      attempt = 0;
      setStatus("Online", true);
      showBanner("");
      sendButton.disabled = !input.value.trim();
    };
    ws.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      onFrame(frame);
    };
    ws.onclose = function (event) {
      if (socket === ws) socket = null;
      connecting = false;
      sendButton.disabled = true;
      setStatus("Offline", false);
      if (event.code === 4401) {
        token = null;
        storage("drop");
      }
      if (event.code === 4403 || event.code === 4404) {
        return stop("Chat isn't available on this site.");
      }
      if (event.code === 1008) {
        attempt = Math.max(attempt, 5);
        showBanner("Too many messages at once. Reconnecting shortly…");
      }
      retry();
    };
  }

  function onFrame(frame) {
    if (frame.type === "history") {
      showHistory(frame.messages || []);
    } else if (frame.type === "message") {
      show(frame);
    } else if (frame.type === "identified") {
      emailForm.hidden = true;
      emailToggle.hidden = true;
      emailStatus.textContent = "Thanks, we'll use " + emailInput.value.trim() + " to follow up.";
    } else if (frame.type === "error") {
      var item = pending.filter(function (p) { return p.id === frame.id; })[0];
      if (item) markFailed(item, frame.reason);
      else if (!emailForm.hidden) emailStatus.textContent = " " + frame.reason;
      else showBanner(frame.reason);
    }
  }

  function retry() {
    if (stopped) return;
    clearTimeout(retryTimer);
    // 1 s, 2 s, 4 s ... up to 30 s, with jitter so a restart is not met by a stampede.
    var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    attempt += 1;
    setStatus("Reconnecting…", false);
    retryTimer = setTimeout(connect, delay);
  }

  function stop(reason) {
    stopped = true;
    clearTimeout(retryTimer);
    setStatus("Unavailable", false);
    showBanner(reason);
    input.disabled = true;
    sendButton.disabled = true;
  }

  // --- interaction ---------------------------------------------------------------------------

  function open() {
    panel.hidden = false;
    root.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat");
    setUnread(0);
    connect();
    scrollToEnd();
    input.focus();
  }

  function close() {
    panel.hidden = true;
    root.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat");
    launcher.focus();
  }

  function submit() {
    var text = input.value;
    if (!text.trim() || text.length > MAX_TEXT) return;
    var item = { id: clientId(), text: text, failed: false, row: null };
    item.row = renderRow({ direction: "inbound", author: "customer", text: text });
    var meta = el("div", "meta", "Sending…");
    var old = item.row.querySelector(".meta");
    if (old) item.row.replaceChild(meta, old);
    else item.row.appendChild(meta);
    item.row.className = "row mine pending";
    item.row.addEventListener("click", function () {
      if (item.failed) transmit(item);
    });
    pending.push(item);
    append(item.row);
    input.value = "";
    grow();
    sendButton.disabled = true;
    transmit(item);
    if (!socket) connect();
  }

  function grow() {
    input.style.height = "auto";
    // scrollHeight leaves out the border, which border-box height includes.
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }

  launcher.addEventListener("click", function () {
    if (isOpen()) close();
    else open();
  });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") close();
  });
  compose.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", function () {
    grow();
    sendButton.disabled = !input.value.trim() || !socket || socket.readyState !== 1;
  });
  emailToggle.addEventListener("click", function () {
    emailForm.hidden = !emailForm.hidden;
    emailStatus.textContent = "";
    if (!emailForm.hidden) emailInput.focus();
  });
  emailForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var email = emailInput.value.trim();
    if (!email || !socket || socket.readyState !== 1) return;
    emailStatus.textContent = "";
    socket.send(JSON.stringify({ type: "identify", email: email }));
  });
  window.addEventListener("online", function () {
    if (!socket && !stopped) {
      attempt = 0;
      connect();
    }
  });

  function mount() {
    document.body.appendChild(host);
    // A returning shopper (a token from an earlier visit) sees replies that came while
    // they were away; a first-time visitor opens no socket until they open the chat.
    if (token) connect();
  }

  setStore("");
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
