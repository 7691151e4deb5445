"""`make run` (manage.py devstack) and the local Loki/Tempo: discovery, wiring, configs.

Loki and Tempo binaries are not available here, so the configs are parsed and checked against
what devstack passes (loopback only, consistent ports) and the discovery is exercised with fake
binaries.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
import yaml

from reliability_studio.management.commands import devstack
from reliability_studio.management.commands.devstack import telemetry_backends

ROOT = Path(__file__).resolve().parents[2]


def _config(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _addr(host: str, port: int) -> str:
    return f"{host}:{port}"


def _walk_addresses(node, path=""):
    """Every value in a config that looks like an address: keys ending in address/addr/endpoint."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith(("address", "addr", "endpoint")) and value is not None:
                yield f"{path}.{key}", value
            else:
                yield from _walk_addresses(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _walk_addresses(item, path)


def _assert_loopback(config: dict) -> None:
    found = list(_walk_addresses(config))
    assert found
    for where, value in found:
        for item in value if isinstance(value, list) else [value]:
            host = str(item).rsplit(":", 1)[0] if ":" in str(item) else str(item)
            assert ipaddress.ip_address(host).is_loopback, f"{where} = {item!r} is not loopback"


def _assert_under_run(config: dict, root: str) -> None:
    """Every filesystem path of the config is relative, under ``root`` (e.g. .run/loki)."""
    def paths(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and (key in ("path", "path_prefix", "directory", "local_work_path")
                                               or key.endswith(("_directory", "_dir"))):
                    yield value
                else:
                    yield from paths(value)
    found = list(paths(config))
    assert found
    for value in found:
        assert value == root or value.startswith(root + "/"), value


def test_loki_config_is_local_single_binary_with_structured_metadata():
    loki = _config(devstack.LOKI_CONFIG)
    server = loki["server"]
    assert _addr(server["http_listen_address"], server["http_listen_port"]) == devstack.LOKI_HTTP
    assert _addr(server["grpc_listen_address"], server["grpc_listen_port"]) == devstack.LOKI_GRPC
    assert loki["auth_enabled"] is False
    assert loki["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert loki["common"]["replication_factor"] == 1
    schema = loki["schema_config"]["configs"][-1]
    # Structured metadata (the demo's trace_id/span_id) needs tsdb + schema v13.
    assert (schema["store"], schema["schema"], schema["object_store"]) == ("tsdb", "v13", "filesystem")
    assert loki["limits_config"]["allow_structured_metadata"] is True
    _assert_loopback(loki)
    _assert_under_run(loki, ".run/loki")


@pytest.mark.parametrize("name, major", [(devstack.TEMPO_CONFIG, 3), (devstack.TEMPO2_CONFIG, 2)])
def test_tempo_configs_receive_otlp_http_and_serve_the_api_on_loopback(name, major):
    tempo = _config(name)
    server = tempo["server"]
    assert _addr(server["http_listen_address"], server["http_listen_port"]) == devstack.TEMPO_HTTP
    assert _addr(server["grpc_listen_address"], server["grpc_listen_port"]) == devstack.TEMPO_GRPC
    assert tempo["distributor"]["receivers"] == {
        "otlp": {"protocols": {"http": {"endpoint": devstack.TEMPO_OTLP_HTTP}}}}
    memberlist = tempo["memberlist"]
    assert _addr(memberlist["bind_addr"][0], memberlist["bind_port"]) == devstack.TEMPO_MEMBERLIST
    assert tempo["storage"]["trace"]["backend"] == "local"
    if major == 3:
        # Tempo 3 refuses the removed 2.x blocks; short live-store blocks keep search fresh.
        assert not {"ingester", "ingester_client", "compactor", "metrics_generator_client"} & set(tempo)
        assert tempo["live_store"]["max_trace_idle"] == "5s"
    else:
        assert not {"live_store", "backend_scheduler", "backend_worker"} & set(tempo)
        assert tempo["ingester"]["max_block_duration"] == "1m"
    _assert_loopback(tempo)
    _assert_under_run(tempo, ".run/tempo")


def test_local_backend_ports_do_not_collide_with_the_rest_of_the_stack():
    ports = [int(a.rsplit(":", 1)[1]) for a in (devstack.LOKI_HTTP, devstack.LOKI_GRPC, devstack.TEMPO_HTTP,
                                               devstack.TEMPO_GRPC, devstack.TEMPO_OTLP_HTTP,
                                               devstack.TEMPO_MEMBERLIST)]
    ports += [8000, 9090, 9100, *range(9101, 9106)]  # web, Prometheus, demo control + services
    assert len(ports) == len(set(ports))


def _fake_binary(tmp_path: Path, name: str, version_output: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho '{version_output}'\n")
    path.chmod(0o755)
    return path


def test_without_binaries_one_line_and_the_product_urls_stay_unset(tmp_path):
    plan = telemetry_backends(ROOT, tmp_path, environ={"PATH": str(tmp_path)})
    assert plan.procs == {}
    assert plan.product_env == {}  # so the investigation says "not configured", not "down"
    # The demo's push targets are explicitly empty: it never falls back to TEMPO_URL.
    assert plan.demo_env == {"DEMO_LOKI_URL": "", "DEMO_TEMPO_OTLP_URL": ""}
    assert len(plan.notes) == 1
    assert "Loki and Tempo not found" in plan.notes[0] and "LOKI_BIN" in plan.notes[0]
    assert "not configured" in plan.notes[0]


def test_binaries_from_env_vars_are_started_and_wired(tmp_path):
    loki = _fake_binary(tmp_path, "my-loki")
    tempo = _fake_binary(tmp_path, "my-tempo", "tempo, version 3.1.0 (branch: main, revision: abc)")
    plan = telemetry_backends(ROOT, tmp_path / ".run",
                              environ={"LOKI_BIN": str(loki), "TEMPO_BIN": str(tempo), "PATH": ""})
    assert plan.procs == {
        "loki": [str(loki), f"-config.file={ROOT / 'deploy/loki-local.yaml'}"],
        "tempo": [str(tempo), f"-config.file={ROOT / 'deploy/tempo-local.yaml'}"],
    }
    # The product queries Tempo's API port; the demo pushes to Tempo's OTLP receiver.
    assert plan.product_env == {"LOKI_URL": "http://127.0.0.1:3100", "TEMPO_URL": "http://127.0.0.1:3200"}
    assert plan.demo_env == {"DEMO_LOKI_URL": "http://127.0.0.1:3100",
                             "DEMO_TEMPO_OTLP_URL": "http://127.0.0.1:4318"}
    assert plan.notes == []
    assert (tmp_path / ".run/loki").is_dir() and (tmp_path / ".run/tempo").is_dir()


def test_binaries_on_path_and_tempo_2_gets_its_own_config(tmp_path):
    _fake_binary(tmp_path, "tempo", "tempo, version 2.5.0 (branch: HEAD, revision: 46dad34)")
    plan = telemetry_backends(ROOT, tmp_path / ".run", environ={"PATH": str(tmp_path)})
    assert plan.procs["tempo"][1].endswith("deploy/tempo-local-2.yaml")
    assert "loki" not in plan.procs and "LOKI_URL" not in plan.product_env
    assert plan.product_env == {"TEMPO_URL": "http://127.0.0.1:3200"}
    assert plan.notes == ["Loki not found (set LOKI_BIN or put loki on PATH): "
                          "investigations will report logs as not configured"]


def test_configured_urls_win_over_local_binaries(tmp_path):
    _fake_binary(tmp_path, "loki")
    _fake_binary(tmp_path, "tempo", "tempo, version 3.0.0")
    plan = telemetry_backends(ROOT, tmp_path / ".run", environ={
        "PATH": str(tmp_path), "LOKI_URL": "http://logs.example:3100",
        "TEMPO_URL": "http://traces.example:3200", "DEMO_TEMPO_OTLP_URL": "http://traces.example:4318"})
    assert plan.procs == {} and plan.product_env == {}
    assert plan.demo_env == {"DEMO_LOKI_URL": "http://logs.example:3100",
                             "DEMO_TEMPO_OTLP_URL": "http://traces.example:4318"}
    assert len(plan.notes) == 2 and all("not starting a local" in note for note in plan.notes)


def test_a_wrong_bin_variable_counts_as_not_found(tmp_path):
    plan = telemetry_backends(ROOT, tmp_path, environ={"LOKI_BIN": str(tmp_path / "nope"),
                                                      "TEMPO_BIN": "", "PATH": str(tmp_path)})
    assert plan.procs == {} and len(plan.notes) == 1


def test_no_telemetry_backends_only_sets_the_demo_push_urls(tmp_path):
    _fake_binary(tmp_path, "loki")
    plan = telemetry_backends(ROOT, tmp_path, environ={"PATH": str(tmp_path), "TEMPO_URL": "http://x:3200"},
                              start=False)
    assert plan.procs == {} and plan.product_env == {} and plan.notes == []
    assert plan.demo_env == {"DEMO_LOKI_URL": "", "DEMO_TEMPO_OTLP_URL": ""}


def test_devstack_passes_backend_env_to_product_and_demo(monkeypatch, tmp_path, settings):
    """The command wires the plan into supervise(): product env for web/worker/beat, demo env for the demo."""
    loki = _fake_binary(tmp_path, "loki")
    monkeypatch.setenv("LOKI_BIN", str(loki))
    monkeypatch.delenv("LOKI_URL", raising=False)
    monkeypatch.delenv("TEMPO_URL", raising=False)
    monkeypatch.delenv("TEMPO_BIN", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), os.environ["PATH"]]))
    settings.BASE_DIR = tmp_path
    captured = {}
    monkeypatch.setattr(devstack.Command, "supervise",
                        lambda self, procs, envs=None: captured.update(procs=procs, envs=envs))
    monkeypatch.setattr(devstack.subprocess, "run", lambda *a, **k: None)  # prometheus.yml generation
    monkeypatch.setattr(devstack.shutil, "which",
                        lambda name: "/usr/bin/prometheus" if name == "prometheus" else None)
    from django.core.management import call_command
    call_command("devstack")
    assert captured["procs"]["loki"][0] == str(loki)
    assert "tempo" not in captured["procs"]
    for name in ("web", "worker", "beat"):
        assert captured["envs"][name] == {"LOKI_URL": "http://127.0.0.1:3100"}
    assert captured["envs"]["demo"] == {"DEMO_LOKI_URL": "http://127.0.0.1:3100", "DEMO_TEMPO_OTLP_URL": ""}


def test_a_failing_local_backend_does_not_stop_the_stack(tmp_path, settings, capsys):
    """Loki exiting at once (e.g. a config its version rejects) leaves the others running."""
    import signal
    import threading

    settings.BASE_DIR = tmp_path
    command = devstack.Command()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stopper = threading.Timer(2.0, lambda: signal.raise_signal(signal.SIGTERM))
    stopper.start()
    try:
        command.supervise({"loki": ["sh", "-c", "echo 'level=error msg=bad config'; exit 1"],
                           "web": ["sh", "-c", "sleep 30", "-p", "8000"]})
    finally:
        stopper.cancel()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    out = capsys.readouterr().out
    assert "loki exited with code 1; continuing without it" in out
    assert "level=error msg=bad config" in out  # errors of the backends are shown
    assert "stopped cleanly" in out
