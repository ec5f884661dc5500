"""A phone farm on a Ray cluster: each phone's actor on the node the phone is plugged into.

A node with phones says so when it joins: `ray start --address HEAD:6379 --resources
'{"phone:SERIAL": 1}'` (SERIAL as `adb devices` on that node names it; HOST:PORT for a phone
over TCP). `open_farm` finds every `phone:*` resource on the cluster, starts one actor per
phone that needs that resource (so Ray places it on that node and nowhere else), asks each
phone what it is (getprop) and hands the phones to the requested profiles: a phone whose
serial a profile names, else its codename (options.product), else its model name
(options.model). Phones of one profile share one LUT, named after the profile: the profiler
(profiling/layers.py) gives them one work queue, so each takes the next layer when it is free
(sharding without a fixed split: a slow or lost phone leaves its share to the others), after
their fingerprints were found identical (fleet.split_fingerprint). Every row keeps the phone's
serial (`device_state.serial`).

The driver keeps the LUT, the conversion and the queue; a phone's node only runs
benchmark_model: the driver sends each model's bytes with the request, so the nodes share no
files. Each node needs latbench and the profile's benchmark_model binary at the path the
profile names.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from latbench.devices.base import Device, DeviceLost, DeviceProfile, ModelRunError
from latbench.devices.measure import Measurement
from latbench.errors import InputError, LatbenchError

RESOURCE_PREFIX = "phone:"


def cluster_phones(nodes: Sequence[dict[str, Any]]) -> dict[str, str]:
    """serial -> node id, from `ray.nodes()`: every live node's `phone:SERIAL` resources."""
    out: dict[str, str] = {}
    for n in nodes:
        if not n.get("Alive"):
            continue
        for k in n.get("Resources", {}):
            if k.startswith(RESOURCE_PREFIX) and len(k) > len(RESOURCE_PREFIX):
                out[k[len(RESOURCE_PREFIX) :]] = str(n.get("NodeID", ""))
    return out


def _values(p: DeviceProfile, key: str) -> list[str]:
    v = p.options.get(key, [])
    return [str(x) for x in v] if isinstance(v, list) else [str(v)] if v else []


def assign_phones(
    profiles: Sequence[DeviceProfile], phones: dict[str, dict[str, str]]
) -> list[list[str]]:
    """The serials each profile gets (in the profiles' order), from the phones' getprop.

    A phone goes to the first profile naming its serial, else its codename, else its model;
    a profile that gets no phone is an InputError naming what the cluster has.
    """
    groups: list[list[str]] = [[] for _ in profiles]
    for serial, props in sorted(phones.items()):
        wants = (
            ("serial", {serial, props.get("ro.serialno", "")}),
            ("product", {props.get("ro.product.device", "")}),
            ("model", {props.get("ro.product.model", "")}),
        )
        for key, have in wants:
            hit = next(
                (i for i, p in enumerate(profiles) if have & set(_values(p, key)) - {""}), None
            )
            if hit is not None:
                groups[hit].append(serial)
                break
    for p, g in zip(profiles, groups):
        if not g:
            seen = ", ".join(
                f"{s} ({v.get('ro.product.model', '?')})" for s, v in sorted(phones.items())
            )
            raise InputError(
                f"no phone on the Ray cluster matches this profile's options.serial, "
                f"options.product or options.model (phones advertised: {seen or 'none'}; a "
                f"node advertises one with ray start --resources '{{\"phone:SERIAL\": 1}}')",
                f"{p.name}: options.model",
            )
    return groups


def bind_profile(data: dict[str, Any], serial: str) -> dict[str, Any]:
    """A profile's TOML data pointed at one phone: serial (USB / adb server) or HOST:PORT."""
    opts = dict(data.get("options", {}))
    host, _, port = serial.rpartition(":")
    if data.get("kind") == "emulated":
        opts["connect"] = serial
    elif host and port.isdigit():
        opts.update(host=host, port=int(port), transport="tcp")
    else:
        opts["serial"] = serial
    return {**data, "options": opts}


