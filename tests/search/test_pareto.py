import pytest

from latbench.search.pareto import hypervolume, pareto_front


def test_front_by_hand():
    lat = [5.0, 3.0, 4.0, 6.0, 3.0, 8.0]
    acc = [0.80, 0.70, 0.60, 0.85, 0.70, 0.84]
    # 4.0/0.60 is dominated by 3.0/0.70; 8.0/0.84 by 6.0/0.85; index 4 duplicates index 1
    assert pareto_front(lat, acc) == [1, 0, 3]


def test_front_ignores_nan():
    assert pareto_front([1.0, float("nan")], [0.5, 0.9]) == [0]


def test_hypervolume_by_hand():
    # points (1, .5), (2, .7), (3, .8); reference (4, 0):
    # [1,2) x .5 + [2,3) x .7 + [3,4) x .8 = .5 + .7 + .8
    assert hypervolume([1, 2, 3], [0.5, 0.7, 0.8], 4.0, 0.0) == pytest.approx(2.0)
    # a dominated point adds nothing; reference accuracy shifts every strip
    assert hypervolume([1, 2, 3, 2.5], [0.5, 0.7, 0.8, 0.6], 4.0, 0.4) == pytest.approx(
        0.1 + 0.3 + 0.4
    )
    # points beyond the reference latency are outside the box
    assert hypervolume([5.0], [0.9], 4.0) == 0.0
    assert hypervolume([], [], 4.0) == 0.0
