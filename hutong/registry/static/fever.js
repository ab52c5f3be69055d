// Fever-clinic navigation: "use my position" asks the browser for its (WGS-84) position and reloads
// the page with it. The page works without this script (choose a district).
(function () {
  "use strict";
  var btn = document.getElementById("locate");
  var status = document.getElementById("locate-status");
  if (!btn || !navigator.geolocation) { return; }
  btn.hidden = false;
  btn.addEventListener("click", function () {
    status.textContent = "…";
    navigator.geolocation.getCurrentPosition(function (pos) {
      var q = new URLSearchParams();
      q.set("lat", pos.coords.latitude.toFixed(6));
      q.set("lon", pos.coords.longitude.toFixed(6));
      document.querySelectorAll("input[name=feature]:checked").forEach(function (el) { q.append("feature", el.value); });
      window.location.assign("/fever-clinics?" + q.toString());
    }, function () {
      status.textContent = btn.getAttribute("data-error");
    }, { enableHighAccuracy: false, timeout: 10000, maximumAge: 60000 });
  });
})();
