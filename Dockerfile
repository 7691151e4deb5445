# One image for web, worker, beat and the demo workload (the command differs per service).

# The control room's front-end libraries come from the npm registry, never from the repository.
FROM node:20-slim AS assets
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/vendor-assets.mjs scripts/
RUN npm ci --no-audit --no-fund && node scripts/vendor-assets.mjs

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=reliability_studio.settings.production
WORKDIR /app
COPY pyproject.toml README.md ./
COPY reliability_studio reliability_studio
COPY incidents incidents
COPY slos slos
COPY detection detection
COPY investigation investigation
COPY remediation remediation
RUN pip install --no-cache-dir .
COPY . .
COPY --from=assets /app/static/vendor static/vendor
RUN useradd --system --uid 10001 app && chown -R app /app
USER app
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "reliability_studio.asgi:application"]
