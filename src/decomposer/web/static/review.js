// Keyboard shortcuts for the review UI: a approve, r reject, e edit, j/n next, k/p previous.
// Served by the app itself; no dependencies.
(function () {
  "use strict";
  function typing(e) {
    var t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function submit(action) {
    var form = document.querySelector('form[data-action="' + action + '"]');
    if (!form) return false;
    var required = form.querySelector("input[required]");
    if (required && !required.value) { required.focus(); return true; }
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
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
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    var key = e.key;
    var onCapability = !!document.querySelector("[data-capability]");
    if (onCapability) {
      if (key === "a" && submit("approve")) { e.preventDefault(); return; }
      if (key === "r") {
        var note = document.querySelector("[data-reject-note]");
        if (note && !note.value) { e.preventDefault(); note.focus(); note.placeholder = "reason, then Enter"; return; }
        if (submit("reject")) { e.preventDefault(); return; }
      }
      if (key === "e") {
        var edit = document.getElementById("edit");
        if (edit) { e.preventDefault(); edit.open = true; var f = edit.querySelector("input[name=name]"); if (f) f.focus(); }
        return;
      }
      if (key === "j" || key === "n") {
        var next = document.querySelector("[data-next]");
        if (next) { e.preventDefault(); window.location.href = next.href; }
        return;
      }
    } else if (items.length) {
      if (key === "j" || key === "n") { e.preventDefault(); select(index + 1); return; }
      if (key === "k" || key === "p") { e.preventDefault(); select(index - 1); return; }
      if (key === "Enter" && index >= 0) { e.preventDefault(); window.location.href = items[index].querySelector("a").href; return; }
    }
    if (key === "?") { alert("a approve · r reject · e edit · j/n next · k/p previous · Enter open"); }
  });
})();
