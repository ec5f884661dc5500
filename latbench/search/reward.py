"""The MnasNet reward: accuracy traded against latency by a power law.

reward = ACC * (LAT / T) ** w, w = alpha if LAT <= T else beta. Pure, so the
loop, the tests and the plots all compute the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from latbench.errors import InputError

# constraint name -> (alpha, beta): MnasNet's soft and hard constraints (Tan et al. 2019,
# sec. 3), and MobileNetV3's weight for small models (Howard et al. 2019, sec. 4.1: w = -0.15,
# because accuracy changes much more with latency for small models)
PRESETS: dict[str, tuple[float, float]] = {
    "soft": (-0.07, -0.07),
    "hard": (0.0, -1.0),
    "mobilenetv3-small": (-0.15, -0.15),
}


@dataclass(frozen=True)
class RewardSpec:
    target_ms: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        if not (self.target_ms > 0 and math.isfinite(self.target_ms)):
            raise InputError(
                f"must be a positive number of ms, got {self.target_ms}", "--target-ms"
            )

    def __call__(self, acc: float, lat_ms: float) -> float:
        return reward(acc, lat_ms, self.target_ms, self.alpha, self.beta)


def reward(acc: float, lat_ms: float, target_ms: float, alpha: float, beta: float) -> float:
    """ACC(m) * (LAT(m)/T)^w; a failed network (NaN latency or accuracy) scores 0."""
    if not (math.isfinite(acc) and math.isfinite(lat_ms)) or lat_ms <= 0:
        return 0.0
    w = alpha if lat_ms <= target_ms else beta
    return float(acc * (lat_ms / target_ms) ** w)


def resolve(constraint: str | None, alpha: float | None, beta: float | None) -> tuple[float, float]:
    """--constraint preset, or explicit --alpha/--beta (both), never half of each."""
    if alpha is not None or beta is not None:
        if alpha is None or beta is None:
            raise InputError("give both --alpha and --beta, or neither (then --constraint applies)")
        if constraint not in (None, "custom"):
            raise InputError(f"--constraint {constraint} and --alpha/--beta both given; pick one")
        for name, v in (("--alpha", alpha), ("--beta", beta)):
            if not math.isfinite(v) or v > 0:
                raise InputError(
                    f"must be a finite number <= 0 (a positive exponent rewards slower "
                    f"networks), got {v:g}; MnasNet uses -0.07 (soft) or 0 and -1 (hard)",
                    name,
                )
        return float(alpha), float(beta)
    name = constraint or "soft"
    if name not in PRESETS:
        raise InputError(f"must be one of {sorted(PRESETS)}, got {name!r}", "--constraint")
    return PRESETS[name]
