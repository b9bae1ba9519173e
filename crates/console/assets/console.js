// The console's own script (no framework beyond the vendored htmx):
// - live updates: one EventSource on the session's change feed; every event is re-dispatched
//   on <body> as `hp-event`, which the live regions (hx-trigger="hp-event from:body") listen to;
// - confirmations: a form with data-confirm asks before it is sent.
(function () {
  "use strict";
  // The stream is closed when the page is left: a browser opens at most six connections to a
  // host, and a page kept in the back/forward cache would otherwise hold its stream open.
  var url = document.body && document.body.dataset.live;
  var source = null;
  function open() {
    if (!url || !window.EventSource || source) return;
    source = new EventSource(url);
    source.onmessage = function (e) {
      var detail = null;
      try { detail = JSON.parse(e.data); } catch (_) { /* not JSON: nothing to pass on */ }
      document.body.dispatchEvent(new CustomEvent("hp-event", { detail: detail }));
    };
  }
  function close() {
    if (source) { source.close(); source = null; }
  }
  open();
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", open);
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form && form.dataset && form.dataset.confirm;
    if (question && !window.confirm(question)) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);
})();
