"""docker-compose.yml cannot run here (no Docker engine): parse it and check what it promises."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_part_of_the_stack_is_there():
    assert {"postgres", "redis", "migrate", "web", "worker", "beat", "demo", "prometheus", "loki", "tempo",
            "grafana"} <= set(SERVICES)


def test_app_processes_share_configuration_and_wait_for_migrations():
    for name in ("web", "worker", "beat"):
        env = SERVICES[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["PROMETHEUS_URL"] == "http://prometheus:9090"
        assert env["LOKI_URL"] == "http://loki:3100" and env["TEMPO_URL"] == "http://tempo:3200"
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "celery" in SERVICES["worker"]["command"] and "worker" in SERVICES["worker"]["command"]
    assert "beat" in SERVICES["beat"]["command"]


def test_no_default_passwords():
    text = (ROOT / "docker-compose.yml").read_text()
    for var in ("SECRET_KEY", "POSTGRES_PASSWORD", "RS_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(r"\$\{" + var + r":\?", text), f"{var} must be required, not defaulted"


def test_mounted_files_exist_and_prometheus_scrapes_every_demo_service():
    for svc in SERVICES.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    shop = next(job for job in prom["scrape_configs"] if job["job_name"] == "shop")
    scraped = {sc["labels"]["service"] for sc in shop["static_configs"]}
    catalog = yaml.safe_load((ROOT / "demo/catalog.yaml").read_text())
    assert scraped == {s["slug"] for s in catalog["services"]}


def test_grafana_datasources_reference_existing_uids():
    doc = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/datasources.yaml").read_text())
    uids = {ds["uid"] for ds in doc["datasources"]}
    assert uids == {"prometheus", "loki", "tempo"}
    referenced = set(re.findall(r"datasourceUid: (\w+)", (ROOT / "deploy/grafana/provisioning/datasources/datasources.yaml").read_text()))
    assert referenced <= uids


def test_env_example_documents_every_setting_read_from_the_environment():
    settings_text = "\n".join(p.read_text() for p in sorted((ROOT / "reliability_studio/settings").glob("*.py")))
    read = set(re.findall(r'env(?:\.\w+)?\("([A-Z_]+)"', settings_text))
    documented = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set()


def test_demo_pushes_to_tempos_otlp_receiver_while_the_app_queries_its_api():
    demo = SERVICES["demo"]["environment"]
    assert demo["DEMO_TEMPO_OTLP_URL"] == "http://tempo:4318"  # OTLP/HTTP receiver
    assert demo["DEMO_LOKI_URL"] == "http://loki:3100"
    assert "TEMPO_URL" not in demo  # the query API (3200) is the app's setting, never a push target
    assert {"127.0.0.1:4318:4318", "127.0.0.1:3200:3200"} <= set(SERVICES["tempo"]["ports"])
    tempo = yaml.safe_load((ROOT / "deploy/tempo/tempo.yaml").read_text())
    assert tempo["server"]["http_listen_port"] == 3200
    assert tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_env_example_documents_the_demo_and_local_backend_variables():
    documented = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {"DEMO_LOKI_URL", "DEMO_TEMPO_OTLP_URL", "LOKI_BIN", "TEMPO_BIN"} <= documented
