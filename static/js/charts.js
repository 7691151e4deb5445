// Metric charts with uPlot. A chart is server data in the page, never fetched by the browser:
//   <div class="chart" data-chart='{"title": "...", "unit": "req/s",
//        "x": [epoch seconds...], "series": [{"label": "incident", "values": [...]},
//                                            {"label": "baseline", "values": [...], "dash": true}],
//        "shade": [from, to], "mark": t}'></div>   (optional shaded band and vertical line, epoch seconds)
// Evidence partials (investigation) render that; htmx:load draws charts that arrive in a swap.
(function () {
  "use strict";
  const COLORS = ["#f2495c", "#5794f2", "#73bf69", "#ff9830", "#b877d9"];

  function draw(el) {
    if (el.dataset.drawn || !window.uPlot) return;
    let spec;
    try { spec = JSON.parse(el.dataset.chart); } catch (e) { return; }
    el.dataset.drawn = "1";
    const axis = { stroke: "#8e8e8e", grid: { stroke: "#2c3235" }, ticks: { stroke: "#2c3235" } };
    const options = {
      title: spec.title || "",
      width: Math.max(el.clientWidth, 280),
      height: spec.height || 180,
      series: [{}].concat(spec.series.map((s, i) => ({
        label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: 1.5, dash: s.dash ? [6, 4] : undefined,
        value: (u, v) => v == null ? "—" : v.toFixed(3) + (spec.unit ? " " + spec.unit : ""),
      }))),
      axes: [Object.assign({}, axis), Object.assign({ label: spec.unit || "" }, axis)],
      scales: { x: { time: true } },
    };
    options.hooks = {};
    if (spec.shade) {
      // [from, to] in epoch seconds: a shaded band (e.g. the 15 minutes before the incident).
      options.hooks.drawClear = [(u) => {
        const x0 = u.valToPos(spec.shade[0], "x", true), x1 = u.valToPos(spec.shade[1], "x", true);
        u.ctx.save();
        u.ctx.fillStyle = "rgba(142, 142, 142, 0.15)";
        u.ctx.fillRect(x0, u.bbox.top, Math.max(0, x1 - x0), u.bbox.height);
        u.ctx.restore();
      }];
    }
    if (spec.mark != null) {
      // epoch seconds: a vertical line where the change started (the investigation's change point).
      options.hooks.draw = [(u) => {
        const x = u.valToPos(spec.mark, "x", true);
        u.ctx.save();
        u.ctx.strokeStyle = "#ff9830";
        u.ctx.setLineDash([4, 3]);
        u.ctx.lineWidth = 1.5;
        u.ctx.beginPath(); u.ctx.moveTo(x, u.bbox.top); u.ctx.lineTo(x, u.bbox.top + u.bbox.height); u.ctx.stroke();
        u.ctx.restore();
      }];
    }
    new uPlot(options, [spec.x].concat(spec.series.map((s) => s.values)), el);
  }

  function drawAll(root) { (root || document).querySelectorAll("[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", () => drawAll());
  document.body.addEventListener("htmx:load", (event) => drawAll(event.target));
  window.rsCharts = { draw, drawAll };
})();
