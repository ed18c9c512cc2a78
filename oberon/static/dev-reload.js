// oberon up --dev: reload the page when the dev server swapped in a change or found a new error.
(function () {
  "use strict";
  var script = document.currentScript;
  var generation = script ? script.getAttribute("data-generation") : null;
  if (generation === null || !window.fetch) {
    return;
  }
  function poll() {
    fetch("/_oberon/dev/changes?since=" + encodeURIComponent(generation), { cache: "no-store" })
      .then(function (response) {
        return response.json();
      })
      .then(
        function (body) {
          if (String(body.generation) !== generation) {
            window.location.reload();
          } else {
            poll();
          }
        },
        function () {
          window.setTimeout(poll, 2000); // the dev server is restarting or gone: try again later
        }
      );
  }
  poll();
})();
