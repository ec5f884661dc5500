"""The BenchmarkResult reader: round trip, unknown fields skipped, malformed bytes refused."""

from __future__ import annotations

import struct

import pytest

from latbench.devices.result_proto import (
    ResultProtoError,
    encode_result_proto,
    parse_result_proto,
)


def test_round_trip_of_every_field_group():
    data = encode_result_proto(
        {"avg_ms": 1.5, "median_ms": 1.25, "p5_ms": 1.0, "p95_ms": 2.0, "init_ms": 30.0},
        memory={"init_footprint_kb": 2048, "peak_mem_mb": 12.5},
        misc={"num_runs": 50, "model_size_mb": 0.25},
        name="row",
    )
    r = parse_result_proto(data)
    assert r["name"] == "row"
    assert r["latency"] == {
        "avg_ms": 1.5,
        "median_ms": 1.25,
        "p5_ms": 1.0,
        "p95_ms": 2.0,
        "init_ms": 30.0,
    }
    assert r["memory"] == {"init_footprint_kb": 2048, "peak_mem_mb": 12.5}
    assert r["misc"] == {"num_runs": 50, "model_size_mb": 0.25}


def test_fields_a_newer_tool_adds_are_skipped():
    latency = bytes([0x0D]) + struct.pack("<f", 2.0) + bytes([0x9D, 0x01]) + struct.pack("<f", 7.0)
    extra = bytes([0x2A, 0x03]) + b"abc"  # field 5, length-delimited: unknown
    data = bytes([0x12, len(latency)]) + latency + extra
    assert parse_result_proto(data)["latency"] == {"avg_ms": 2.0}


@pytest.mark.parametrize(
    "data,why",
    [
        (b"", "no latency"),
        (bytes([0x12, 0x50, 0x0D]), "claims 80 bytes"),
        (bytes([0x12, 0x02, 0x0D, 0x00]), "truncated 32-bit"),
        (bytes([0x12, 0x02, 0x08, 0x01]), "not a float"),
        (bytes([0x13]), "wire type 3"),
        (bytes([0x12, 0x05, 0x0D]) + struct.pack("<f", float("nan")), "nan"),
        (b"\xff" * 11, "varint"),
        (b"Segmentation fault\n", ""),
    ],
)
def test_malformed_bytes_are_refused(data, why):
    with pytest.raises(ResultProtoError, match=why):
        parse_result_proto(data)
