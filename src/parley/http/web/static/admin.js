// parley: admin pages. The template editor's live preview, and the connect form showing
// only the chosen provider's secret fields. Rendered text is set with textContent only;
// the email preview loads into a sandboxed iframe from a route with its own strict CSP.
"use strict";
(function () {
  function debounce(fn, wait) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, wait);
    };
  }

  function livePreview(editor) {
    const root = document.querySelector('[data-test="preview"]');
    if (!root) return;
    const error = root.querySelector('[data-test="preview-error"]');
    const subject = root.querySelector('[data-test="preview-subject"]');
    const text = root.querySelector('[data-test="preview-text"]');
    const whatsapp = root.querySelector('[data-test="preview-whatsapp"]');
    const emailForm = root.querySelector("[data-email-preview-form]");
    let sequence = 0;

    function fields() {
      const data = {};
      for (const name of ["message", "channel", "subject", "text", "html"]) {
        const input = editor.elements.namedItem(name);
        if (input) data[name] = input.value;
      }
      return data;
    }

    function refresh() {
      const data = fields();
      const mine = ++sequence;
      window.parleyPost("/admin/journeys/preview", data)
        .then(function (response) { return response.json(); })
        .then(function (result) {
          if (mine !== sequence) return; // a newer keystroke already asked again
          error.hidden = result.ok;
          error.textContent = result.ok ? "" : result.error;
          if (!result.ok) return;
          if (subject) subject.textContent = result.subject || "";
          text.textContent = result.text;
          whatsapp.hidden = !result.whatsapp;
          whatsapp.textContent = result.whatsapp
            ? "Outside the 24-hour window: template " + result.whatsapp.template +
              " with " + result.whatsapp.parameters.map(function (p) { return "“" + p + "”"; }).join(", ")
            : "";
          if (emailForm && result.has_html) {
            for (const name of ["subject", "text", "html"]) {
              if (emailForm.elements.namedItem(name) && data[name] !== undefined) {
                emailForm.elements.namedItem(name).value = data[name];
              }
            }
            emailForm.submit();
          }
        })
        .catch(function () {
          error.hidden = false;
          error.textContent = "The preview could not be loaded. Check your connection.";
        });
    }

    editor.addEventListener("input", debounce(refresh, 350));
    refresh();
  }

  function providerFields(select) {
    const sets = document.querySelectorAll("fieldset.provider-fields");
    function show() {
      sets.forEach(function (set) {
        const chosen = set.dataset.provider === select.value;
        set.hidden = !chosen;
        set.disabled = !chosen;
      });
    }
    select.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    const editor = document.querySelector("form[data-template-editor]");
    if (editor) livePreview(editor);
    const select = document.querySelector("select[data-provider-select]");
    if (select) providerFields(select);
    document.querySelectorAll("input[data-copy]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
  });
})();
