import numpy as np
import pytest

from latbench.build.builder import arch_model
from latbench.nets import zoo
from latbench.nets.load import arch_from_dict, load_arch

REPO_EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "zoo"


@pytest.mark.parametrize("name", sorted(zoo.PUBLISHED_PARAMS))
def test_params_match_published_within_2_percent(name):
    """Papers count trainable weights (BatchNorm's moving statistics are not)."""
    a = zoo.get(name)
    m = arch_model(a)
    built = sum(int(np.prod(w.shape)) for w in m.trainable_weights)
    assert built == a.params(trainable=True)  # the analytic count agrees with Keras
    assert m.count_params() == a.params()
    pub = zoo.PUBLISHED_PARAMS[name]
    assert abs(built / pub - 1) <= 0.02, (name, built, pub)


def test_every_zoo_network_decodes_and_round_trips():
    for name, make in zoo.ZOO.items():
        a = make()
        assert arch_from_dict(a.to_dict()) == a, name
        assert a.layers()[-1].cout == 1000


def test_example_files_match_the_zoo():
    for name, make in zoo.ZOO.items():
        assert load_arch(REPO_EXAMPLES / f"{name}.json") == make(), name


def test_v3_has_efficient_last_stage_and_hard_sigmoid_se():
    specs = zoo.mobilenet_v3_large().layers()
    assert [s.op for s in specs[-4:]] == ["conv", "pool", "fc", "fc"]
    assert (specs[-4].cout, specs[-2].cout, specs[-2].act) == (960, 1280, "hswish")
    se_layers = [s for s in specs if s.se]
    assert se_layers and all(s.se_gate == "hsigmoid" and s.se % 8 == 0 for s in se_layers)
