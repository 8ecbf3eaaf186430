// The run view's live part: the server sends it re-rendered, as a "run" event, whenever the run's
// events table moved on (web/live.py). The browser's own EventSource reconnects after each stream
// ends, with its Last-Event-ID; a 204 (the run ended and everything was shown) ends it for good.
// After an error that closed the stream (the server restarted), it starts again after what it saw.
(function () {
  function follow(holder, after) {
    var source = new EventSource(holder.dataset.live + "?after=" + after);
    source.addEventListener("run", function (event) {
      after = event.lastEventId || after;
      var current = document.getElementById("run-live");
      var fresh = document.createElement("div");
      fresh.innerHTML = event.data;
      var replacement = fresh.firstElementChild;
      current.replaceWith(replacement);
      if (window.htmx) window.htmx.process(replacement);
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED && holder.isConnected && !holder.dataset.ended) {
        // A 204 also lands here: the next request answers 204 again at once and ends the page's asking.
        window.setTimeout(function () { probe(holder, after); }, 2000);
      }
    };
  }
  function probe(holder, after) {
    fetch(holder.dataset.live + "?after=" + after, { headers: { Accept: "text/event-stream" } })
      .then(function (answer) {
        if (answer.body) answer.body.cancel();
        if (answer.status === 204) holder.dataset.ended = "yes";
        else follow(holder, after);
      })
      .catch(function () { window.setTimeout(function () { probe(holder, after); }, 2000); });
  }
  // "Copy" beside a node's response, code and attempts: the text of the element it names.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var text = document.getElementById(button.dataset.copy).textContent;
    navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (holder) {
      follow(holder, holder.dataset.after || "0");
    });
  });
})();
