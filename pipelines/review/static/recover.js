// cvops review page: the error page's one key. R (or Enter on the focused link) loads the queue with a GET, so a
// refused form is never sent again; the link works without this script.
(function () {
  "use strict";

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    var link = document.getElementById("recover");
    if (link && (event.key === "r" || event.key === "R")) {
      event.preventDefault();
      window.location.assign(link.href);
    }
  });
}());
