import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from latbench.errors import InputError
from latbench.proxy.data import FASHION_MNIST_DIR, load_fashion_mnist, load_image_folder, read_idx

HAVE_FMNIST = (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists()


@pytest.mark.skipif(not HAVE_FMNIST, reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_shapes():
    x = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    y = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))
    ds = load_fashion_mnist()
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.classes == 10 and ds.shape == (28, 28, 1)
    assert ds.y_train[:3].tolist() == [9, 0, 0]  # the published first labels


def test_idx_round_trip_and_bad_magic(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "a-idx3-ubyte.gz"
    with gzip.open(p, "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + arr.tobytes())
    np.testing.assert_array_equal(read_idx(p), arr)
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello world")
    with pytest.raises(InputError, match="not an IDX"):
        read_idx(bad)


def test_missing_debian_dataset_names_the_fix(tmp_path):
    with pytest.raises(InputError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_empty_image_folder_is_a_clear_error(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(InputError, match="one per class"):
        load_image_folder(tmp_path, 16)
    with pytest.raises(InputError, match="does not exist"):
        load_image_folder(tmp_path / "nope", 16)


def test_image_folder_loads_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png"
            )
    ds = load_image_folder(tmp_path, 16, test_fraction=0.2)
    assert ds.classes == 3
    assert ds.x_train.shape == (12, 16, 16, 3) and ds.x_test.shape == (3, 16, 16, 3)
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == [0] * 5 + [1] * 5 + [2] * 5
