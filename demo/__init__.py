"""A small multi-service "shop" workload for Reliability Studio to watch.

Runs as one process (``python -m demo``) hosting frontend, catalog, checkout,
payment and database as separate HTTP servers on separate ports, each with its
own Prometheus metrics, plus synthetic traffic and a fault-injection control
API. Deliberately independent of Django and of the product's packages.
"""
