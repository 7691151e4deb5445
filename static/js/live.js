// Live incident list: reload the table region when an incident event arrives; reconnect with backoff.
(function () {
  const table = document.getElementById("active-incidents");
  if (!table) return;
  let delay = 500;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/incidents/");
    ws.onopen = () => { delay = 500; };
    ws.onmessage = (msg) => {
      const event = JSON.parse(msg.data).event;
      if (event === "incident.created" || event === "incident.updated") refresh();
    };
    ws.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 10000); refresh(); };
  }
  async function refresh() {
    const response = await fetch(location.href, { headers: { "X-Requested-With": "fetch" } });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("active-incidents");
    if (fresh) table.replaceChildren(...fresh.childNodes);
  }
  connect();
})();
