"""`python -m latbench.devices.emulated`: serve a phone, or run as the benchmark_model stand-in.

Demo:  python -m latbench.devices.emulated --port 5555 --sandbox /tmp/phone
(the shell starts the stand-in as `python -m latbench.devices.emulated --benchmark-model ...`).
"""

from __future__ import annotations

import argparse
import sys
import time

from latbench.devices.emulated.benchmark import benchmark_main
from latbench.devices.emulated.server import EmulatedPhone
from latbench.devices.emulated.state import LAYOUTS, Clocks, Faults

# -- entry point --------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--benchmark-model"]:
        from latbench.procs import die_with_parent_from_env

        die_with_parent_from_env()
        return benchmark_main(argv[1:])
    ap = argparse.ArgumentParser(
        prog="python -m latbench.devices.emulated",
        description="A loopback ADB phone for latbench demos and tests.",
    )
    ap.add_argument("--port", type=int, default=5555)
    ap.add_argument("--sandbox", required=True, help="directory that plays the phone's filesystem")
    ap.add_argument("--serial", default="emulated-0001")
    ap.add_argument("--refuse-auth", action="store_true", help="decline every key (fault test)")
    ap.add_argument(
        "--hang-after-runs",
        type=int,
        default=-1,
        metavar="N",
        help="the benchmark_model run after N started ones hangs, once (fault test)",
    )
    ap.add_argument(
        "--hang-graph",
        default="",
        metavar="NAME",
        help="the first benchmark_model run whose --graph file is named NAME hangs (fault test)",
    )
    ap.add_argument(
        "--throttle-after-s",
        type=float,
        default=Clocks.throttle_after_s,
        help="busy seconds before the modelled core throttles",
    )
    ap.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default=None,
        help="core layout and getprop of a Pixel's SoC (default: this host's CPUs)",
    )
    ap.add_argument(
        "--host-cpus",
        default="",
        metavar="0,1",
        help="host CPUs the phone's cores run on (default: all of this process's)",
    )
    a = ap.parse_args(argv)
    phone = EmulatedPhone(
        a.sandbox,
        port=a.port,
        serial=a.serial,
        faults=Faults(
            refuse_auth=a.refuse_auth, hang_after_runs=a.hang_after_runs, hang_graph=a.hang_graph
        ),
        clocks=Clocks(throttle_after_s=a.throttle_after_s),
        layout=a.layout,
        host_cpus=[int(c) for c in a.host_cpus.split(",") if c.strip()] or None,
    )
    phone.start()
    print(
        f"emulated phone {a.serial} listening on {phone.address} (sandbox {phone.sandbox}); "
        "Ctrl-C stops it",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        phone.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
