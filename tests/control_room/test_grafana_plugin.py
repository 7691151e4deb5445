"""The Grafana app plugin and its provisioning: schema-valid, wired into docker-compose, and the
hand-written module.js exports an AppPlugin whose root page frames the control room."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from reliability_studio import grafana_links

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "grafana-plugin"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "plugin.schema.json").read_text())


def test_plugin_json_is_valid_against_grafanas_schema():
    manifest = json.loads((PLUGIN / "plugin.json").read_text())
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(manifest), key=str)
    assert errors == []
    assert manifest["id"] == "reliability-studio-app" and manifest["type"] == "app"
    for logo in manifest["info"]["logos"].values():
        assert (PLUGIN / logo).is_file()
    assert (PLUGIN / "module.js").is_file()


def test_plugin_provisioning_enables_the_app_with_a_control_room_url():
    doc = yaml.safe_load((PROVISIONING / "plugins" / "apps.yaml").read_text())
    assert doc["apiVersion"] == 1
    (app,) = doc["apps"]
    assert app["type"] == json.loads((PLUGIN / "plugin.json").read_text())["id"]
    assert app["disabled"] is False and app["jsonData"]["controlRoomUrl"].startswith("http")
    assert "secureJsonData" not in app  # nothing secret is needed, so none is committed


def test_datasource_references_and_explore_links_use_provisioned_uids():
    text = (PROVISIONING / "datasources" / "datasources.yaml").read_text()
    doc = yaml.safe_load(text)
    uids = {ds["uid"]: ds["type"] for ds in doc["datasources"]}
    for reference in re.findall(r"datasourceUid:\s*(\S+)", text):
        assert reference.strip("'\"") in uids
    for uid, kind in (grafana_links.PROMETHEUS, grafana_links.LOKI, grafana_links.TEMPO):
        assert uids.get(uid) == kind


def test_docker_compose_mounts_the_plugin_and_allows_it_unsigned():
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    assert "./grafana-plugin:/var/lib/grafana/plugins/reliability-studio-app:ro" in grafana["volumes"]
    assert "reliability-studio-app" in grafana["environment"]["GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"]


# module.js is AMD for Grafana's SystemJS; node runs it with a stand-in `define`, `@grafana/data`
# and the few React calls it makes, then renders the root page once.
NODE_HARNESS = r"""
const fs = require("fs");
class AppPlugin { setRootPage(root) { this.root = root; return this; } }
const React = {
  createElement: (type, props, ...children) => ({ type, props: props || {}, children }),
  useRef: () => ({ current: null }),
  useState: (initial) => [initial, () => {}],
  useEffect: () => {},
};
global.window = { location: { pathname: process.argv[2] }, innerHeight: 900, addEventListener() {}, removeEventListener() {} };
let exported = {};
global.define = (deps, factory) => {
  const resolved = deps.map((d) => d === "exports" ? exported : d === "@grafana/data" ? { AppPlugin } : d === "react" ? React : null);
  factory(...resolved);
};
eval(fs.readFileSync(process.argv[1], "utf8"));
const find = (node, type) => !node || typeof node !== "object" ? null : node.type === type ? node
  : (node.children || []).map((c) => find(c, type)).find(Boolean) || null;
const url = process.argv[3];
const tree = exported.plugin.root({ meta: { jsonData: url ? { controlRoomUrl: url } : {} } });
const frame = find(tree, "iframe");
console.log(JSON.stringify({ isApp: exported.plugin instanceof AppPlugin, src: frame && frame.props.src,
  style: frame && frame.props.style, text: JSON.stringify(tree) }));
"""


def run_module(pathname: str, control_room_url: str | None):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, "-e", NODE_HARNESS, str(PLUGIN / "module.js"), pathname, control_room_url or ""],
                            capture_output=True, text=True, timeout=30, check=True)
    return json.loads(result.stdout)


def test_module_exports_an_app_plugin_whose_root_page_frames_the_control_room():
    out = run_module("/a/reliability-studio-app", "http://localhost:8000/")
    assert out["isApp"] and out["src"] == "http://localhost:8000/"
    assert out["style"]["width"] == "100%" and out["style"]["height"] == "100%"
    deep = run_module("/grafana/a/reliability-studio-app/incidents/42/", "https://rs.example.com/control")
    assert deep["src"] == "https://rs.example.com/control/incidents/42/"


def test_root_page_explains_a_missing_url():
    out = run_module("/a/reliability-studio-app", None)
    assert out["src"] is None and "controlRoomUrl" in out["text"]
