// The queue's live updates: the server says (server-sent events) when the first page of this query changed;
// the table body is fetched again unless alerts are checked for a bulk action. Without JavaScript the page
// still works (reload); with it nothing else changes. No inline script: the CSP allows this file only.
(function () {
  "use strict";
  var table = document.querySelector("table.queue[data-events]");
  if (!table || !window.EventSource || !window.fetch) { return; }
  var body = table.querySelector("tbody");
  var status = document.getElementById("live");
  var source = new EventSource(table.getAttribute("data-events"));
  function say(text) { if (status) { status.hidden = false; status.textContent = text; } }
  source.addEventListener("hello", function () { say("Live: the queue updates as alerts arrive."); });
  source.addEventListener("queue", function () {
    if (table.querySelector("tbody input[type=checkbox]:checked")) {
      say("The queue changed: reload to see it (kept as is while alerts are checked).");
      return;
    }
    fetch(table.getAttribute("data-rows"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { body.innerHTML = html; say("Live: updated " + new Date().toLocaleTimeString() + "."); })
      .catch(function () { say("Live updates paused: reload the page."); });
  });
  source.onerror = function () { say("Live updates reconnecting…"); };
})();
