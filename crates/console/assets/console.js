// The console's own script (no framework beyond the vendored htmx):
// - live updates: one EventSource on the session's change feed; every event is re-dispatched
//   on <body> as `hp-event`, which the live regions (hx-trigger="hp-event from:body") listen to;
// - confirmations: a form with data-confirm asks before it is sent.
(function () {
  "use strict";
  var url = document.body && document.body.dataset.live;
  if (url && window.EventSource) {
    var source = new EventSource(url);
    source.onmessage = function (e) {
      var detail = null;
      try { detail = JSON.parse(e.data); } catch (_) { /* a comment or keep-alive */ }
      document.body.dispatchEvent(new CustomEvent("hp-event", { detail: detail }));
    };
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form && form.dataset && form.dataset.confirm;
    if (question && !window.confirm(question)) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);
})();
