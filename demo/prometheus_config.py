"""Write a Prometheus config scraping every shop service.

    python -m demo.prometheus_config --out prometheus.yml --interval 5s \\
        [--host 127.0.0.1] [--base-port 9101]

Without ``--out`` the config goes to stdout.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .topology import prometheus_scrape_config

_DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")


def main(argv: list[str] | None = None) -> int:
    """Render the config to ``--out`` (or stdout)."""
    parser = argparse.ArgumentParser(prog="python -m demo.prometheus_config",
                                     description="Render prometheus.yml for the demo shop.")
    parser.add_argument("--out", help="file to write (default: stdout)")
    parser.add_argument("--interval", default="5s", help="scrape interval, e.g. 1s, 5s, 15s")
    parser.add_argument("--host", default="127.0.0.1", help="host the shop listens on")
    parser.add_argument("--base-port", type=int, default=9101, help="the shop's --base-port")
    args = parser.parse_args(argv)
    if not _DURATION.match(args.interval):
        parser.error(f"--interval must be a Prometheus duration like 5s, got {args.interval!r}")
    text = prometheus_scrape_config(args.host, args.base_port, args.interval)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
