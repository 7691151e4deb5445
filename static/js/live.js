// Live control room. One WebSocket per page (the URL is on <body data-live-url>); every event is
// re-dispatched on <body> as an htmx trigger "rs-<event>" (incident.updated -> rs-incident-updated),
// and each region declares which triggers make it fetch its server-rendered partial again. So the
// browser never renders HTML itself.
// Catching up: the page was rendered with the stream's cursor (<body data-cursor>, read before the
// page's queries). The first connection sends it in its hello, and the server's first message
// brings the events after it ("live.catchup"), dispatched like live ones: an event published
// between the render and the subscription is not lost. When the cursor cannot be served, and on
// every reconnection (events may have been lost while the server or Redis was away), the server
// answers "live.resync" and "rs-reconnected" makes every region fetch itself once.
(function () {
  "use strict";
  const body = document.body;
  const liveUrl = body.dataset.liveUrl;
  const indicator = document.getElementById("live-status");
  const MIN_DELAY = 500, MAX_DELAY = 10000, PING_EVERY = 25000, PONG_WITHIN = 10000;

  function setState(state, text) {
    body.dataset.liveState = state;  // tests and CSS read it
    if (indicator) { indicator.dataset.state = state; indicator.textContent = text; }
  }

  function dispatch(payload) {
    if (typeof payload.event !== "string") return;
    markInFlightStale();
    htmx.trigger(body, "rs-" + payload.event.replace(/\./g, "-"), payload.data || {});
  }

  function connect() {
    let delay = MIN_DELAY, pingTimer = null, pongTimer = null, socket = null;
    let cursor = body.dataset.cursor || "";  // only the first connection catches up from it

    function open() {
      setState("connecting", "connecting…");
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + liveUrl);
      socket.onopen = () => {
        delay = MIN_DELAY;
        socket.send(JSON.stringify({ type: "hello", cursor: cursor }));
        cursor = "";
        pingTimer = setInterval(ping, PING_EVERY);
      };
      socket.onmessage = (message) => {
        let payload;
        try { payload = JSON.parse(message.data); } catch (e) { return; }
        if (payload.event === "pong") { clearTimeout(pongTimer); return; }
        if (payload.event === "live.catchup") {
          (payload.events || []).forEach(dispatch);
          setState("live", "live");
          return;
        }
        if (payload.event === "live.resync") {
          markInFlightStale();
          htmx.trigger(body, "rs-reconnected");
          setState("live", "live");
          return;
        }
        dispatch(payload);
      };
      socket.onclose = () => {
        clearInterval(pingTimer); clearTimeout(pongTimer);
        setState("down", "reconnecting…");
        // Exponential backoff with jitter so a restarted server is not hit by every tab at once.
        setTimeout(open, delay + Math.random() * delay * 0.3);
        delay = Math.min(delay * 2, MAX_DELAY);
      };
    }

    // A half-open connection (laptop sleep, proxy drop) never fires onclose: ping and give up
    // on it when the pong does not come back.
    function ping() {
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: "ping" }));
      pongTimer = setTimeout(() => socket.close(), PONG_WITHIN);
    }

    open();
  }

  // An event that arrives while a region's refresh is in flight queues a second refresh on that
  // element (hx-sync "queue last") — but the first response replaces the element (outerHTML), and
  // htmx never issues a request for an element that has left the page: the queued refresh, and the
  // change it was for, would be lost until the next poll or event. So remember which regions were
  // in flight when an event came, and refresh their replacement once the swap is done.
  const stale = new Set();
  function markInFlightStale() {
    document.querySelectorAll(".region.htmx-request[id]").forEach((el) => stale.add(el.id));
  }
  body.addEventListener("htmx:afterRequest", (event) => {
    const id = event.detail.elt && event.detail.elt.id;
    if (!id || !stale.delete(id)) return;
    setTimeout(() => {  // after the swap has put the new element in place
      const fresh = document.getElementById(id);
      const url = fresh && fresh.getAttribute("hx-get");
      if (url) htmx.ajax("GET", url, { source: fresh, target: fresh, swap: "outerHTML" });
    }, 0);
  });

  // Responses htmx does not swap (403, 500, network errors) would otherwise fail silently.
  const toast = document.getElementById("toast");
  function showToast(text) {
    if (!toast) return;
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(showToast.timer);
    showToast.timer = setTimeout(() => { toast.hidden = true; }, 6000);
  }
  body.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    showToast(status === 403 ? "Your role does not allow this action." : `The request failed (HTTP ${status}).`);
  });
  body.addEventListener("htmx:sendError", () => showToast("The server cannot be reached; retrying live updates."));

  // Running clocks (ages, MTTA, MTTR): elements with data-since tick every second.
  function formatDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    const m = Math.floor(seconds % 3600 / 60), s = seconds % 60, pad = (n) => String(n).padStart(2, "0");
    if (d) return `${d}d ${pad(h)}h`;
    if (h) return `${h}h ${pad(m)}m`;
    if (m) return `${m}m ${pad(s)}s`;
    return `${s}s`;
  }
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-since]").forEach((el) => {
      const since = Date.parse(el.dataset.since);
      if (!isNaN(since)) el.textContent = formatDuration((now - since) / 1000);
    });
  }
  setInterval(tick, 1000);

  // Connect once htmx has processed the page (its DOMContentLoaded listener was added first): the
  // socket can open while the parser waits for a later script (the incident page's charts), and a
  // trigger fired before htmx set up the regions' listeners would be lost.
  if (liveUrl && window.WebSocket && window.htmx) {
    setState("connecting", "connecting…");
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
    else connect();
  } else setState("off", "");
})();
