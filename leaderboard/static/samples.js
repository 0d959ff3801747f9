// The sample browser: search and filter the index, then load the texts of the prompts on screen only
// (one script file per prompt: pages opened from disk cannot fetch()). Every model text is set as textContent.
"use strict";
window.BENCH_SAMPLES = (function () {
  var root = null, index = null, texts = {}, waiting = {}, page = 0, PAGE = 10;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function verdict(pref) {
    if (pref === null || pref === undefined) return "none";
    return pref > 0.5 ? "win" : (pref < 0.5 ? "loss" : "tie");
  }
  function load(i, done) {
    if (texts[i]) return done();
    if (waiting[i]) return waiting[i].push(done);
    waiting[i] = [done];
    var s = document.createElement("script");
    s.src = root.getAttribute("data-dir") + "p" + i + ".js";
    s.onerror = function () { texts[i] = {error: true}; var w = waiting[i]; delete waiting[i]; w.forEach(function (f) { f(); }); };
    document.head.appendChild(s);
  }
  function value(id) { var e = document.getElementById(id); return e ? e.value : ""; }
  function matching() {
    var q = value("s-search").trim().toLowerCase(), m = value("s-method"), v = value("s-verdict");
    var lo = value("s-minlen") === "" ? null : Number(value("s-minlen"));
    var hi = value("s-maxlen") === "" ? null : Number(value("s-maxlen"));
    var sets = [];
    index.sets.forEach(function (s, k) { if (!m || s.method === m) sets.push(k); });
    var out = [];
    index.prompts.forEach(function (p, i) {
      if (q && p.instruction.toLowerCase().indexOf(q) < 0 && String(p.id).toLowerCase().indexOf(q) < 0) return;
      var any = sets.some(function (k) {
        var len = p.len[k];
        if (len === null) return false;
        if (v && verdict(p.pref[k]) !== v) return false;
        if (lo !== null && len < lo) return false;
        if (hi !== null && len > hi) return false;
        return true;
      });
      if (any) out.push(i);
    });
    return out;
  }
  function answer(label, cls, meta, text) {
    var box = el("div", "answer " + cls);
    box.appendChild(el("div", "meta", label + " · " + meta));
    box.appendChild(el("div", "text", text));
    return box;
  }
  function card(i) {
    var p = index.prompts[i], t = texts[i], box = el("div", "sample");
    box.setAttribute("data-prompt", p.id);
    box.appendChild(el("div", "meta", "prompt " + p.id));
    box.appendChild(el("h4", null, p.instruction));
    var grid = el("div", "answers");
    if (!t) { grid.appendChild(el("p", "empty", "loading…")); }
    else if (t.error) { grid.appendChild(el("p", "neg", "the texts of this prompt could not be loaded")); }
    else {
      grid.appendChild(answer("reference", "reference", p.ref_len + " chars", t.reference));
      var m = value("s-method");
      index.sets.forEach(function (s, k) {
        if (t.outputs[k] === null) return;
        var pref = p.pref[k], v = verdict(pref);
        var meta = (t.failed[k] ? "no verdict (judge failed)" : v + (pref !== null && pref !== 0 && pref !== 0.5 && pref !== 1 ? " (P " + pref.toFixed(2) + ")" : "")) + " · " + p.len[k] + " chars";
        var a = answer(s.label, v, meta, t.outputs[k]);
        if (m && s.method === m) grid.insertBefore(a, grid.children[1] || null); else grid.appendChild(a);
      });
    }
    box.appendChild(grid);
    return box;
  }
  function render() {
    var list = document.getElementById("s-list"), hits = matching();
    var pages = Math.max(1, Math.ceil(hits.length / PAGE));
    page = Math.min(page, pages - 1);
    var shown = hits.slice(page * PAGE, page * PAGE + PAGE);
    document.getElementById("s-count").textContent = hits.length + " of " + index.prompts.length +
      " prompts match · page " + (page + 1) + " of " + pages;
    document.getElementById("s-prev").disabled = page === 0;
    document.getElementById("s-next").disabled = page >= pages - 1;
    list.textContent = "";
    shown.forEach(function (i) {
      var slot = card(i);
      list.appendChild(slot);
      load(i, function () { var fresh = card(i); if (slot.parentNode) { slot.parentNode.replaceChild(fresh, slot); slot = fresh; } });
    });
  }
  function setup() {
    var select = document.getElementById("s-method");
    var methods = [];
    index.sets.forEach(function (s) { if (methods.indexOf(s.method) < 0) methods.push(s.method); });
    methods.forEach(function (m) { var o = el("option", null, m); o.value = m; select.appendChild(o); });
    ["s-search", "s-method", "s-verdict", "s-minlen", "s-maxlen"].forEach(function (id) {
      var e = document.getElementById(id);
      e.addEventListener("input", function () { page = 0; render(); });
      e.addEventListener("change", function () { page = 0; render(); });
    });
    document.getElementById("s-prev").addEventListener("click", function () { page -= 1; render(); });
    document.getElementById("s-next").addEventListener("click", function () { page += 1; render(); });
  }
  return {
    index: function (data) {
      root = document.getElementById("samples");
      index = data;
      setup();
      render();
    },
    prompt: function (i, data) {
      texts[i] = data;
      var w = waiting[i] || [];
      delete waiting[i];
      w.forEach(function (f) { f(); });
    }
  };
})();
