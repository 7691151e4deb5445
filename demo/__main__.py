"""Entry point: ``python -m demo --host 127.0.0.1 --base-port 9101 --control-port 9100 --rps 20``."""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading

from .control import ControlAPI
from .faults import FaultBoard
from .service import ServiceRuntime
from .telemetry import Telemetry
from .topology import SERVICES, service_port
from .traffic import TrafficGenerator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the workload."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address every server binds")
    parser.add_argument("--base-port", type=int, default=9101,
                        help="first service port; services use base-port + their offset")
    parser.add_argument("--control-port", type=int, default=9100, help="fault-injection API port")
    parser.add_argument("--rps", type=float, default=20.0,
                        help="synthetic requests per second to the frontend (0 disables)")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible randomness")
    args = parser.parse_args(argv)
    if args.rps < 0:
        parser.error("--rps must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the shop until SIGINT/SIGTERM."""
    args = parse_args(argv)
    rng = random.Random(args.seed)
    telemetry = Telemetry.from_env()
    faults = FaultBoard([s.name for s in SERVICES], random.Random(rng.random()))
    runtimes = {
        spec.name: ServiceRuntime(spec, args.host, args.base_port, faults, telemetry,
                                  random.Random(rng.random()))
        for spec in SERVICES
    }
    control = ControlAPI(args.host, args.control_port, args.base_port, runtimes, faults, telemetry)
    try:
        for runtime in runtimes.values():
            runtime.start()
        control.start()
    except OSError as exc:
        print(f"demo: cannot bind: {exc}", file=sys.stderr)
        for runtime in runtimes.values():
            runtime.stop()
        return 2
    telemetry.start()
    call_host = runtimes["frontend"].call_host
    traffic = TrafficGenerator(
        f"http://{call_host}:{service_port('frontend', args.base_port)}", args.rps,
        random.Random(rng.random()))
    traffic.start()
    telemetry.log("control", "info", "shop started", rps=args.rps,
                  control_port=args.control_port,
                  ports={name: rt.port for name, rt in runtimes.items()})

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()

    traffic.stop()
    control.stop()
    for runtime in runtimes.values():
        runtime.stop()
    telemetry.log("control", "info", "shop stopped", sent=traffic.sent, shed=traffic.shed)
    telemetry.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
