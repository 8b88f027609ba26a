// The block editor: arranges blocks and fills in their fields, nothing more. The document it
// keeps in the (hidden) body field is JSON; the server checks it, turns it into MJML and
// compiles that to the HTML that is sent (templates/blocks.py). No HTML is produced here.
(function () {
  "use strict";
  const editor = document.querySelector("[data-block-editor]");
  const source = document.getElementById("id_html");
  const templates = document.getElementById("block-templates");
  if (!editor || !source || !templates) return;
  const canvas = editor.querySelector(".block-canvas");
  const dropzone = canvas.querySelector("[data-dropzone]");
  const status = editor.querySelector(".block-status");
  const defaults = JSON.parse(editor.dataset.defaults || "{}");
  const NEW = "application/x-posthorn-new-block";
  const MOVE = "application/x-posthorn-move-block";
  let dragged = null;

  const cards = () => Array.from(canvas.querySelectorAll(":scope > .block-card"));
  const ownFields = (card) =>
    Array.from(card.querySelectorAll("[data-field]")).filter((el) => !el.closest("[data-column]"));

  // --- the media library: image fields offer its images ---
  function libraryImages() {
    return Array.from(document.querySelectorAll("#media-panel .media-item")).map((item) => ({
      url: item.dataset.mediaUrl,
      name: item.dataset.mediaName,
    }));
  }

  function fillMediaSelect(select, value) {
    const current = value !== undefined ? value : select.value;
    const first = select.options[0];
    select.replaceChildren(first);
    const images = libraryImages();
    images.forEach((image) => select.add(new Option(image.name, image.url)));
    if (current && !images.some((image) => image.url === current)) {
      select.add(new Option("Current image", current));
    }
    select.value = current || "";
  }

  function refreshMediaSelects() {
    editor.ownerDocument.querySelectorAll(".block-canvas .media-select").forEach((s) => fillMediaSelect(s));
  }

  // --- blocks to cards and back ---
  function setValue(el, value) {
    if (value === undefined || value === null) return;
    if (el.classList.contains("media-select")) fillMediaSelect(el, String(value));
    else el.value = String(value);
  }

  function valueOf(el) {
    if (el.hasAttribute("data-number")) return Number(el.value) || 0;
    return el.value;
  }

  function columnFor(data) {
    const column = templates.content.querySelector("[data-column-template]").cloneNode(true);
    column.removeAttribute("data-column-template");
    column.setAttribute("data-column", "");
    column.querySelectorAll("[data-field]").forEach((el) => setValue(el, (data || {})[el.dataset.field]));
    return column;
  }

  function cardFor(block) {
    const model = templates.content.querySelector(`[data-block-type="${block.type}"]`);
    if (!model) throw new Error("unknown block type " + block.type);
    const card = model.cloneNode(true);
    if (block.type === "columns") {
      const holder = card.querySelector(".columns-holder");
      const columns = block.columns && block.columns.length ? block.columns : [{}, {}];
      holder.classList.add(`columns-${columns.length}`);
      columns.forEach((column, index) => {
        const element = columnFor(column);
        element.querySelector("legend").textContent = `Column ${index + 1}`;
        holder.append(element);
      });
    }
    ownFields(card).forEach((el) => setValue(el, block[el.dataset.field]));
    return card;
  }

  function newBlock(type, columns) {
    const block = JSON.parse(JSON.stringify(defaults[type] || {}));
    block.type = type;
    if (type === "columns") {
      block.columns = Array.from({ length: Number(columns) || 2 }, (_, n) => ({
        heading: `Column ${n + 1}`,
        text: "A few words.",
      }));
    }
    return block;
  }

  function serialize() {
    const blocks = cards().map((card) => {
      const block = { type: card.dataset.blockType };
      ownFields(card).forEach((el) => (block[el.dataset.field] = valueOf(el)));
      if (block.type === "columns") {
        block.columns = Array.from(card.querySelectorAll("[data-column]")).map((column) => {
          const data = {};
          column.querySelectorAll("[data-field]").forEach((el) => (data[el.dataset.field] = valueOf(el)));
          return data;
        });
      }
      return block;
    });
    source.value = JSON.stringify({ blocks: blocks }, null, 1);
    status.textContent = `${blocks.length} block${blocks.length === 1 ? "" : "s"}. The preview is compiled on the server.`;
    // The preview and checks listen for input on the form.
    source.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function load() {
    let document_;
    try {
      document_ = JSON.parse(source.value || '{"blocks": []}');
    } catch (error) {
      status.textContent = "The block document could not be read: " + error.message;
      return;
    }
    (document_.blocks || []).forEach((block) => {
      try {
        canvas.insertBefore(cardFor(block), dropzone);
      } catch (error) {
        status.textContent = error.message;
      }
    });
    status.textContent = `${cards().length} blocks.`;
  }

  // --- adding, moving, removing ---
  function insert(card, before) {
    canvas.insertBefore(card, before && before.parentNode === canvas ? before : dropzone);
    serialize();
  }

  editor.querySelectorAll("[data-add-block]").forEach((item) => {
    const add = () => insert(cardFor(newBlock(item.dataset.addBlock, item.dataset.columns)));
    item.addEventListener("click", add);
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        add();
      }
    });
    item.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData(NEW, `${item.dataset.addBlock}:${item.dataset.columns || ""}`);
      event.dataTransfer.effectAllowed = "copy";
    });
  });

  canvas.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const card = button.closest(".block-card");
    const action = button.dataset.action;
    if (action === "remove") card.remove();
    else if (action === "up" && card.previousElementSibling) canvas.insertBefore(card, card.previousElementSibling);
    else if (action === "down" && card.nextElementSibling && card.nextElementSibling !== dropzone)
      canvas.insertBefore(card.nextElementSibling, card);
    serialize();
  });

  canvas.addEventListener("dragstart", (event) => {
    const handle = event.target.closest && event.target.closest(".drag-handle");
    if (!handle) return;
    dragged = handle.closest(".block-card");
    event.dataTransfer.setData(MOVE, "1");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setDragImage(dragged, 10, 10);
    dragged.classList.add("dragging");
  });

  canvas.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    clearMarks();
  });

  // The card the drop goes before: the first whose middle is below the pointer.
  function dropBefore(y) {
    return cards().find((card) => {
      const box = card.getBoundingClientRect();
      return y < box.top + box.height / 2;
    });
  }

  function clearMarks() {
    canvas.querySelectorAll(".drop-before").forEach((el) => el.classList.remove("drop-before"));
  }

  canvas.addEventListener("dragover", (event) => {
    const types = Array.from(event.dataTransfer.types);
    if (!types.includes(NEW) && !types.includes(MOVE)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = types.includes(NEW) ? "copy" : "move";
    clearMarks();
    (dropBefore(event.clientY) || dropzone).classList.add("drop-before");
  });

  canvas.addEventListener("dragleave", (event) => {
    if (!canvas.contains(event.relatedTarget)) clearMarks();
  });

  canvas.addEventListener("drop", (event) => {
    event.preventDefault();
    clearMarks();
    const before = event.target.closest("[data-dropzone]") ? null : dropBefore(event.clientY);
    const added = event.dataTransfer.getData(NEW);
    if (added) {
      const [type, columns] = added.split(":");
      insert(cardFor(newBlock(type, columns)), before);
    } else if (dragged && before !== dragged) {
      insert(dragged, before);
    }
  });

  // Typing in a block's fields updates the document (before the form's own listeners run).
  canvas.addEventListener("input", (event) => {
    if (event.target.matches("[data-field]")) serialize();
  });
  canvas.addEventListener("change", (event) => {
    if (event.target.matches("[data-field]")) serialize();
  });

  // The library panel loads (and reloads after an upload) through htmx.
  document.body.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target && event.detail.target.id === "media-panel") refreshMediaSelects();
  });

  load();
})();
