// Small behaviours of every page, kept out of the HTML so the Content-Security-Policy needs no
// inline script: a [data-back] link goes back in history when there is one.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[data-back]");
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
