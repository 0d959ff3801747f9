// Column sorting and row filters for the leaderboard tables. First-party, no dependencies; text only.
"use strict";
(function () {
  function cellValue(row, col) {
    var cell = row.cells[col];
    if (!cell) return null;
    var v = cell.getAttribute("data-v");
    if (v === null || v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortTable(table, th) {
    var col = th.cellIndex, asc = !th.classList.contains("sorted-asc");
    table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.querySelectorAll("tr.row"));
    rows.sort(function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col);
      if (x === y) return 0;
      if (x === null) return 1;  // missing values last in either direction
      if (y === null) return -1;
      return (x < y ? -1 : 1) * (asc ? 1 : -1);
    });
    body.querySelectorAll("tr.tier").forEach(function (t) { t.hidden = true; });  // a sort replaces tier order
    rows.forEach(function (r) { body.appendChild(r); });
    table.setAttribute("data-sorted", "1");
  }
  function applyFilters(box) {
    var table = document.getElementById(box.getAttribute("data-for"));
    if (!table) return;
    var text = (box.querySelector("[data-filter=text]") || {}).value || "";
    var kind = (box.querySelector("[data-filter=kind]") || {}).value || "all";
    text = text.trim().toLowerCase();
    var shown = 0;
    table.querySelectorAll("tbody tr.row").forEach(function (r) {
      var name = (r.getAttribute("data-name") || "").toLowerCase();
      var control = r.getAttribute("data-control") === "1";
      var ok = (!text || name.indexOf(text) >= 0) &&
               (kind === "all" || (kind === "policies" && !control) || (kind === "controls" && control));
      r.hidden = !ok;
      if (ok) shown += 1;
    });
    var count = box.querySelector("[data-count]");
    if (count) count.textContent = shown + " shown";
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table[data-sortable] th.sortable").forEach(function (th) {
      th.addEventListener("click", function () { sortTable(th.closest("table"), th); });
    });
    document.querySelectorAll(".filters[data-for]").forEach(function (box) {
      box.querySelectorAll("input, select").forEach(function (el) {
        el.addEventListener("input", function () { applyFilters(box); });
        el.addEventListener("change", function () { applyFilters(box); });
      });
      applyFilters(box);
    });
  });
})();
