import math

import pytest

from latbench.errors import InputError
from latbench.search.reward import PRESETS, RewardSpec, resolve, reward


def test_presets_are_the_mnasnet_ones():
    assert PRESETS["soft"] == (-0.07, -0.07)
    assert PRESETS["hard"] == (0.0, -1.0)
    assert resolve(None, None, None) == (-0.07, -0.07)
    assert resolve("hard", None, None) == (0.0, -1.0)
    assert resolve(None, -0.1, -0.5) == (-0.1, -0.5)


def test_reward_formula_by_hand():
    # soft: 0.8 * (5/10)^-0.07 = 0.8 * 2^0.07
    assert reward(0.8, 5.0, 10.0, -0.07, -0.07) == pytest.approx(0.8 * 2**0.07)
    assert reward(0.8, 20.0, 10.0, -0.07, -0.07) == pytest.approx(0.8 * 2**-0.07)
    # hard: no bonus under the target, 1/x penalty above it
    assert reward(0.8, 5.0, 10.0, 0.0, -1.0) == pytest.approx(0.8)
    assert reward(0.8, 20.0, 10.0, 0.0, -1.0) == pytest.approx(0.4)
    assert reward(0.8, 10.0, 10.0, 0.0, -1.0) == pytest.approx(0.8)  # at T: alpha branch
    spec = RewardSpec(10.0, 0.0, -1.0)
    assert spec(0.5, 40.0) == pytest.approx(0.125)


def test_failed_networks_score_zero():
    assert reward(float("nan"), 5.0, 10.0, -0.07, -0.07) == 0.0
    assert reward(0.9, float("nan"), 10.0, -0.07, -0.07) == 0.0


def test_bad_reward_input():
    with pytest.raises(InputError, match="--beta"):
        resolve(None, -0.1, None)
    with pytest.raises(InputError, match="pick one"):
        resolve("hard", -0.1, -0.2)
    with pytest.raises(InputError, match="target-ms"):
        RewardSpec(0.0, 0.0, -1.0)
    assert not math.isnan(reward(0.5, 1.0, 1.0, 0.0, -1.0))


def test_mobilenetv3s_small_model_weight_is_a_preset():
    assert resolve("mobilenetv3-small", None, None) == (-0.15, -0.15)
    # twice MnasNet's weight: a network 2x over the target loses twice as much (in log terms)
    soft, v3 = reward(0.7, 20.0, 10.0, -0.07, -0.07), reward(0.7, 20.0, 10.0, -0.15, -0.15)
    assert math.log(v3 / 0.7) / math.log(soft / 0.7) == pytest.approx(0.15 / 0.07)
