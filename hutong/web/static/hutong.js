// Hutong pages: the little JavaScript they use. Everything here improves a page that already works
// without it: charts drawn from data-chart JSON (the fallback table stays for screen readers),
// confirmation before destructive form posts. No inline scripts or styles: a strict CSP works.
(function () {
  "use strict";
  var body = document.body;
  var maps = {};

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = reject;
      document.head.appendChild(s);
    });
  }

  function ensureMap(name) {
    if (maps[name]) { return maps[name]; }
    var url = body.getAttribute("data-geo-" + name);
    maps[name] = fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (geo) { window.echarts.registerMap(name, geo); });
    return maps[name];
  }

  function draw(el) {
    var options;
    try { options = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return Promise.resolve(); }
    var height = Number(el.getAttribute("data-height") || "300");
    el.style.height = height + "px";  // CSSOM, allowed under a CSP without 'unsafe-inline'
    // Tooltips drawn on the canvas, not as HTML with inline styles.
    if (options.tooltip) { options.tooltip.renderMode = "richText"; }
    var ready = el.getAttribute("data-map") ? ensureMap(el.getAttribute("data-map")) : Promise.resolve();
    return ready.then(function () {
      var chart = window.echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(options);
      el.parentNode.classList.add("chart-drawn");
      el.setAttribute("data-drawn", "1");
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  function drawCharts() {
    var els = document.querySelectorAll("[data-chart]");
    if (!els.length) { body.setAttribute("data-charts-ready", "0"); return; }
    var start = window.echarts ? Promise.resolve() : loadScript(body.getAttribute("data-echarts"));
    start.then(function () {
      return Promise.all(Array.prototype.map.call(els, function (el) {
        return draw(el).catch(function () { /* the fallback table stays visible */ });
      }));
    }).then(function () { body.setAttribute("data-charts-ready", String(els.length)); },
            function () { body.setAttribute("data-charts-ready", "error"); });
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest ? ev.target.closest("[data-confirm]") : null;
    if (btn && !window.confirm(btn.getAttribute("data-confirm"))) { ev.preventDefault(); }
  });

  // Links that submit the enclosing filter form when a select changes (progressive enhancement).
  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t && t.matches && t.matches("select[data-autosubmit]") && t.form) { t.form.submit(); }
  });

  drawCharts();
})();
