// oberon up --dev: reload the page when the dev server swapped in a change or found a new error.
(function () {
  "use strict";
  var script = document.currentScript;
  var generation = script ? script.getAttribute("data-generation") : null;
  if (generation === null || !window.fetch) {
    return;
  }
  var KEY = "oberon-dev-reloaded-for";
  var since = generation;
  var reloadedFor = null;
  try {
    reloadedFor = window.sessionStorage.getItem(KEY);
  } catch (error) {
    // storage may be off; then a cached copy (a CDN in front) can reload more than once
  }
  if (reloadedFor !== null && Number(reloadedFor) > Number(generation)) {
    since = reloadedFor; // a cached copy older than what was reloaded for: wait for the next change, do not loop
  }
  function poll() {
    fetch("/_oberon/dev/changes?since=" + encodeURIComponent(since), { cache: "no-store" })
      .then(function (response) {
        return response.json();
      })
      .then(
        function (body) {
          if (String(body.generation) !== since) {
            try {
              window.sessionStorage.setItem(KEY, String(body.generation));
            } catch (error) {
              // see above
            }
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
