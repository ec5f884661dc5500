"""The operator-level predictor judged on models nobody here wrote (issue 22, section 4).

Calibrate on generated models only: random networks of the two search spaces (MnasNet,
FBNet-ImageNet) and random stacks of common ops (Keras: conv / depthwise / separable /
pre-activation BN-ReLU-conv / SE / residual add / concat / pooling / padding, activations
relu, relu6, hard-swish, swish, sigmoid; resolutions 160-300). Then, for each
keras.applications model built with weights=None, predict it from the operator LUT and the
calibrated predictor and compare with its end-to-end timing, taken interleaved with the
calibration models' (shuffled passes). fp32 and int8, on the host.

    .venv/bin/python benchmarks/keras_apps_ops.py --out runs/keras-ops [--precision fp32 int8]

Phases: models are built and converted without the timing lock (waiting while another job
holds it); the operator LUTs and the whole-model timings are taken holding
/tmp/latbench-quiet (released and taken again after HOLD_S). Writes OUT/PREC.json and prints
the markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import zlib
from pathlib import Path

LOCK = Path("/tmp/latbench-quiet")
HOLD_S = 18 * 60

APPS = {  # name -> (constructor, input size): Keras' defaults (EfficientNets at their own)
    "MobileNet": ("MobileNet", 224),
    "MobileNetV2": ("MobileNetV2", 224),
    "MobileNetV3Small": ("MobileNetV3Small", 224),
    "MobileNetV3Large": ("MobileNetV3Large", 224),
    "EfficientNetB0": ("EfficientNetB0", 224),
    "EfficientNetB1": ("EfficientNetB1", 240),
    "EfficientNetB2": ("EfficientNetB2", 260),
    "EfficientNetB3": ("EfficientNetB3", 300),
    "EfficientNetV2B0": ("EfficientNetV2B0", 224),
    "EfficientNetV2B1": ("EfficientNetV2B1", 240),
    "NASNetMobile": ("NASNetMobile", 224),
    "DenseNet121": ("DenseNet121", 224),
    "ResNet50": ("ResNet50", 224),
}


class Quiet:
    """The machine's timing lock: taken (waiting for others), held at most HOLD_S at a time."""

    def __init__(self):
        self.since = None

    def wait_free(self) -> None:
        """Between units of unlocked work: wait while another job holds the lock."""
        while self.since is None and LOCK.exists():
            time.sleep(30)

    def take(self) -> None:
        while True:
            try:
                LOCK.mkdir()
                self.since = time.monotonic()
                print(f"[lock taken {time.strftime('%H:%M:%S')}]", file=sys.stderr)
                return
            except FileExistsError:
                time.sleep(30)

    def release(self) -> None:
        if self.since is not None:
            LOCK.rmdir()
            self.since = None
            print(f"[lock released {time.strftime('%H:%M:%S')}]", file=sys.stderr)

    def checkpoint(self) -> None:
        """Held too long: let others run, then take it again."""
        if self.since is not None and time.monotonic() - self.since > HOLD_S:
            self.release()
            time.sleep(90)
            self.take()


def app_tflite(name: str, precision: str) -> Path:
    """The .tflite of Keras application `name` (APPS), weights seeded by its name, so every
    run and every benchmark builds the same bytes (converted once, cached)."""
    import keras

    from latbench.build.models import keras_tflite

    ctor, size = APPS[name]
    keras.utils.set_random_seed(zlib.crc32(name.encode()))
    m = getattr(keras.applications, ctor)(weights=None, input_shape=(size, size, 3))
    path = Path(keras_tflite(m, precision)["path"])
    keras.backend.clear_session()
    return path


