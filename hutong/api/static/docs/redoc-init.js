// Hutong's ReDoc initialiser (a file so that the page needs no inline script).
window.addEventListener("load", function () {
  Redoc.init(document.body.dataset.openapi, {}, document.getElementById("redoc"));
});
