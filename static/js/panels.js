// Incident page panels: evidence tabs and "copy the query" buttons. Both survive the live swaps:
// a region fetched again after an event comes back with the server's default tab, and the tab this
// browser picked is put back (remembered per incident page in sessionStorage).
(function () {
  "use strict";
  const KEY = "rs-tab:" + location.pathname + ":";

  function select(list, name, remember) {
    const tabs = list.querySelectorAll('[role="tab"]');
    if (![...tabs].some((t) => t.dataset.tab === name)) return;
    tabs.forEach((tab) => {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
    if (remember) { try { sessionStorage.setItem(KEY + list.dataset.tabs, name); } catch (e) { /* private mode */ } }
  }

  function restore(root) {
    (root || document).querySelectorAll("[data-tabs]").forEach((list) => {
      let name = null;
      try { name = sessionStorage.getItem(KEY + list.dataset.tabs); } catch (e) { /* ignore */ }
      if (name) select(list, name, false);
    });
  }

  document.addEventListener("click", (event) => {
    const tab = event.target.closest('[data-tabs] [role="tab"]');
    if (tab) { select(tab.closest("[data-tabs]"), tab.dataset.tab, true); return; }
    // A link to a piece of evidence in another tab (from a hypothesis) opens that tab first.
    const link = event.target.closest("a[data-evidence-kind]");
    if (link) {
      const list = document.querySelector('[data-tabs="evidence"]');
      if (list) select(list, link.dataset.evidenceKind, true);
      return;
    }
    const copy = event.target.closest("button[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.dataset.copy);
      if (!source) return;
      const done = () => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(source.textContent).then(done, () => {});
      else {  // plain http (a development server): select the text so Ctrl+C takes it
        const range = document.createRange(); range.selectNodeContents(source);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* the selection stays */ }
      }
    }
  });

  document.addEventListener("keydown", (event) => {
    const tab = event.target.closest && event.target.closest('[data-tabs] [role="tab"]');
    if (!tab || (event.key !== "ArrowRight" && event.key !== "ArrowLeft")) return;
    const tabs = [...tab.closest("[data-tabs]").querySelectorAll('[role="tab"]')];
    const next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    select(tab.closest("[data-tabs]"), next.dataset.tab, true);
    next.focus();
    event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", () => restore());
  document.body.addEventListener("htmx:load", (event) => restore(event.target));
})();