def random_stack(seed: int):
    """A random Keras network of common mobile and server ops."""
    import keras
    from keras import layers as L

    rng = random.Random(seed)
    keras.utils.set_random_seed(seed)  # its weights too: a rebuild is the same bytes (--refit)
    res = rng.choice([160, 192, 224, 224, 256, 300])
    act = rng.choice(["relu", "relu6", "hard_swish", "swish"])
    x = inp = keras.Input((res, res, 3), batch_size=1)
    if rng.random() < 0.3:  # preprocessing, as the applications carry it
        x = L.Rescaling(1 / 127.5, offset=-1)(x)
    if rng.random() < 0.5:
        x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
        x = L.Conv2D(rng.choice([16, 24, 32]), 3, 2, padding="valid", use_bias=False)(x)
    else:
        x = L.Conv2D(rng.choice([16, 24, 32, 64]), rng.choice([3, 7]), 2, padding="same")(x)
    x = L.Activation(act)(L.BatchNormalization()(x))
    if rng.random() < 0.3:
        x = L.MaxPooling2D(3, 2, padding="same")(x)
    c = x.shape[-1]
    for _stage in range(rng.randint(3, 5)):
        c = int(c * rng.choice([1.5, 2, 2]))
        for b in range(rng.randint(1, 4)):
            kind = rng.choice(["mb", "mb", "res", "dense", "sep", "conv"])
            stride = 2 if b == 0 and x.shape[1] > 7 else 1
            y = x
            if kind == "mb":
                e = rng.choice([1, 3, 4, 6])
                if e > 1:
                    y = L.Activation(act)(L.BatchNormalization()(L.Conv2D(x.shape[-1] * e, 1)(y)))
                y = L.DepthwiseConv2D(rng.choice([3, 5]), stride, padding="same")(y)
                y = L.Activation(act)(L.BatchNormalization()(y))
                if rng.random() < 0.5:  # squeeze-excite
                    s = L.GlobalAveragePooling2D(keepdims=True)(y)
                    s = L.Conv2D(max(8, y.shape[-1] // 4), 1, activation="relu")(s)
                    s = L.Conv2D(
                        y.shape[-1], 1, activation=rng.choice(["sigmoid", "hard_sigmoid"])
                    )(s)
                    y = L.Multiply()([y, s])
                y = L.BatchNormalization()(L.Conv2D(c, 1)(y))
            elif kind == "res":
                y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(c // 2, 1, stride)(y)))
                y = L.Activation("relu")(
                    L.BatchNormalization()(L.Conv2D(c // 2, 3, padding="same")(y))
                )
                y = L.BatchNormalization()(L.Conv2D(c, 1)(y))
            elif kind == "dense":  # pre-activation, concatenated (DenseNet's pattern)
                y = L.Conv2D(c // 2, 1)(L.Activation("relu")(L.BatchNormalization()(y)))
                y = L.Conv2D(c // 4, 3, padding="same")(
                    L.Activation("relu")(L.BatchNormalization()(y))
                )
                if stride == 1:
                    x = L.Concatenate()([x, y])
                    continue
                y = L.AveragePooling2D(2, 2)(L.Conv2D(c, 1)(y))
            elif kind == "sep":  # NASNet's relu - separable conv - BN
                y = L.SeparableConv2D(c, rng.choice([3, 5, 7]), stride, padding="same")(
                    L.Activation("relu")(y)
                )
                y = L.BatchNormalization()(y)
            else:
                y = L.Activation(act)(
                    L.BatchNormalization()(L.Conv2D(c, 3, stride, padding="same")(y))
                )
            if stride == 1 and y.shape[-1] == x.shape[-1] and rng.random() < 0.7:
                y = L.Add()([x, y])
                if kind == "res":
                    y = L.Activation("relu")(y)
            x = y
    x = L.Activation(act)(L.Conv2D(rng.choice([512, 1024, 1280]), 1)(x))
    x = L.GlobalAveragePooling2D()(x)
    if rng.random() < 0.5:
        x = L.Dropout(0.2)(x)
    out = L.Dense(1000, activation="softmax")(x)
    return keras.Model(inp, out, name=f"stack{seed}")


def build(
    precision: str, n_space: int, n_stacks: int, quiet: Quiet, log: dict, extra: list[Path]
) -> tuple[list, list]:
    """(calibration models, Keras application models) as ModelOps, converted (cached)."""
    import keras

    from latbench.build.models import keras_tflite
    from latbench.calibration.calibrate import sample_networks
    from latbench.nets.spaces import get_space
    from latbench.profiling.oplut import arch_models, decomposed_models

    prepared = []
    for space, seed in (("mnasnet", 11), ("fbnet-imagenet", 12)):
        quiet.wait_free()
        nets = [n.arch for n in sample_networks(get_space(space), n_space, seed)]
        prepared += arch_models(nets, precision, workers=2, progress=False)
    for seed in range(n_stacks):
        quiet.wait_free()
        m = random_stack(1000 + seed)
        r = keras_tflite(m, precision)
        prepared.append((m.name, f"stack:{seed}", Path(r["path"]), {}))
        keras.backend.clear_session()
    calib = decomposed_models(prepared, precision)
    apps = []
    t_conv = {}
    for name, (ctor, _) in APPS.items():
        quiet.wait_free()
        t0 = time.monotonic()
        path = app_tflite(name, precision)
        t_conv[name] = time.monotonic() - t0
        apps.append((name, f"keras.applications.{ctor}", path, {}))
    log["keras_convert_s"] = t_conv
    from latbench.build.models import prepare_model

    for p in extra:  # models from elsewhere (a PyTorch export), judged like the applications
        m = prepare_model(p, precision)
        apps.append((m.name, str(p), m.path, {}))
    return calib, decomposed_models(apps, precision)


def run(
    precision: str, out: Path, n_space: int, n_stacks: int, passes: int, extra: list[Path],
    refit: bool = False,
) -> dict:  # fmt: skip

    from latbench.calibration.opcalib import (
        load_model_results,
        models_path,
    )

    quiet = Quiet()
    log: dict = {"precision": precision, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    lut_dir = out / "lut"
    t0 = time.monotonic()
    calib, apps = build(precision, n_space, n_stacks, quiet, log, extra)
    log["build_s"] = time.monotonic() - t0
    log["calibration_models"] = [m.name for m in calib]
    if refit:  # the measurements as they are: only the fit and the predictions again
        old = json.loads((out / f"{precision}.json").read_text())
        log.update({k: old[k] for k in ("keras_lut_s", "keras_lut", "calib_lut", "load_before",
                                        "load_after", "date") if k in old})  # fmt: skip
        log["refit"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        res = load_model_results(models_path(lut_dir, "host", precision))
    else:
        res = _time(quiet, log, apps, calib, precision, lut_dir, passes)
    return _fit(log, res, apps, calib, precision, lut_dir, out)


def _time(quiet, log, apps, calib, precision, lut_dir, passes):
    """The operator LUTs and the whole models' timings, holding the timing lock."""
    from latbench.calibration.opcalib import measure_models, models_path
    from latbench.devices import load_profile, open_device
    from latbench.profiling.oplut import profile_ops

    quiet.take()
    try:
        log["load_before"] = os.getloadavg()
        with open_device(load_profile("host")) as dev:
            t0 = time.monotonic()
            (s,) = profile_ops([dev], apps, precision, lut_dir, progress=True)
            log["keras_lut_s"] = time.monotonic() - t0
            log["keras_lut"] = s.line()
            quiet.checkpoint()
            (s2,) = profile_ops([dev], calib, precision, lut_dir, progress=True)
            log["calib_lut"] = s2.line()
            quiet.checkpoint()
            sentinels: list = []
            res = measure_models(dev, calib + apps, models_path(lut_dir, "host", precision),
                                 precision, passes=passes, seed=5, progress=True,
                                 sentinels=sentinels)  # fmt: skip
            if sentinels:  # how the machine's speed moved against the operator rows' time
                log["sentinel"] = sentinels[0].summary()
                print(sentinels[0].line(), file=sys.stderr)
        log["load_after"] = os.getloadavg()
    finally:
        quiet.release()
    return res


def _fit(log, res, apps, calib, precision, lut_dir, out):
    """Calibrate on the generated models, predict the applications, write OUT/PREC.json."""
    import numpy as np

    from latbench.calibration.opcalib import fit_models, model_digest
    from latbench.predictors.opsum import op_sum
    from latbench.profiling.oplut import load_op_lut

    lut = load_op_lut(lut_dir, "host", precision)
    ok = [m for m in calib if res[model_digest(m)].median_ms is not None]
    y = [res[model_digest(m)].median_ms for m in ok]
    fit = fit_models(lut, "host", ok, y, device="host", precision=precision, mode="measured",
                     source="benchmark", source_sha="")  # fmt: skip
    fit.save(lut_dir / f"host_ops_{precision}.predictor.json")
    log["selection"] = fit.selection
    rows = []
    for m in apps:
        r = res[model_digest(m)]
        pred = op_sum(m, lut, "host")
        from latbench.predictors.opmodel import op_features

        X = op_features([pred])
        p = {k: float(f.predict(X)[0]) for k, f in fit.fitted.items()}
        rows.append({
            "model": m.name, "ops": len(m.ops), "measured_ms": r.median_ms, "flags": r.flags,
            "passes": r.passes, "corrected": r.corrected, "disturbed": r.disturbed,
            **{f"{k}_ms": v for k, v in p.items()},
            **({f"{k}_err_pct": 100 * (v - r.median_ms) / r.median_ms for k, v in p.items()}
               if r.median_ms else {}),
        })  # fmt: skip
    log["apps"] = rows
    for k in fit.fitted:
        e = np.array([abs(r[f"{k}_err_pct"]) for r in rows if f"{k}_err_pct" in r])
        log[f"{k}_mape"] = float(e.mean())
        log[f"{k}_within10"] = float((e <= 10).mean() * 100)
    (out / f"{precision}.json").write_text(json.dumps(log, indent=1, default=str) + "\n")
    return log


def table(log: dict) -> str:
    d = log["selection"]["default"]
    lines = [
        f"| model ({log['precision']}) | operators | measured ms | predicted ms [{d}] | error "
        f"| op sum error |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in log["apps"]:
        lines.append(
            f"| {r['model']} | {r['ops']} | {r['measured_ms']:.2f} | {r[f'{d}_ms']:.2f} | "
            f"{r[f'{d}_err_pct']:+.1f} % | {r['lut_err_pct']:+.1f} % |"
        )
    lines.append(
        f"| **MAPE / within ±10 %** | | | | **{log[f'{d}_mape']:.1f} % / {log[f'{d}_within10']:.0f} %** "
        f"| {log['lut_mape']:.1f} % / {log['lut_within10']:.0f} % |"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/keras-ops"))
    ap.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    ap.add_argument("--space-nets", type=int, default=8, help="random networks per space")
    ap.add_argument("--stacks", type=int, default=16, help="random stacks of common ops")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--apps", nargs="*", default=list(APPS), help="a subset of the applications")
    ap.add_argument("--extra", nargs="*", type=Path, default=[],
                    help="other .tflite files to judge (fp32 ones: a PyTorch export)")  # fmt: skip
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--refit", action="store_true",
                    help="measure nothing: fit and predict again from OUT's measurements")  # fmt: skip
    a = ap.parse_args()
    for k in set(APPS) - set(a.apps):
        del APPS[k]
    a.out.mkdir(parents=True, exist_ok=True)
    from latbench.quiet import quiet_tensorflow

    quiet_tensorflow()
    for prec in a.precision:
        if a.table_only:
            log = json.loads((a.out / f"{prec}.json").read_text())
        else:
            extra = [p for p in a.extra if prec == "fp32"]  # an exported .tflite is what it is
            log = run(prec, a.out, a.space_nets, a.stacks, a.passes, extra, a.refit)
        print(table(log))
        print(f"keras op LUT: {log['keras_lut_s']:.0f} s ({log['keras_lut']}); "
              f"selection: {log['selection']['reason']}")  # fmt: skip


if __name__ == "__main__":
    main()
