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

  // A table (or chart) wider than a phone scrolls in its own box; the keyboard must reach that box
  // to scroll it, so a box that overflows gets a tab stop (and loses it when it fits again).
  var scrollables = ".content table, .content .table-wrap, .content .card";
  function markScrollables() {
    document.querySelectorAll(scrollables).forEach(function (box) {
      var wide = box.scrollWidth > box.clientWidth + 1 && getComputedStyle(box).overflowX !== "visible";
      if (wide && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroll-stop", "");
      } else if (!wide && box.hasAttribute("data-scroll-stop")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-stop");
      }
    });
  }
  markScrollables();
  window.addEventListener("resize", markScrollables);
  document.body.addEventListener("htmx:afterSettle", markScrollables);

  // A part of a form that only matters while a checkbox is ticked (data-shown-by="<checkbox id>").
  document.querySelectorAll("[data-shown-by]").forEach(function (part) {
    var box = document.getElementById(part.getAttribute("data-shown-by"));
    if (!box) return;
    var sync = function () { part.hidden = !box.checked; };
    box.addEventListener("change", sync);
    sync();
  });

  // A form that asks before it does something that cannot be undone (data-confirm="question").
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // The relay form: suggest the security that usually goes with a port; the admin can still choose.
  document.querySelectorAll("form[data-suggest-security]").forEach(function (form) {
    var port = form.querySelector("#id_port"), security = form.querySelector("#id_security");
    if (!port || !security) return;
    port.addEventListener("change", function () {
      var suggested = {"465": "tls", "25": "starttls", "587": "starttls", "2525": "starttls"}[port.value];
      if (suggested) security.value = suggested;
    });
  });
})();

// A key derived from a label as it is typed (data-key-from="<label input id>"), until the person
// types a key of their own: "Loyalty Points" -> loyalty_points (the server derives the same).
(function () {
  "use strict";
  document.querySelectorAll("[data-key-from]").forEach(function (key) {
    var label = document.getElementById(key.getAttribute("data-key-from"));
    if (!label || key.disabled) return;
    var own = key.value !== "";
    key.addEventListener("input", function () { own = key.value !== ""; });
    label.addEventListener("input", function () {
      if (own) return;
      key.value = label.value.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
        .replace(/[^a-z0-9\s_-]/g, "").trim().replace(/[\s-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 64);
    });
  });
})();
