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
})();
