// Keyboard shortcuts and the help dialog for the review UI. Each page lists the keys it handles
// in its footer (web/pages.py *_KEYS); this file implements them. No dependencies, no inline JS.
(function () {
  "use strict";
  function typing(e) {
    var t = e.target;
    if (!t) return false;
    if (t.tagName === "INPUT" && /^(checkbox|radio|submit|button)$/.test(t.type)) return false;
    return t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName);
  }
  function go(link) {
    if (link) { window.location.href = link.href; return true; }
    return false;
  }
  function submit(action) {
    var form = document.querySelector('form[data-action="' + action + '"]');
    if (!form) return false;
    var required = form.querySelector("input[required]");
    if (required && !required.value) { required.focus(); return true; }
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
    return true;
  }
  var help = document.getElementById("help");
  function showHelp() {
    if (!help) return false;
    if (!help.open) help.showModal();
    return true;
  }
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-item]"));
  var index = -1;
  function select(i) {
    if (!items.length) return;
    index = Math.max(0, Math.min(items.length - 1, i));
    items.forEach(function (el, j) { el.classList.toggle("selected", j === index); });
    items[index].scrollIntoView({ block: "nearest" });
    items[index].querySelector("a").focus();
  }
  items.forEach(function (el, j) {
    el.addEventListener("focusin", function () {
      index = j;
      items.forEach(function (other, k) { other.classList.toggle("selected", k === j); });
    });
  });
  var bulk = document.querySelector("form[data-bulk]");
  function bulkAction(action) {
    if (!bulk) return false;
    var ticked = bulk.querySelectorAll("[data-tick]:checked");
    if (!ticked.length) {
      if (index < 0) return false;
      items[index].querySelector("[data-tick]").checked = true;
    }
    var button = bulk.querySelector('[data-bulk-action="' + action + '"]');
    if (bulk.requestSubmit) bulk.requestSubmit(button); else button.click();
    return true;
  }
  var all = document.querySelector("[data-select-all]");
  if (all && bulk) {
    all.addEventListener("change", function () {
      bulk.querySelectorAll("[data-tick]").forEach(function (box) { box.checked = all.checked; });
    });
  }
  function onCapability(key) {
    if (key === "a") return submit("approve");
    if (key === "r") {
      var note = document.querySelector("[data-reject-note]");
      if (note && !note.value) { note.focus(); note.placeholder = "reason, then Enter"; return true; }
      return submit("reject");
    }
    if (key === "e") {
      var edit = document.getElementById("edit");
      if (!edit) return false;
      edit.open = true;
      var f = edit.querySelector("input[name=name]");
      if (f) f.focus();
      return true;
    }
    if (key === "j" || key === "n") return go(document.querySelector("[data-next]"));
    if (key === "k" || key === "p") return go(document.querySelector("[data-prev]"));
    return false;
  }
  function onList(key) {
    if (key === "j" || key === "n") { select(index + 1); return true; }
    if (key === "k" || key === "p") { select(index - 1); return true; }
    if (key === "Enter") {
      // a focused link, button or checkbox keeps its own Enter
      var active = document.activeElement;
      if (index < 0 || (active && /^(A|BUTTON|INPUT)$/.test(active.tagName))) return false;
      return go(items[index].querySelector("a"));
    }
    if (!bulk) return false;
    if (key === "x" && index >= 0) {
      var box = items[index].querySelector("[data-tick]");
      box.checked = !box.checked;
      return true;
    }
    if (key === "a") return bulkAction("approve");
    if (key === "r") return bulkAction("reject");
    if (key === "e" && index >= 0) {
      window.location.href = items[index].querySelector("a").href + "#edit";
      return true;
    }
    return false;
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    if (help && help.open) return; // the dialog handles Esc and its own focus
    var key = e.key;
    var done = false;
    if (key === "?") done = showHelp();
    else if (key === "/") {
      var search = document.querySelector("[data-search]");
      if (search) { search.focus(); done = true; } else { window.location.href = "/search"; done = true; }
    } else if (document.querySelector("[data-capability]")) done = onCapability(key);
    else if (items.length) done = onList(key);
    if (done) e.preventDefault();
  });
  if (window.location.hash === "#edit") {
    var edit = document.getElementById("edit");
    if (edit) edit.open = true;
  }
})();