def _ray_get(ref: Any, serial: str) -> Any:
    """ray.get, with what the phone's actor raised re-raised as itself (a failed model stays a
    ModelRunError, a bad profile an InputError) and a dead actor or node as DeviceLost."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, (ModelRunError, DeviceLost, LatbenchError)):
            raise cause from None
        raise DeviceLost(f"{serial}: {exc}") from None
    except ray.exceptions.RayActorError as exc:
        raise DeviceLost(f"{serial}: its actor died ({exc})") from None


class PhoneHost:
    """The actor on a phone's node (wrapped with ray.remote by open_farm): opens the phone
    there and times what the driver sends."""

    def __init__(self, serial: str, adbkey: str | None = None):
        self.serial, self.adbkey = serial, adbkey
        self.dev: Device | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="latbench-farm-"))

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def identify(self) -> dict[str, str]:
        """The phone's getprop (read without opening a device session)."""
        from latbench.devices.adb_transport import TransportError, sh_join, transport_for_serial
        from latbench.devices.probe import parse_getprop

        t = transport_for_serial(self.serial, self.adbkey)
        try:
            t.connect()
            return parse_getprop(t.shell(sh_join(["getprop"]), 15).output)
        except TransportError as exc:
            raise DeviceLost(f"{self.serial}: {exc}") from None
        finally:
            t.close()

    def open(self, data: dict[str, Any], source: str) -> dict[str, Any]:
        from latbench.devices import open_device
        from latbench.devices.profiles import parse_profile

        self.dev = open_device(parse_profile(bind_profile(data, self.serial), source))
        return {"fingerprint": self.dev.fingerprint(), "pinned": tuple(self.dev.pinned_cpus)}

    def measure(self, name: str, data: bytes, network: bool) -> Measurement:
        assert self.dev is not None, "open() first"
        path = self.dir / f"{hashlib.sha256(data).hexdigest()[:24]}-{Path(name).name}"
        if not path.exists():
            path.write_bytes(data)
        return self.dev.measure(path, network=network)

    def health(self) -> dict[str, Any]:
        return self.dev.health() if self.dev is not None else {}

    def close(self) -> None:
        import shutil

        if self.dev is not None:
            self.dev.close()
            self.dev = None
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class _Remote:
    actor: Any
    serial: str
    node: str


class RemotePhone(Device):
    """The driver's side of one farm phone: the Device interface over its actor."""

    def __init__(self, profile: DeviceProfile, remote: _Remote, opened: dict[str, Any]):
        super().__init__(profile)
        self.remote = remote
        self._fp = dict(opened["fingerprint"])
        self._pinned = tuple(opened["pinned"])

    def _get(self, ref: Any) -> Any:
        return _ray_get(ref, self.remote.serial)

    def fingerprint(self) -> dict[str, str]:
        return dict(self._fp)

    @property
    def pinned_cpus(self) -> tuple[int, ...]:
        return self._pinned

    def measure(self, model: Path, network: bool = False) -> Measurement:
        model = Path(model)
        return self._get(self.remote.actor.measure.remote(model.name, model.read_bytes(), network))

    def health(self) -> dict[str, Any]:
        return {"node": self.remote.node, **self._get(self.remote.actor.health.remote())}

    def close(self) -> None:
        import ray

        try:
            ray.get(self.remote.actor.close.remote(), timeout=60)
        except Exception:  # noqa: BLE001 - a dead actor or node has nothing left to close
            pass
        ray.kill(self.remote.actor)


def open_farm(
    profiles: Sequence[DeviceProfile], address: str, adbkey: str | None = None
) -> list[list[RemotePhone]]:
    """Connect to the Ray cluster at `address` and open every phone the profiles match there:
    one list of phones per profile (shared LUT), each phone's actor on its own node."""
    import ray

    from latbench.fileio import load_toml

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    phones = cluster_phones(ray.nodes())
    if not phones:
        raise InputError(
            "the Ray cluster advertises no phone: start each phone's node with "
            "ray start --resources '{\"phone:SERIAL\": 1}' (docs/phones.md)",
            "--ray-address",
        )
    Host = ray.remote(num_cpus=0, max_restarts=0)(PhoneHost)
    actors = {
        s: Host.options(resources={RESOURCE_PREFIX + s: 1}, name=None).remote(s, adbkey)
        for s in phones
    }
    opened: list[list[RemotePhone]] = []
    try:
        for s, a in actors.items():  # Ray honours the resource; say so if it ever did not
            node = _ray_get(a.node_id.remote(), s)
            if node != phones[s]:
                raise LatbenchError(f"{s}: its actor runs on node {node}, not on {phones[s]}")
        props = {s: _ray_get(a.identify.remote(), s) for s, a in actors.items()}
        groups = assign_phones(profiles, props)
        for p, serials in zip(profiles, groups):
            data = load_toml(Path(p.source)) if p.source else {}
            refs = {s: actors[s].open.remote(data, p.source) for s in serials}
            row = []
            for s, ref in refs.items():
                got = _ray_get(ref, s)
                row.append(RemotePhone(p, _Remote(actors[s], s, phones[s]), got))
            opened.append(row)
    except BaseException:
        for a in actors.values():
            ray.kill(a)
        raise
    used = {r.remote.serial for g in opened for r in g}
    for s, a in actors.items():
        if s not in used:
            ray.kill(a)  # a phone no requested profile matches
    return opened
