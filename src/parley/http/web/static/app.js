// parley's agent app: the little JavaScript the pages need. No framework, no CDN.
// Every fetch carries the page's CSRF token; customer text is only ever set as textContent.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  /** POST form-encoded data with the CSRF header; resolves to the Response. */
  window.parleyPost = function (url, data) {
    const body = new URLSearchParams(data || {});
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: body,
    });
  };
})();
