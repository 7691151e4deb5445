"""deploy/kubernetes/ cannot be applied here (no cluster): validate every manifest against the
Kubernetes JSON schemas (kubernetes-validate bundles them, so this runs offline), then check what
the schemas cannot: one beat, env that resolves, commands the image can run, probes that answer."""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import click
import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, get_commands, load_command_class
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes minor still commonly supported, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SECRET_TEMPLATE = "secret.example.yaml"


def _documents() -> dict[str, list[dict]]:
    return {path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
            for path in sorted(KUBE.glob("*.yaml")) if path.name != "kustomization.yaml"}


DOCUMENTS = _documents()
RESOURCES = {(doc["kind"], doc["metadata"]["name"]): doc for docs in DOCUMENTS.values() for doc in docs}
KUSTOMIZATION = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
CONFIGMAP = next(doc for (kind, _), doc in RESOURCES.items() if kind == "ConfigMap")
SECRET = next(doc for (kind, _), doc in RESOURCES.items() if kind == "Secret")
WORKLOADS = {name: doc for (kind, name), doc in RESOURCES.items() if kind in ("Deployment", "Job")}
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _deployment(component: str) -> dict:
    return next(doc for doc in WORKLOADS.values()
                if doc["kind"] == "Deployment" and doc["metadata"]["labels"]["app.kubernetes.io/component"] == component)


def _containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _all_containers():
    return [(name, c) for name, doc in WORKLOADS.items() for c in _containers(doc)]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test: the schemas must be local."""
    def refuse(*args, **kwargs):
        raise AssertionError("kubernetes-validate tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- schemas ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("filename", sorted(DOCUMENTS))
def test_manifest_is_valid_against_the_kubernetes_schema(filename, version, no_network):
    for doc in DOCUMENTS[filename]:
        # strict: an unknown field (a typo such as `replica:`) is an error, as the API server's own
        # strict field validation makes it.
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("break_it", [
    lambda d: d["spec"].update(replica=3),
    lambda d: d["spec"].update(replicas="3"),
    lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
    lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(port=[8000]),
], ids=["unknown field", "wrong type", "missing required field", "bad probe port"])
def test_the_validator_rejects_a_broken_manifest(break_it, no_network):
    web = json.loads(json.dumps(_deployment("web")))
    break_it(web)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, VERSIONS[0], strict=True)


def test_manifests_name_no_namespace():
    for (kind, name), doc in RESOURCES.items():
        assert "namespace" not in doc["metadata"], f"{kind}/{name} names a namespace; kubectl -n chooses it"


def test_kustomization_lists_every_manifest_but_the_secret_template():
    assert KUSTOMIZATION["kind"] == "Kustomization"
    assert sorted(KUSTOMIZATION["resources"]) == sorted(set(DOCUMENTS) - {SECRET_TEMPLATE})
    assert "namespace" not in KUSTOMIZATION


def test_the_secret_template_holds_placeholders_only():
    assert set(SECRET["stringData"]) >= {"SECRET_KEY", "DATABASE_URL"}
    for key, value in SECRET["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} in {SECRET_TEMPLATE} must be a placeholder"


# --- what the schemas cannot say --------------------------------------------------------------------

def test_exactly_one_beat_replaced_by_recreate():
    beat = _deployment("beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}  # never two beats during a rollout
    assert not any(d["kind"] == "HorizontalPodAutoscaler" for docs in DOCUMENTS.values() for d in docs)
    commands = [c["command"] for _, c in _all_containers()]
    beats = [name for name, doc in WORKLOADS.items() for c in doc["spec"]["template"]["spec"]["containers"]
             if "beat" in c["command"]]
    assert beats == [beat["metadata"]["name"]], "only the beat Deployment runs celery beat"
    assert not any("--beat" in cmd or "-B" in cmd for cmd in commands), "no worker embeds a beat"


def test_several_web_replicas_roll_without_losing_capacity():
    web = _deployment("web")
    assert web["spec"]["replicas"] >= 2
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = next(d for (kind, _), d in RESOURCES.items() if kind == "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] < web["spec"]["replicas"], "a drain must be able to move one pod"


def test_selectors_match_their_pods_and_the_service_reaches_the_web_port():
    for name, doc in WORKLOADS.items():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if doc["kind"] == "Deployment":
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    service = next(d for (kind, _), d in RESOURCES.items() if kind == "Service")
    web = _deployment("web")
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    ports = {p["name"] for c in web["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_every_env_reference_resolves_and_every_process_gets_its_secrets():
    config_keys, secret_keys = set(CONFIGMAP["data"]), set(SECRET["stringData"])
    for workload, container in _all_containers():
        where = f"{workload}/{container['name']}"
        provided = set()
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == CONFIGMAP["metadata"]["name"], where
                provided |= config_keys
            if "secretRef" in source:
                assert source["secretRef"]["name"] == SECRET["metadata"]["name"], where
                provided |= secret_keys
        for var in container.get("env", []):
            ref = var.get("valueFrom", {})
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["name"] == SECRET["metadata"]["name"], where
                assert ref["secretKeyRef"]["key"] in secret_keys, f"{where}: {var['name']}"
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["name"] == CONFIGMAP["metadata"]["name"], where
                assert ref["configMapKeyRef"]["key"] in config_keys, f"{where}: {var['name']}"
            provided.add(var["name"])
        # The production settings refuse to start without these.
        assert {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL"} <= provided, where


def test_every_configmap_key_is_a_setting_the_product_reads():
    source = "\n".join(p.read_text() for p in (ROOT / "reliability_studio" / "settings").glob("*.py"))
    read = set(re.findall(r"""env\.\w+\(\s*["']([A-Z0-9_]+)["']""", source))
    read |= set(re.findall(r"""environ(?:\.get\(|\[)\s*["']([A-Z0-9_]+)["']""", source))
    unknown = set(CONFIGMAP["data"]) - read - {"DJANGO_SETTINGS_MODULE"}
    assert not unknown, f"the settings never read {sorted(unknown)}"
    assert CONFIGMAP["data"]["DJANGO_SETTINGS_MODULE"] == "reliability_studio.settings.production"
    assert importlib.util.find_spec(CONFIGMAP["data"]["DJANGO_SETTINGS_MODULE"]) is not None
    for value in CONFIGMAP["data"].values():
        assert isinstance(value, str), "ConfigMap values must be strings (quote numbers and booleans)"


def test_every_image_is_the_one_compose_builds():
    image = COMPOSE["x-app"]["image"]
    assert "build" in COMPOSE["x-app"]
    for workload, container in _all_containers():
        assert container["image"] == image, f"{workload}/{container['name']}"
    name, _, tag = image.partition(":")
    assert KUSTOMIZATION["images"] == [{"name": name, "newTag": tag}]


def _module_defines(module: str, attribute: str) -> bool:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    tree = ast.parse(Path(spec.origin).read_text())
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == attribute for t in node.targets)
               for node in tree.body)


