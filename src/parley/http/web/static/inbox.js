// parley: the inbox list and conversation page. Live refresh of the parts a "parley:live"
// event touches, auto-applied filters, and the keyboard: j / k next and previous
// conversation, / to search. Every fragment swapped in is the server's own escaped HTML;
// nothing here builds markup from customer text.
"use strict";
(function () {
  const inbox = document.querySelector('[data-test="inbox"]');
  if (!inbox) { return; }
  const listPane = inbox.querySelector('[data-test="conversation-list"]');
  const conversation = inbox.querySelector('[data-test="conversation"]');
  const openId = conversation ? conversation.dataset.conversationId : null;
  const scroller = inbox.querySelector('[data-test="timeline-scroll"]');

  function atBottom(element) {
    return element.scrollHeight - element.scrollTop - element.clientHeight < 48;
  }

  function toBottom() {
    if (scroller) { scroller.scrollTop = scroller.scrollHeight; }
  }

  /** GET a fragment of this app; null on any refusal (signed out, removed, gone). */
  async function fragment(url) {
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/x-fragment" } });
      return answer.ok ? await answer.text() : null;
    } catch (error) {
      return null;
    }
  }

  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  async function refreshList() {
    if (!listPane || !listPane.dataset.listUrl) { return; }
    const html = await fragment(listPane.dataset.listUrl);
    if (html === null) { return; }
    const focused = document.activeElement;
    const typing = focused && listPane.contains(focused) && focused.matches("input, select, textarea");
    if (typing) { return; }  // never yank the search box from under the agent's fingers
    const keep = listPane.scrollTop;
    listPane.replaceChildren(parse(html));
    listPane.scrollTop = keep;
    bindFilters();
  }

  async function refreshPart(element) {
    const html = await fragment(element.dataset.refresh);
    if (html === null) { return; }
    const fresh = parse(html).firstElementChild;
    if (!fresh || !element.isConnected) { return; }
    const follow = scroller && scroller.contains(element) && atBottom(scroller);
    const keep = scroller ? scroller.scrollTop : 0;
    element.replaceWith(fresh);
    if (follow) { toBottom(); } else if (scroller) { scroller.scrollTop = keep; }
  }

  function refreshConversation(conversationId) {
    const selector = conversationId === null
      ? "[data-refresh][data-conversation-id]"
      : '[data-refresh][data-conversation-id="' + CSS.escape(String(conversationId)) + '"]';
    document.querySelectorAll(selector).forEach(refreshPart);
  }

  // Bursts (a message, its status, an assignment) are folded into one refresh.
  let pending = null;
  const touched = new Set();
  document.addEventListener("parley:live", function (event) {
    const detail = event.detail || {};
    touched.add(detail.conversation_id === undefined ? null : detail.conversation_id);
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      const ids = Array.from(touched);
      touched.clear();
      refreshList();
      if (!openId) { return; }
      if (ids.indexOf(null) >= 0) { refreshConversation(null); return; }
      if (ids.some(function (id) { return String(id) === openId; })) { refreshConversation(openId); }
    }, 150);
  });

  function bindFilters() {
    const form = listPane && listPane.querySelector('[data-test="list-filters"]');
    if (!form) { return; }
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.requestSubmit(); });
    });
  }

  function rows() {
    return Array.from(document.querySelectorAll('[data-test="conversation-row"]'));
  }

  function step(delta) {
    const all = rows();
    if (!all.length) { return; }
    const current = all.findIndex(function (row) { return row.dataset.conversationId === openId; });
    const next = current < 0 ? (delta > 0 ? 0 : all.length - 1) : current + delta;
    if (next >= 0 && next < all.length) { window.location.assign(all[next].href); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) { return; }
    const target = event.target;
    if (target && (target.isContentEditable || target.closest("input, textarea, select, [contenteditable]"))) { return; }
    if (event.key === "j") { event.preventDefault(); step(1); }
    else if (event.key === "k") { event.preventDefault(); step(-1); }
    else if (event.key === "/") {
      const search = document.querySelector('[data-test="search"]');
      if (search) { event.preventDefault(); search.focus(); search.select(); }
    }
  });

  bindFilters();
  toBottom();
  const current = listPane && listPane.querySelector('.conv-row.current');
  if (current) { current.scrollIntoView({ block: "nearest" }); }
})();
