"""Read (and, for the stand-in phone, write) benchmark_model's `--result_file_path` file.

Both benchmark_model tools (the classic TFLite one and LiteRT's CompiledModel one) can write a
binary `tflite.tools.benchmark.BenchmarkResult` protocol buffer (proto2, declared in
tflite/tools/benchmark/proto/benchmark_result.proto of the LiteRT repository):

    BenchmarkResult { 1 name: string; 2 latency_metrics: LatencyMetrics;
                      3 memory_metrics: MemoryMetrics; 4 misc_metrics: MiscMetrics }
    LatencyMetrics  { 1 avg_ms 2 min_ms 3 max_ms 4 stddev_ms 5 median_ms 6 p5_ms 7 p95_ms
                      8 init_ms 9 first_inference_ms 10 average_warm_up_ms: float }
    MemoryMetrics   { 1 init_footprint_kb 2 overall_footprint_kb: int64; 3 peak_mem_mb: float }
    MiscMetrics     { 1 model_size_mb: float; 2 num_runs 3 num_warmup_runs: int32;
                      4 model_throughput_in_mb_per_sec 5 throughput_fps: float }

Why a reader of our own: the file comes from a phone, so it is untrusted bytes; this reader
knows only the wire format (varint, 64-bit, length-delimited, 32-bit), checks every length
against what is left, skips fields it does not know (a newer tool may add some) and raises
`ResultProtoError` on anything malformed. No code is generated or executed, and nothing is
unpickled.
"""

from __future__ import annotations

import math
import struct
from typing import Any

_LATENCY = {
    1: "avg_ms",
    2: "min_ms",
    3: "max_ms",
    4: "stddev_ms",
    5: "median_ms",
    6: "p5_ms",
    7: "p95_ms",
    8: "init_ms",
    9: "first_inference_ms",
    10: "average_warm_up_ms",
}
_MEMORY = {1: "init_footprint_kb", 2: "overall_footprint_kb", 3: "peak_mem_mb"}
_MISC = {
    1: "model_size_mb",
    2: "num_runs",
    3: "num_warmup_runs",
    4: "model_throughput_in_mb_per_sec",
    5: "throughput_fps",
}
_FLOATS = (
    {"peak_mem_mb"}
    | set(_LATENCY.values())
    | {
        "model_size_mb",
        "model_throughput_in_mb_per_sec",
        "throughput_fps",
    }
)
_SUBMESSAGES = {2: ("latency", _LATENCY), 3: ("memory", _MEMORY), 4: ("misc", _MISC)}
MAX_BYTES = 1 << 16  # a real result is well under 200 bytes


class ResultProtoError(ValueError):
    """The bytes are not a BenchmarkResult (truncated, corrupt, or another file)."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise ResultProtoError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ResultProtoError("varint longer than 10 bytes")


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) for each field of one message, bounds-checked."""
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise ResultProtoError("field number 0")
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            if i + 8 > len(buf):
                raise ResultProtoError("truncated 64-bit field")
            val, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            if n > len(buf) - i:
                raise ResultProtoError(f"field {num} claims {n} bytes, {len(buf) - i} left")
            val, i = buf[i : i + n], i + n
        elif wire == 5:
            if i + 4 > len(buf):
                raise ResultProtoError("truncated 32-bit field")
            val, i = buf[i : i + 4], i + 4
        else:
            raise ResultProtoError(f"wire type {wire} (groups or garbage)")
        out.append((num, wire, val))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def parse_result_proto(data: bytes) -> dict[str, Any]:
    """{"name": str, "latency": {...}, "memory": {...}, "misc": {...}}; floats finite.

    Raises ResultProtoError on malformed bytes, or when no latency metrics are present.
    """
    if len(data) > MAX_BYTES:
        raise ResultProtoError(f"{len(data)} bytes: not a benchmark result")
    out: dict[str, Any] = {"name": "", "latency": {}, "memory": {}, "misc": {}}
    for num, wire, val in _fields(data):
        if num == 1 and wire == 2:
            out["name"] = val.decode("utf-8", "replace")
        elif num in _SUBMESSAGES and wire == 2:
            key, names = _SUBMESSAGES[num]
            for fnum, fwire, fval in _fields(val):
                name = names.get(fnum)
                if name is None:
                    continue  # a field a newer tool added
                if name in _FLOATS:
                    if fwire != 5:
                        raise ResultProtoError(f"{key}.{name} is not a float (wire type {fwire})")
                    x = struct.unpack("<f", fval)[0]
                    if not math.isfinite(x):
                        raise ResultProtoError(f"{key}.{name} is {x}")
                    out[key][name] = float(x)
                else:
                    if fwire != 0:
                        raise ResultProtoError(f"{key}.{name} is not an integer")
                    out[key][name] = _signed(fval)
    if not out["latency"]:
        raise ResultProtoError("no latency_metrics in the result")
    return out


# ---- writing (the stand-in phone writes what the real tool writes)


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _enc_message(names: dict[int, str], values: dict[str, float | int]) -> bytes:
    out = bytearray()
    for num, name in names.items():
        if name not in values:
            continue
        if name in _FLOATS:
            out += _enc_varint(num << 3 | 5) + struct.pack("<f", float(values[name]))
        else:
            out += _enc_varint(num << 3 | 0) + _enc_varint(int(values[name]))
    return bytes(out)


def encode_result_proto(
    latency: dict[str, float],
    memory: dict[str, float | int] | None = None,
    misc: dict[str, float | int] | None = None,
    name: str = "",
) -> bytes:
    out = bytearray()
    if name:
        raw = name.encode()
        out += _enc_varint(1 << 3 | 2) + _enc_varint(len(raw)) + raw
    for num, (key, names) in _SUBMESSAGES.items():
        vals = {"latency": latency, "memory": memory or {}, "misc": misc or {}}[key]
        if vals:
            body = _enc_message(names, vals)
            out += _enc_varint(num << 3 | 2) + _enc_varint(len(body)) + body
    return bytes(out)
