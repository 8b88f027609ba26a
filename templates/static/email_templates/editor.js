// Live preview: re-submit the editor's draft into the sandboxed iframe as the marketer types.
(function () {
  "use strict";
  const form = document.getElementById("editor-form");
  const frame = document.getElementById("preview-frame");
  const button = document.getElementById("preview-button");
  const part = document.getElementById("id_part");
  if (!form || !frame || !button) return;
  let timer = null;
  const refresh = () => form.requestSubmit(button);
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 600);
  });
  document.querySelectorAll("[data-preview-mode]").forEach((toggle) => {
    toggle.addEventListener("click", () => {
      const mode = toggle.dataset.previewMode;
      document.querySelectorAll("[data-preview-mode]").forEach((other) => {
        other.setAttribute("aria-pressed", String(other === toggle));
      });
      frame.classList.toggle("mobile", mode === "mobile");
      const wanted = mode === "text" ? "text" : "html";
      if (part.value !== wanted) {
        part.value = wanted;
        refresh();
      }
    });
  });
  // Preview for a real contact: the contacts app answers with the contact's plain data.
  const contactInput = document.getElementById("preview-contact");
  const contactButton = document.getElementById("preview-contact-load");
  if (contactInput && contactButton) {
    const status = document.getElementById("preview-contact-status");
    const data = document.getElementById("id_preview_data");
    contactButton.addEventListener("click", async () => {
      const url = contactInput.dataset.lookupUrl + "?q=" + encodeURIComponent(contactInput.value.trim());
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) {
        status.textContent = response.status === 404 ? "No contact with that email." : "The contact could not be loaded.";
        return;
      }
      data.value = JSON.stringify(await response.json(), null, 2);
      status.textContent = "Previewing as " + contactInput.value.trim() + ".";
      data.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  // "Show in editor": put the cursor on the line and column an error names.
  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-goto-field]");
    if (!target) return;
    const field = document.getElementById(target.dataset.gotoField);
    if (!field) return;
    const line = Number(target.dataset.line) || 1;
    const column = Number(target.dataset.column) || 1;
    const lines = field.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
    offset += column - 1;
    field.focus();
    field.setSelectionRange(offset, offset + 1);
    if (field.tagName === "TEXTAREA") {
      const lineHeight = parseFloat(getComputedStyle(field).lineHeight) || 18;
      field.scrollTop = Math.max((line - 3) * lineHeight, 0);
    }
  });
})();

// htmx leaves 4xx answers unswapped; panels marked data-swap-errors show them (they explain what was refused).
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (event.detail.xhr.status === 400 && target && target.closest("[data-swap-errors]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
