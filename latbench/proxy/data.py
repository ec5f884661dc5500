"""Image-classification datasets for proxy training, as uint8 numpy arrays.

Three sources behind one return type (`Dataset`): the Fashion-MNIST IDX files
Debian installs, a folder of images (one sub-folder per class), and any
tensorflow-datasets name already downloaded. Every failure says how to fix it.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latbench.errors import InputError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Dataset:
    """Images NHWC uint8 and int labels, split into train and held-out test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or .gz): the format of MNIST and Fashion-MNIST."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read IDX file {p}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise InputError(f"{p} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise InputError(f"{p} is truncated: header says {dims}, found {body.size} values")
    return body.reshape(dims)


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR) -> Dataset:
    """Fashion-MNIST from its IDX files (Debian: apt-get install dataset-fashion-mnist)."""
    root = Path(root)
    arrays = {}
    for split, stems in FASHION_FILES.items():
        for stem, kind in zip(stems, ("x", "y")):
            p = _find_idx(root, stem)
            if p is None:
                raise InputError(
                    f"Fashion-MNIST file {stem}[.gz] not found in {root}. Install it with "
                    f"`sudo apt-get install dataset-fashion-mnist` (files land in {FASHION_MNIST_DIR}), "
                    f"or pass --data-dir pointing at a folder with the four IDX files"
                )
            arrays[f"{kind}_{split}"] = read_idx(p)
    for split in FASHION_FILES:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise InputError(
                f"Fashion-MNIST {split}: {len(x)} images but {len(y)} labels in {root}"
            )
    return Dataset(
        "fashion_mnist",
        arrays["x_train"][..., None],
        arrays["y_train"].astype(np.int64),
        arrays["x_test"][..., None],
        arrays["y_test"].astype(np.int64),
        10,
    )


def load_image_folder(
    root: str | Path, size: int, test_fraction: float = 0.2, seed: int = 0, grayscale: bool = False
) -> Dataset:
    """A folder with one sub-folder of images per class, resized to size x size."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise InputError(
            f"image folder {root} does not exist; pass a folder with one "
            f"sub-folder of images per class",
            "--data-dir",
        )
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    files = [
        (sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), i)
        for i, d in enumerate(class_dirs)
    ]
    files = [(fs, i) for fs, i in files if fs]
    if len(files) < 2:
        found = sum(len(fs) for fs, _ in files)
        raise InputError(
            f"image folder {root} needs at least two sub-folders (one per class) with images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}); found {len(class_dirs)} sub-folder(s) and "
            f"{found} image(s). Put each class's images in its own sub-folder, e.g. {root}/cat/1.png",
            "--data-dir",
        )
    mode = "L" if grayscale else "RGB"
    xs, ys = [], []
    for fs, label in files:
        for f in fs:
            try:
                with Image.open(f) as im:
                    xs.append(np.asarray(im.convert(mode).resize((size, size)), dtype=np.uint8))
            except OSError as exc:
                raise InputError(f"cannot read image {f}: {exc}", "--data-dir") from None
            ys.append(label)
    x = np.stack(xs)
    if x.ndim == 3:
        x = x[..., None]
    y = np.asarray(ys, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = max(1, int(round(len(y) * test_fraction)))
    te, tr = order[:n_test], order[n_test:]
    return Dataset(root.name, x[tr], y[tr], x[te], y[te], len(class_dirs))


def load_tfds(name: str, data_dir: str | None = None) -> Dataset:
    """A tensorflow-datasets dataset that is already on disk (never downloads)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise InputError(
            f"dataset {name!r} needs tensorflow-datasets: `pip install tensorflow-datasets`, "
            f"then download it once with `tfds build {name}`",
            "--dataset",
        ) from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        splits = builder.info.splits
        test_split = "test" if "test" in splits else "validation"
        ds = tfds.as_numpy(
            builder.as_dataset(split=["train", test_split], as_supervised=True, batch_size=-1)
        )
    except Exception as exc:  # noqa: BLE001 - tfds raises many kinds; all mean "not available locally"
        raise InputError(
            f"tensorflow-datasets cannot load {name!r} from disk ({exc}); download it "
            f"once with `tfds build {name}` on a machine with internet",
            "--dataset",
        ) from None
    (xtr, ytr), (xte, yte) = ds
    classes = builder.info.features["label"].num_classes
    return Dataset(
        name,
        np.asarray(xtr),
        np.asarray(ytr, np.int64),
        np.asarray(xte),
        np.asarray(yte, np.int64),
        classes,
    )


def load_dataset(name: str, data_dir: str | None = None, size: int = 32, seed: int = 0) -> Dataset:
    """`fashion_mnist`, `folder` (needs data_dir), or a tensorflow-datasets name."""
    if name in ("fashion_mnist", "fashion-mnist"):
        return load_fashion_mnist(data_dir or FASHION_MNIST_DIR)
    if name == "folder":
        if not data_dir:
            raise InputError(
                "--dataset folder needs --data-dir DIR (one sub-folder per class)", "--data-dir"
            )
        return load_image_folder(data_dir, size, seed=seed)
    return load_tfds(name, data_dir)
