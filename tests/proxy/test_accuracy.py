"""The proxy network and its trainer: every decision visible, a cache key that means what it says."""

import random
from dataclasses import replace

import numpy as np
import pytest

from latbench.errors import InputError
from latbench.nets import zoo
from latbench.nets.spaces import get_space
from latbench.nets.spaces.mnasnet import DECISIONS, TOKENS_PER_BLOCK
from latbench.proxy.accuracy import ProxyEvaluator, proxy_arch
from latbench.proxy.data import FASHION_MNIST_DIR, Dataset, load_fashion_mnist
from latbench.proxy.recipe import ProxyRecipe

SPACE = get_space("mnasnet")
RECIPE = ProxyRecipe()  # the search's default proxy
LAYERS = [n for n, _ in DECISIONS].index("layers")
needs_fmnist = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="apt-get install dataset-fashion-mnist",
)


def proxy_layers(tokens, recipe=RECIPE):
    return [s.key for s in proxy_arch(SPACE.decode(tokens), recipe, 10, 1).layers()]


def context():
    """dconv k5 SE noskip x1.0 with one extra layer per block: a skip then has a layer to act on."""
    t = [1] * SPACE.num_tokens
    for b in range(SPACE.num_blocks):
        t[b * TOKENS_PER_BLOCK + LAYERS] = 2
    return t


@pytest.mark.parametrize(
    "pos",
    range(SPACE.num_tokens),
    ids=[
        f"block{p // TOKENS_PER_BLOCK}_{DECISIONS[p % TOKENS_PER_BLOCK][0]}"
        for p in range(SPACE.num_tokens)
    ],
)
def test_every_token_position_changes_the_proxy_network(pos):
    variants = set()
    for v in range(SPACE.vocab_sizes[pos]):
        t = context()
        t[pos] = v
        variants.add(tuple(proxy_layers(t)))
    assert len(variants) >= 2


def block_maps(arch):
    """Input map size of every searched layer (stem and head excluded)."""
    return [s.in_hw for s in arch.layers()[1:-3]]


@pytest.mark.parametrize("seed", range(5))
def test_the_last_stage_keeps_a_4x4_map(seed):
    tokens = SPACE.sample(random.Random(seed))
    p = proxy_arch(SPACE.decode(tokens), RECIPE, 10, 1)
    maps = block_maps(p)
    assert min(maps) >= 4 and maps[-1] == 4  # a 5x5 kernel still sees more than a 3x3 one
    assert p.layers()[0].out_hw == 14  # the stem keeps its stride: 28 -> 14 -> 7 -> 4
    assert block_maps(proxy_arch(zoo.get("mnasnet_a1"), RECIPE, 10, 1))[-1] == 4


def test_filter_choices_that_differ_in_the_network_differ_in_the_proxy():
    for b in range(SPACE.num_blocks):
        real, proxy = set(), set()
        for f in range(3):
            t = context()
            t[b * TOKENS_PER_BLOCK + [n for n, _ in DECISIONS].index("filters")] = f
            real.add(SPACE.decode(t).blocks[b].out_filters)
            proxy.add(proxy_arch(SPACE.decode(t), RECIPE, 10, 1).blocks[b].out_filters)
        assert len(proxy) == len(real) >= 2, b


def test_mobilenet_v2_gets_the_same_transformation():
    m = proxy_arch(zoo.get("mobilenet_v2_x1"), RECIPE, 10, 1)
    tokens = [3, 0, 0, 0, 1, 1] * 7  # mbconv6 k3 x1.0 +0: MobileNetV2's skeleton
    s = proxy_arch(SPACE.decode(tokens), RECIPE, 10, 1)
    assert [b.stride for b in m.blocks] == [b.stride for b in s.blocks] == [1, 2, 2, 1, 1, 1, 1]
    assert m.head.filters == s.head.filters == 640 and m.width == 1.0 and m.classes == 10
    assert [b.out_filters for b in m.blocks] == [8, 12, 16, 32, 48, 80, 160]


def fake_dataset(seed, n=120):
    rng = np.random.default_rng(seed)
    return Dataset(
        "fashion_mnist",
        rng.integers(0, 255, (n, 28, 28, 1), dtype=np.uint8),
        rng.integers(0, 10, n),
        np.zeros((1, 28, 28, 1), np.uint8),
        np.zeros(1, int),
        10,
    )


def test_cache_key_names_the_dataset_content_and_the_frameworks(tmp_path, monkeypatch):
    recipe = replace(RECIPE, train_images=60, val_images=30)
    arch = SPACE.decode(context())
    a = ProxyEvaluator(fake_dataset(0), recipe, tmp_path)
    b = ProxyEvaluator(fake_dataset(1), recipe, tmp_path)  # same name and size, other images
    assert a.key(arch) != b.key(arch)
    assert a.key(arch) == ProxyEvaluator(fake_dataset(0), recipe, tmp_path).key(arch)
    import latbench.proxy.accuracy as acc

    monkeypatch.setattr(acc, "_framework_versions", lambda: "tf-0.0|keras-0.0")
    assert ProxyEvaluator(fake_dataset(0), recipe, tmp_path).key(arch) != a.key(arch)


def test_an_image_folder_split_does_not_depend_on_the_search_seed(tmp_path):
    from PIL import Image

    from latbench.search.job import make_evaluator
    from latbench.search.run import SearchConfig

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / "img" / cls / f"{i}.png"
            )
    recipe = {**RECIPE.__dict__, "resolution": 16, "train_images": 16, "val_images": 8}
    cfgs = [
        SearchConfig(
            target_ms=1, seed=s, dataset="folder", data_dir=str(tmp_path / "img"), recipe=recipe
        )
        for s in (1, 2)
    ]
    digests = {make_evaluator(c, tmp_path / "cache").data_digest for c in cfgs}
    assert len(digests) == 1


@needs_fmnist
@pytest.mark.slow
def test_a_score_does_not_depend_on_the_other_images_in_its_batch(tmp_path):
    recipe = ProxyRecipe(resolution=16, width=1.0, train_images=256, val_images=600, epochs=1)
    ds = load_fashion_mnist()
    arch = get_space("tiny").decode([1] * 12)
    a = ProxyEvaluator(ds, recipe, tmp_path / "a")
    b = ProxyEvaluator(ds, recipe, tmp_path / "b")
    b.x_val, b.y_val = b.x_val[::-1].copy(), b.y_val[::-1].copy()  # other batch compositions
    ra, rb = a.train(arch), b.train(arch)
    assert ra.accuracy == rb.accuracy and 0.1 < ra.accuracy <= 1.0


def test_the_thread_count_is_part_of_the_recipe_and_of_the_cache_key(tmp_path):
    recipe = replace(RECIPE, train_images=60, val_images=30)
    arch = SPACE.decode(context())
    one = ProxyEvaluator(fake_dataset(0), recipe, tmp_path)
    assert one.threads == recipe.threads == 1  # the default: one TensorFlow thread per trainer
    default_pools = ProxyEvaluator(fake_dataset(0), replace(recipe, threads=0), tmp_path)
    assert default_pools.key(arch) != one.key(arch)
    assert '"threads": 1' in recipe.key()
    with pytest.raises(InputError, match="threads"):
        replace(recipe, threads=-1)
