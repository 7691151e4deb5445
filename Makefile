# Reliability Studio — the two commands: `make run` (whole stack with demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HASH := $(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test install install-test system-deps system-deps-test migrate demo-data clean assets

run: install system-deps assets .env  ## Bring up web, worker, beat, Prometheus and the demo workload with demo data
	$(PY) manage.py preflight
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_catalog demo/catalog.yaml
	$(PY) manage.py seed_detection_rules
	$(PY) manage.py seed_slos
	$(PY) manage.py load_runbooks
	$(PY) manage.py create_admin --username demo --generate-password --if-missing
	$(PY) manage.py devstack

test: install-test system-deps-test assets .env  ## Run the whole suite against the real Postgres, Redis and Prometheus
	$(PY) manage.py preflight
	$(PY) -m pytest $(PYTEST_ARGS)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-$(HASH): $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test-$(HASH): $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-$(HASH)

install: $(VENV)/.installed-$(HASH)
install-test: $(VENV)/.installed-test-$(HASH)

# Debian packages the product talks to. Installed when missing and we are root with apt-get;
# otherwise one line says what to install.
APT_INSTALL = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	else echo "missing Debian package(s) $(1): run sudo apt-get install $(1)"; exit 1; fi

system-deps:
	@command -v prometheus >/dev/null || { $(call APT_INSTALL,prometheus); }

system-deps-test: system-deps
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { $(call APT_INSTALL,chromium chromium-driver); }
	@command -v prometheus-alertmanager >/dev/null || { $(call APT_INSTALL,prometheus-alertmanager); }

# htmx and uPlot from the npm registry (package-lock.json pins them) into static/vendor/ (gitignored).
assets: static/vendor/.installed
static/vendor/.installed: package.json package-lock.json scripts/vendor-assets.mjs
	@command -v npm >/dev/null || { $(call APT_INSTALL,nodejs npm); }
	npm ci --no-audit --no-fund --loglevel=error
	node scripts/vendor-assets.mjs
	touch $@

# A local development .env with a generated secret (never committed; read only by the development
# settings, manage.py's default, which also default DEBUG on; production sets the environment).
.env:
	@printf 'SECRET_KEY=%s\nLOG_FORMAT=text\n# Demo: incidents resolve sooner after recovery than the production defaults.\nDETECTION_AUTO_RESOLVE_HOLD=critical=60,high=45,medium=30,low=30\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "wrote .env (local development settings)"

clean:
	rm -rf .run staticfiles