def _check_manage_py(argv: list[str]) -> None:
    assert argv[:2] == ["python", "manage.py"]
    name, options = argv[2], argv[3:]
    commands = get_commands()
    assert name in commands, f"no management command {name!r}"
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    parser.parse_args(options)  # an unknown option raises CommandError


def _check_celery(argv: list[str]) -> str:
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery

    from reliability_studio.celery import app

    assert argv[:3] == ["celery", "-A", "reliability_studio"]
    assert _module_defines("reliability_studio.celery", "app")
    name, options = argv[3], argv[4:]
    assert name in ("worker", "beat")
    with click.Context(celery, info_name="celery", obj=CLIContext(app=app, no_color=True, workdir=None)) as parent:
        celery.commands[name].make_context(name, list(options), parent=parent)  # bad option → UsageError
    return name


def _check_daphne(argv: list[str]) -> None:
    from daphne.cli import CommandLineInterface

    assert argv[0] == "daphne"
    parsed = CommandLineInterface().parser.parse_args(argv[1:])
    module, _, attribute = parsed.application.partition(":")
    assert _module_defines(module, attribute), parsed.application


def test_every_command_names_a_real_program_command_and_options():
    seen = set()
    for workload, container in _all_containers():
        argv = container["command"]
        if argv[0] == "daphne":
            _check_daphne(argv)
            seen.add("daphne")
        elif argv[0] == "celery":
            seen.add(_check_celery(argv))
        else:
            _check_manage_py(argv)
            seen.add(" ".join(argv[:3]))
    assert {"daphne", "worker", "beat", "python manage.py migrate"} <= seen


