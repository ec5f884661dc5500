"""Where converted .tflite files live, keyed by content hash (no TensorFlow import).

The key covers the layer (or network), the TensorFlow version that converts
it and the conversion recipe, so a re-run converts nothing and an upgrade
converts everything again.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from latbench.nets.arch import Arch, LayerSpec

RECIPE_VERSION = "1"  # bump when the conversion recipe in convert.py changes


@lru_cache(maxsize=1)
def converter_version() -> str:
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return f"tensorflow-{metadata.version(dist)}/recipe-{RECIPE_VERSION}"
        except metadata.PackageNotFoundError:
            continue
    return f"tensorflow-unknown/recipe-{RECIPE_VERSION}"


def cache_dir() -> Path:
    """$LATBENCH_CACHE, else ~/.cache/latbench."""
    root = os.environ.get("LATBENCH_CACHE") or Path.home() / ".cache" / "latbench"
    return Path(root) / "tflite"


def content_hash(text: str) -> str:
    return hashlib.sha256(f"{text}|{converter_version()}".encode()).hexdigest()[:24]


def spec_path(spec: LayerSpec) -> Path:
    return cache_dir() / "layers" / f"{content_hash(spec.key)}.tflite"


def arch_path(arch: Arch, precision: str) -> Path:
    return cache_dir() / "nets" / f"{content_hash(arch.digest() + precision)}.tflite"
