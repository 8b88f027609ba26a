// The flow builder's own script (a static file: the Content-Security-Policy allows no inline script).
// The "Add a step" form shows only the settings of the kind chosen; without this script it shows all
// of them, and the server reads only those of the kind.
(function () {
  "use strict";
  function sync(form) {
    var select = form.querySelector("[data-step-kind]");
    if (!select) return;
    form.querySelectorAll(".step-field[data-kinds]").forEach(function (part) {
      var kinds = part.getAttribute("data-kinds").split(" ");
      part.hidden = kinds.indexOf(select.value) === -1;
    });
  }
  function wire(root) {
    root.querySelectorAll("form.add-step").forEach(function (form) {
      var select = form.querySelector("[data-step-kind]");
      if (!select || select.dataset.wired) return;
      select.dataset.wired = "1";
      select.addEventListener("change", function () { sync(form); });
      sync(form);
    });
  }
  wire(document);
  document.body.addEventListener("htmx:afterSettle", function () { wire(document); });
})();
