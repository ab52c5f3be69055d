// Resident health-card page: fetches a fresh signed code and refreshes it before it expires.
// No external assets; the holder token comes from the URL fragment (#t=...) and stays in this browser.
(function () {
  "use strict";
  var root = document.getElementById("card");
  var cardId = root.getAttribute("data-card-id");
  var qrBox = document.getElementById("qr");
  var countdown = document.getElementById("countdown");
  var message = document.getElementById("message");
  var storeKey = "hutong-card-token:" + cardId;
  var token = null;
  var expiresAt = 0;
  var timer = null;
  var tick = null;

  var m = /(?:^#|&)t=([^&]+)/.exec(window.location.hash || "");
  try {
    if (m) {
      token = decodeURIComponent(m[1]);
      window.localStorage.setItem(storeKey, token);
      history.replaceState(null, "", window.location.pathname + window.location.search);
    } else {
      token = window.localStorage.getItem(storeKey);
    }
  } catch (e) { token = m ? decodeURIComponent(m[1]) : null; }

  var REASONS = {
    "card-frozen": "健康卡已冻结，请联系发卡机构解冻",
    "card-revoked": "健康卡已注销",
  };

  function show(text) { message.textContent = text || ""; }

  function schedule(seconds) {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(load, Math.max(1, seconds) * 1000);
  }

  function updateCountdown() {
    if (!expiresAt) { countdown.textContent = ""; return; }  // no code yet: say nothing about expiry
    var left = Math.round(expiresAt - Date.now() / 1000);
    if (left > 0) {
      countdown.textContent = left + " 秒后自动刷新";
      qrBox.classList.remove("stale");
    } else {
      countdown.textContent = "二维码已过期";
      qrBox.classList.add("stale");
    }
  }

  function load() {
    var headers = { "Accept": "application/json" };
    if (token) { headers["X-Card-Token"] = token; }
    fetch("/api/card/cards/" + encodeURIComponent(cardId) + "/qr?embed=svg", { headers: headers, cache: "no-store" })
      .then(function (resp) {
        return resp.json().then(function (body) { return { ok: resp.ok, status: resp.status, body: body }; });
      })
      .then(function (r) {
        if (!r.ok) {
          var reason = null;
          try { reason = r.body.issue[0].details.coding[0].code; } catch (e) { reason = null; }
          // One message only: the "generating" hint, the countdown and any old code go away.
          qrBox.innerHTML = "";
          expiresAt = 0;
          updateCountdown();
          show(REASONS[reason] || (r.status === 403 ? "请使用发卡时获得的链接打开本页" : "暂时无法生成二维码"));
          if (r.status >= 500) { schedule(5); }
          return;
        }
        show("");
        qrBox.innerHTML = r.body.svg;
        qrBox.setAttribute("data-qr-text", r.body.qr_text);
        qrBox.setAttribute("data-expires-at", r.body.expires_at);
        qrBox.setAttribute("data-refreshes", String(Number(qrBox.getAttribute("data-refreshes") || "0") + 1));
        expiresAt = Date.now() / 1000 + r.body.expires_in;
        updateCountdown();
        // Refresh a little before expiry so the code on screen is always valid when scanned.
        var lead = Math.min(10, Math.max(1, Math.floor(r.body.ttl / 6)));
        schedule(r.body.expires_in - lead);
      })
      .catch(function () {
        show("网络不可用，正在重试…");
        schedule(5);
      });
  }

  document.getElementById("refresh").addEventListener("click", load);
  tick = setInterval(updateCountdown, 1000);
  load();
})();
