/*
 * Reliability Studio app plugin for Grafana: the root page shows the control room in a frame that
 * fills the page. Hand-written AMD (no build step): Grafana loads module.js through SystemJS with the
 * AMD extra and provides `@grafana/data` and `react` as externals. The loader uses the `plugin`
 * export, so it must be an AppPlugin with a root page.
 *
 * The control room's address comes from the plugin's jsonData.controlRoomUrl (provisioning:
 * deploy/grafana/provisioning/plugins/apps.yaml). Django must list Grafana's origin in
 * GRAFANA_FRAME_ORIGINS, or the browser refuses the frame (docs/grafana.md).
 */
define(["exports", "@grafana/data", "react"], function (exports, grafanaData, React) {
  "use strict";

  var h = React.createElement;
  var PLUGIN_PATH = "/a/reliability-studio-app";

  // /a/reliability-studio-app/incidents/42/ opens /incidents/42/ of the control room, so links
  // into Grafana can point at one incident.
  function frameSource(baseUrl, pathname) {
    var at = pathname.indexOf(PLUGIN_PATH);
    var rest = at < 0 ? "" : pathname.slice(at + PLUGIN_PATH.length).replace(/^\/+/, "");
    return baseUrl.replace(/\/+$/, "") + "/" + rest;
  }

  function Root(props) {
    var jsonData = (props.meta && props.meta.jsonData) || {};
    var baseUrl = jsonData.controlRoomUrl;
    var box = React.useRef(null);
    var state = React.useState(600);
    var height = state[0], setHeight = state[1];

    // Fill the space below Grafana's navigation, whatever its height, and follow window resizes.
    React.useEffect(function () {
      function fit() {
        if (box.current) {
          setHeight(Math.max(320, window.innerHeight - box.current.getBoundingClientRect().top - 8));
        }
      }
      fit();
      window.addEventListener("resize", fit);
      return function () { window.removeEventListener("resize", fit); };
    }, []);

    if (!baseUrl) {
      return h("div", { style: { padding: "16px" } },
        h("h2", null, "Reliability Studio is not configured"),
        h("p", null, "Set jsonData.controlRoomUrl for the reliability-studio-app plugin (provisioning/plugins/apps.yaml)."));
    }
    return h("div", { ref: box, style: { width: "100%", height: height + "px" } },
      h("iframe", {
        title: "Reliability Studio control room",
        src: frameSource(baseUrl, window.location.pathname),
        style: { width: "100%", height: "100%", border: "0", display: "block" },
      }));
  }

  exports.plugin = new grafanaData.AppPlugin().setRootPage(Root);
  exports.frameSource = frameSource;
});
