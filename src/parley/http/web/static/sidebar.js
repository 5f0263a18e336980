// The customer sidebar: duplicate search for the merge form, forms sent with fetch, and a
// refresh that re-reads the sidebar from the server. Customer text only via textContent.
"use strict";
(function () {
  if (window.parleySidebarReady) return;
  window.parleySidebarReady = true;

  /** Re-fetch the sidebar (it says where, in data-refresh) and swap it in. */
  window.parleyRefreshSidebar = function () {
    const aside = document.querySelector('[data-test="sidebar"][data-refresh]');
    if (!aside) return Promise.resolve();
    return fetch(aside.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        const fresh = new DOMParser().parseFromString(html, "text/html").querySelector('[data-test="sidebar"]');
        const current = document.querySelector('[data-test="sidebar"][data-refresh]');
        if (fresh && current) current.replaceWith(document.importNode(fresh, true));
      });
  };

  function showError(form, message) {
    const box = form.querySelector("[data-form-error]") ||
      document.querySelector('[data-test="sidebar"] [data-sidebar-error]');
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-sidebar-form")) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    window.parleyPost(form.action, new FormData(form))
      .then(function (response) {
        if (response.ok) return window.parleyRefreshSidebar();
        return response.json().then(
          function (body) { showError(form, body.error || "That did not work."); },
          function () { showError(form, "That did not work (" + response.status + ")."); }
        );
      })
      .catch(function () { showError(form, "Network problem: nothing was changed."); })
      .finally(function () { if (button && button.isConnected) button.disabled = false; });
  });

  function result(match) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "other";
    radio.value = String(match.id);
    radio.required = true;
    const text = document.createElement("span");
    const name = document.createElement("strong");
    name.textContent = match.name;
    const detail = document.createElement("span");
    detail.className = "hint";
    detail.textContent = [match.email, match.phone].filter(Boolean).join(" · ") || "#" + match.id;
    text.append(name, detail);
    label.append(radio, text);
    return label;
  }

  let timer = null;
  document.addEventListener("input", function (event) {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.dataset.mergeSearch) return;
    const box = input.form && input.form.querySelector("[data-merge-results]");
    if (!box) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      const query = input.value.trim();
      if (query.length < 2) { box.replaceChildren(); return; }
      const url = input.dataset.mergeSearch + "?" +
        new URLSearchParams({ q: query, exclude: input.dataset.exclude || "" });
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : { customers: [] }; })
        .then(function (body) {
          if (!body.customers.length) {
            const none = document.createElement("p");
            none.className = "hint";
            none.textContent = "No other customer matches.";
            box.replaceChildren(none);
            return;
          }
          box.replaceChildren.apply(box, body.customers.map(result));
        });
    }, 200);
  });
})();