def test_the_bad_command_checks_can_fail():
    with pytest.raises(AssertionError):
        _check_manage_py(["python", "manage.py", "migrat"])
    with pytest.raises(CommandError):
        _check_manage_py(["python", "manage.py", "migrate", "--chek"])
    with pytest.raises(click.UsageError):
        _check_celery(["celery", "-A", "reliability_studio", "worker", "--concurency", "2"])
    with pytest.raises(AssertionError):
        _check_daphne(["daphne", "reliability_studio.asgi:app"])


def test_processes_wait_for_migrations_and_the_job_runs_them():
    job = next(doc for doc in WORKLOADS.values() if doc["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    for component in ("web", "worker", "beat"):
        init = _deployment(component)["spec"]["template"]["spec"]["initContainers"]
        assert [c["command"] for c in init] == [["python", "manage.py", "migrate", "--check", "--noinput"]], component


def test_writable_paths_are_volumes_on_a_read_only_root():
    for workload, container in _all_containers():
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        if container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            assert "/tmp" in mounts, f"{workload}/{container['name']} needs a writable /tmp"
        if "--schedule" in container["command"]:
            schedule = container["command"][container["command"].index("--schedule") + 1]
            assert any(schedule.startswith(m.rstrip("/") + "/") for m in mounts), "beat's schedule file must be writable"


def test_workers_get_time_to_finish_a_task_when_stopped():
    worker = _deployment("worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > settings.CELERY_TASK_TIME_LIMIT


def test_every_container_has_resource_requests_and_a_memory_limit():
    for workload, container in _all_containers():
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), f"{workload}/{container['name']}"
        assert "memory" in resources["limits"], f"{workload}/{container['name']}"


def _probes():
    web = _deployment("web")["spec"]["template"]["spec"]["containers"][0]
    return [(kind, web[kind]["httpGet"]) for kind in ("readinessProbe", "livenessProbe", "startupProbe") if kind in web]


def test_probes_name_real_views_on_a_real_port():
    web = _deployment("web")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"] for p in web["ports"]}
    views = {kind: resolve(get["path"]).url_name for kind, get in _probes()}
    assert views["readinessProbe"] == "readyz" and views["livenessProbe"] == "healthz"
    allowed = CONFIGMAP["data"]["ALLOWED_HOSTS"].split(",")
    for kind, get in _probes():
        assert get["port"] in ports, kind
        hosts = [h["value"] for h in get.get("httpHeaders", []) if h["name"].lower() == "host"]
        # Without it the kubelet sends the pod's IP, which ALLOWED_HOSTS refuses (HTTP 400).
        assert hosts and hosts[0] in allowed, f"{kind} must send a Host that ALLOWED_HOSTS admits"


PROBE_SCRIPT = """
import json, sys
import django
django.setup()
from django.test import Client
client = Client()
answers = {}
for path, headers in json.loads(sys.argv[1]):
    response = client.get(path, headers=headers)
    answers[path] = [response.status_code, response.get("Location", "")]
print(json.dumps(answers))
"""


@pytest.mark.slow
def test_probes_answer_200_under_the_production_settings_the_configmap_selects():
    """The probes as the kubelet sends them (plain HTTP, their headers), against the app configured
    only by the ConfigMap and the Secret: a redirect to https or a refused Host would make a probe
    fail (or, for a 3xx, pass without checking anything)."""
    db = settings.DATABASES["default"]
    env = {key: value for key, value in __import__("os").environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update(CONFIGMAP["data"])
    env.update(SECRET["stringData"])
    # Reachable stand-ins for the cluster's PostgreSQL and Redis, so /readyz can be ready.
    env["DATABASE_URL"] = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"
    env["REDIS_URL"] = settings.REDIS_URL
    probes = [(get["path"], {h["name"]: h["value"] for h in get.get("httpHeaders", [])}) for _, get in _probes()]
    done = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, json.dumps(probes)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    for path, (status, location) in answers.items():
        assert status == 200, f"{path} answered {status} {location}"
