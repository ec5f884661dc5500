"""A real Ray cluster on this machine whose nodes each have their own stand-in phone.

For the farm's test and benchmark (devices/farm.py): `ray start --head` and `ray start
--address` as a lab would run them on two hosts, here on one, each node with its own ports
and the resource `phone:127.0.0.1:PORT` of one stand-in phone (served from this process,
its cores backed by a host CPU of its own, as two phones have their own silicon). Token
authentication is switched off for this loopback cluster (RAY_AUTH_MODE=disabled, in the
nodes' environment and in `env` for drivers), so no ~/.ray/auth_token is read or written.

stop() ends every process the cluster started and nothing else: the ones whose command line
names this cluster's temporary directory or ports, and their descendants.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from latbench.devices.emulated.server import EmulatedPhone

ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


WORKER_PORTS = 41  # each node's worker port range: --min-worker-port .. +40


def _worker_base(taken: list[int]) -> int:
    """The first of WORKER_PORTS ports for a node's workers, none of them one of `taken`
    (the cluster's other ports): a range after a random free port can hold one of them (seen:
    Ray refused to start, its dashboard agent's port inside the worker range)."""
    for _ in range(100):
        (base,) = _free_ports(1)
        if base + WORKER_PORTS <= 65536 and not any(base <= t < base + WORKER_PORTS for t in taken):
            return base
    raise RuntimeError(f"no {WORKER_PORTS} ports free of the cluster's other ports")


def _ray() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else shutil.which("ray") or "ray"


class LocalRayFarm:
    """`with LocalRayFarm(2, layout="tensor_g4") as farm:` then `farm.address`, `farm.phones`."""

    def __init__(self, nodes: int = 2, layout: str | None = "tensor_g4", serial: str = "lab"):
        self.n = nodes
        self.layout = layout
        self.serial = serial
        self.dir = Path(tempfile.mkdtemp(prefix="lbray-", dir="/tmp"))  # short: unix sockets
        self.phones: list[EmulatedPhone] = []
        self.address = ""
        self.env = {**os.environ, **ENV}
        self._ports: list[int] = []
        self._ranges: list[int] = []  # each node's first worker port (WORKER_PORTS of them)

    def __enter__(self) -> "LocalRayFarm":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        for i in range(self.n):
            ph = EmulatedPhone(
                self.dir / f"phone{i}",
                serial=f"{self.serial}-{i}",
                layout=self.layout,
                host_cpus=[cpus[i % len(cpus)]],
            ).start()
            self.phones.append(ph)
        head_port = _free_ports(1)[0]
        self._ports.append(head_port)
        self.address = f"127.0.0.1:{head_port}"
        for i, ph in enumerate(self.phones):
            p = [q for q in _free_ports(30) if not self._in_worker_range(q)][:9]
            if len(p) < 9:
                raise RuntimeError("too few free ports outside the worker port ranges")
            p[6] = _worker_base(self._ports + p)  # the range clear of every single port
            self._ports += p
            self._ranges.append(p[6])
            common = [
                "--num-cpus=1",
                f"--resources={json.dumps({f'phone:{ph.address}': 1})}",
                "--object-store-memory=78643200",
                f"--node-manager-port={p[0]}",
                f"--object-manager-port={p[1]}",
                f"--dashboard-agent-listen-port={p[2]}",
                f"--dashboard-agent-grpc-port={p[3]}",
                f"--metrics-export-port={p[4]}",
                f"--runtime-env-agent-port={p[5]}",
                f"--min-worker-port={p[6]}",
                f"--max-worker-port={p[6] + WORKER_PORTS - 1}",
                "--disable-usage-stats",
            ]
            if i == 0:
                cmd = [
                    _ray(), "start", "--head", f"--port={head_port}", "--node-ip-address=127.0.0.1",
                    f"--temp-dir={self.dir}", "--include-dashboard=false",
                    f"--ray-client-server-port={p[7]}", f"--dashboard-port={p[8]}", *common,
                ]  # fmt: skip
            else:
                cmd = [
                    _ray(), "start", f"--address={self.address}", "--node-ip-address=127.0.0.1",
                    *common,
                ]  # fmt: skip
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=180)
            if r.returncode != 0:
                raise RuntimeError(f"ray start failed ({r.returncode}): {r.stderr[-2000:]}")

    def _in_worker_range(self, port: int) -> bool:
        return any(b <= port < b + WORKER_PORTS for b in self._ranges)

    def _pids(self) -> list[int]:
        """This cluster's processes: named by its directory or ports, and their descendants."""
        marks = [str(self.dir)] + [f"127.0.0.1:{p}" for p in self._ports[:1]]
        parent: dict[int, int] = {}
        mine: set[int] = set()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            if any(m in cmd for m in marks) and int(d.name) != os.getpid():
                mine.add(int(d.name))
        grew = True
        while grew:
            kids = {p for p, pp in parent.items() if pp in mine and p not in mine}
            grew = bool(kids)
            mine |= kids
        return sorted(mine)

    def stop(self) -> None:
        if self._ports:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = self._pids()
                for p in pids:
                    try:
                        os.kill(p, sig)
                    except OSError:
                        pass
                deadline = time.monotonic() + 10
                while pids and time.monotonic() < deadline:
                    pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
                    time.sleep(0.2)
                if not pids:
                    break
            self._ports = []
        for ph in self.phones:
            ph.stop()
        self.phones = []
        shutil.rmtree(self.dir, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
