// parley: live updates. One EventSource per page on /inbox/events; each event is re-dispatched
// on the document as "parley:live" ({kind, conversation_id, data}) for the page's own scripts
// to refresh what changed. Event data holds ids and statuses only, never customer text.
"use strict";
(function () {
  if (!window.EventSource || window.parleyLive) { return; }

  const stylesheet = document.createElement("link");
  stylesheet.rel = "stylesheet";
  stylesheet.href = "/static/live.css";
  document.head.appendChild(stylesheet);

  const indicator = document.createElement("span");
  indicator.className = "live-status connecting";
  indicator.setAttribute("data-test", "live-status");
  indicator.setAttribute("role", "status");
  indicator.setAttribute("aria-live", "polite");
  const dot = document.createElement("span");
  dot.className = "live-dot";
  dot.setAttribute("aria-hidden", "true");
  const label = document.createElement("span");
  label.className = "live-label";
  indicator.append(dot, label);
  const bar = document.querySelector(".topbar-right");
  if (bar) { bar.prepend(indicator); }

  function show(state, text, title) {
    indicator.classList.remove("connecting", "live", "offline");
    indicator.classList.add(state);
    indicator.dataset.state = state;
    label.textContent = text;
    indicator.title = title;
  }

  function announce(kind, conversationId, data) {
    document.dispatchEvent(new CustomEvent("parley:live", {
      detail: { kind: kind, conversation_id: conversationId, data: data || {} },
    }));
  }

  // "message" frames reach the default "message" listener; the others are named here.
  const KINDS = ["message_status", "conversation"];
  const source = new EventSource("/inbox/events");
  window.parleyLive = source;
  let wasOpen = false;

  show("connecting", "Connecting…", "Connecting to live updates");
  source.addEventListener("open", function () {
    show("live", "Live", "New messages and changes appear as they happen");
    // After a drop, anything the replay could not cover is re-read by the page.
    if (wasOpen) { announce("resync", null, {}); }
    wasOpen = true;
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      show("offline", "Offline", "Live updates stopped: reload the page");
    } else {
      show("connecting", "Reconnecting…", "Connection lost; reconnecting");
    }
  });
  function relay(event) {
    let payload;
    try { payload = JSON.parse(event.data); } catch (_) { return; }
    announce(payload.kind || event.type, payload.conversation_id, payload.data);
  }
  KINDS.forEach(function (kind) { source.addEventListener(kind, relay); });
  source.addEventListener("message", relay);
  source.addEventListener("ended", function () {
    // Removed from the workspace or signed out everywhere: this page may show nothing more.
    source.close();
    show("offline", "Signed out", "Your session ended");
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
