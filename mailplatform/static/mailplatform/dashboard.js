// The dashboard's own script (a static file: the pages' Content-Security-Policy allows no inline
// script). Without it every page still works: the phone menu simply stays open.
(function () {
  "use strict";
  document.body.classList.remove("no-js");

  // Phone width: the main menu folds behind one button instead of taking the top of every page.
  var toggle = document.querySelector(".menu-toggle");
  var shell = document.querySelector(".sidebar");
  if (toggle && shell) {
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      shell.classList.toggle("menu-open", open);
    });
  }

  // A part of a form that only matters while a checkbox is ticked (data-shown-by="<checkbox id>").
  document.querySelectorAll("[data-shown-by]").forEach(function (part) {
    var box = document.getElementById(part.getAttribute("data-shown-by"));
    if (!box) return;
    var sync = function () { part.hidden = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  });
})();
