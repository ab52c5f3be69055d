// Live conversation: messages arrive by server-sent events (the platform's event stream behind
// them), with a fall-back to polling when EventSource is missing or keeps failing. The composer
// posts through fetch when it can and as an ordinary form otherwise. No inline script or style.
(function () {
  "use strict";
  var list = document.getElementById("messages");
  if (!list) { return; }
  var item = list.getAttribute("data-item");
  var me = list.getAttribute("data-me");
  var last = Number(list.getAttribute("data-after") || "0");
  var state = document.getElementById("live-state");
  var base = "/api/consult/items/" + encodeURIComponent(item);
  var failures = 0;
  var polling = null;
  var leaving = false;  // a form is being posted: its answer, not a reload, decides the next page
  document.addEventListener("submit", function (ev) {
    if (!ev.defaultPrevented) { leaving = true; }
  });
  window.addEventListener("beforeunload", function () { leaving = true; });

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function add(msg) {
    if (!msg || typeof msg.seq !== "number" || msg.seq <= last) { return; }
    last = msg.seq;
    var li = document.createElement("li");
    li.className = "msg" + (msg.sender === me ? " msg-mine" : "");
    li.setAttribute("data-seq", String(msg.seq));
    var p = document.createElement("p");
    p.className = "msg-text";
    p.textContent = msg.text || "";
    li.appendChild(p);
    (msg.attachments || []).forEach(function (_a, i) {
      var a = document.createElement("p");
      a.className = "msg-att";
      a.textContent = "📎 " + (i + 1);
      li.appendChild(a);
    });
    var meta = document.createElement("p");
    meta.className = "msg-meta";
    var d = new Date(msg.at);
    meta.textContent = pad(d.getHours()) + ":" + pad(d.getMinutes());
    li.appendChild(meta);
    list.appendChild(li);
    li.scrollIntoView({ block: "end" });
    document.body.setAttribute("data-last-message", String(last));
  }

  function show(text) {
    if (!state) { return; }
    state.hidden = !text;
    state.textContent = text || "";
  }

  function poll() {
    fetch(base + "/messages?after=" + last, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (msgs) { msgs.forEach(add); })
      .catch(function () {});
  }

  function startPolling() {
    if (polling) { return; }
    document.body.setAttribute("data-live", "poll");
    show(list.getAttribute("data-poll-text") || "");
    poll();
    polling = window.setInterval(poll, 3000);
  }

  function startStream() {
    if (!window.EventSource) { startPolling(); return; }
    var es = new EventSource(base + "/events?after=" + last);
    es.addEventListener("open", function () {
      failures = 0;
      document.body.setAttribute("data-live", "sse");
      show("");
    });
    es.addEventListener("message", function (e) {
      try { add(JSON.parse(e.data)); } catch (err) { /* a broken frame: the next poll or replay fills it */ }
    });
    es.addEventListener("status", function () {
      // The consultation moved (accepted, closed, escalated): reload to show the new forms.
      es.close();
      if (!leaving) { window.location.reload(); }
    });
    es.addEventListener("error", function () {
      failures += 1;
      if (failures >= 3) { es.close(); startPolling(); }
    });
  }

  var form = document.querySelector("form[data-live-form]");
  if (form && window.fetch) {
    form.addEventListener("submit", function (ev) {
      var files = form.querySelector("input[type=file]");
      if (files && files.files && files.files.length) { return; }  // photos: the ordinary form post
      var box = form.querySelector("textarea[name=text]");
      var text = box ? box.value.trim() : "";
      if (!text) { ev.preventDefault(); return; }
      ev.preventDefault();
      var headers = { "Content-Type": "application/json", "Accept": "application/json" };
      var csrf = form.querySelector("input[name=csrf_token]");
      if (csrf) { headers["X-CSRF-Token"] = csrf.value; }
      fetch(base + "/messages", { method: "POST", credentials: "same-origin", headers: headers,
                                  body: JSON.stringify({ text: text }) })
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.json();
        })
        .then(function (msg) { box.value = ""; add(msg); })
        .catch(function () { form.submit(); });
    });
  }

  startStream();
}());
