"""The calibrate and validate jobs: what `latbench calibrate` and `latbench validate` run.

`calibrate` measures networks on the device (or reads them from a file, few-shot) and fits
the predictor file; `validate` judges that file on held-out networks and writes the report
folder. Both take plain arguments and a `log` for notes, and return what the command prints;
nothing here parses a command line or writes to stdout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from latbench.errors import InputError

Log = Callable[[str], None]


def runnable(nets: list, table, log: Log) -> list:
    """Leave out networks holding a layer the device failed to run (LUT status=failed)."""
    keep = [n for n in nets if not table.failed([n.arch])]
    if len(keep) < len(nets):
        log(
            f"skipping {len(nets) - len(keep)} network(s) with layers that failed on this "
            f"device (status=failed in the LUT; --retry-failed to measure them again)"
        )
    return keep


@dataclass
class Calibration:
    """A fitted predictor file and what it was fitted on."""

    fitted: dict  # predictor name -> fitted predictor
    X: Any
    y: Any
    path: Path  # the predictor file
    mode: str  # measured | measurements file | few-shot
    measurements: Path  # the networks' file
    lut_device: str
    lut_precision: str
    selection: dict = field(default_factory=dict)  # calibrate.judge_predictors' judgement
    space: str = ""


def _locks(lut_dir: Path, device: str, space: str, precision: str):
    """The write locks of a device's calibration files: its measured-network tables and its
    predictor file (calibrate and validate write them; one process at a time)."""
    import contextlib

    from latbench.calibration.calibrate import nets_path
    from latbench.fileio import hold_lock
    from latbench.predictors.files import predictor_path

    stack = contextlib.ExitStack()
    ppath = predictor_path(lut_dir, device, space, precision)
    try:
        stack.enter_context(hold_lock(ppath, f"the {device} {space} {precision} calibration files"))
        for kind in ("calib", "validate"):
            stack.enter_context(hold_lock(nets_path(lut_dir, device, space, precision, kind)))
    except BaseException:
        stack.close()  # release what was taken before the one that failed
        raise
    return stack


def calibrate(
    *,
    device: str,
    precision: str,
    space_name: str | None,
    lut_dir: Path,
    n_archs: int,
    seed: int,
    with_zoo: bool | None,
    n_heldout: int,
    heldout_seed: int,
    passes: int,
    measurements: Path | None,
    prior_device: str | None,
    prior_precision: str | None,
    workers: int,
    progress: bool,
    log: Log,
    out: Path | None = None,
) -> Calibration:
    """Measure (or read) whole networks and fit the device's predictor file on them (holding
    the device's calibration locks); the file goes to `out` if given. With no `space_name`
    the space is the one the LUT names (and the measurements' tokens fit)."""
    profile = None
    if measurements is None:  # the device timed here: a profile given by its .toml path is
        from latbench.devices import load_profile  # loaded once, and its name names the files

        profile = load_profile(device)
        device = profile.name
    if space_name is None:
        from latbench.calibration.calibrate import _token_lengths
        from latbench.predictors.model import resolve_space

        space_name = resolve_space(
            None,
            lut_dir=lut_dir,
            device=(prior_device or device) if measurements is not None else device,
            precision=(prior_precision or precision) if measurements is not None else precision,
            token_lengths=sorted(_token_lengths(measurements)) if measurements is not None else (),
        )
    with _locks(lut_dir, device, space_name, precision):
        from latbench.calibration.calibrate import (
            conditions,
            conditions_warning,
            fit_measurements,
            fit_results,
            heldout_networks,
            measure_sets,
            nets_path,
            sample_networks,
            zoo_networks,
        )
        from latbench.nets.spaces import get_space
        from latbench.predictors import MissingKeys, load_table, predictor_path

        space = get_space(space_name)
        if measurements is not None and (n_heldout or passes > 1):
            raise InputError(
                "--heldout and --passes measure networks here; they do not go with --measurements",
                "--measurements",
            )
        if measurements is None:
            if prior_device or prior_precision:
                raise InputError("--prior/--prior-precision go with --measurements", "--prior")
            from latbench.devices import open_device

            table = load_table(device, precision, lut_dir)
            if with_zoo is None:
                with_zoo = space.calibrate_with_zoo
            nets = sample_networks(space, n_archs, seed) + (zoo_networks() if with_zoo else [])
            nets = runnable(nets, table, log)
            held: list = []
            if n_heldout:
                sampled, zoo_held = heldout_networks(
                    space, n_heldout, heldout_seed, {n.arch.digest() for n in nets}, not with_zoo
                )
                held = runnable(
                    sampled + [z for z in zoo_held if not table.missing([z.arch])], table, log
                )
            missing = table.missing([n.arch for n in nets + held])
            if missing:
                exc = MissingKeys(missing, device, precision)
                exc.hint = (
                    f"for the space's networks: latbench profile --device {device} "
                    f"--space {space_name} --precision {precision} --lut-dir {lut_dir}"
                    + (
                        f"; for the zoo: the same with --zoo instead of --space {space_name}"
                        if with_zoo
                        else ""
                    )
                )
                raise exc
            path = nets_path(lut_dir, device, space_name, precision, "calib")
            sets = [(path, nets)]
            if held:
                sets.append((nets_path(lut_dir, device, space_name, precision, "validate"), held))
                log(
                    f"measuring {len(nets)} calibration and {len(held)} held-out networks "
                    f"interleaved (validate --archs {n_heldout} --seed {heldout_seed} will use them)"
                )
            sentinels: list = []
            with open_device(profile) as dev:
                results = measure_sets(
                    dev,
                    sets,
                    precision,
                    workers,
                    progress,
                    shuffle_seed=seed if held else None,
                    passes=passes,
                    context="calibrate",
                    sentinels=sentinels,
                )[0]
            wanted = {n.arch.digest() for n in nets}
            chosen = [r for d, r in results.items() if d in wanted]
            mode = "measured"
            log(f"measured networks -> {path}")
            measured_under = conditions(chosen, sentinels[0] if sentinels else None)
            if sentinels:
                log(sentinels[0].line())
            if warning := conditions_warning(measured_under, "calibration networks"):
                log(warning)
            from latbench.predictors.files import file_sha256

            fit = fit_results(
                table,
                chosen,
                device=device,
                space=space_name,
                precision=precision,
                mode=mode,
                source=path.name,
                source_sha=file_sha256(path),
                measured_under=measured_under,
            )
        else:  # the same fit as latbench.Predictor.fit
            fit = fit_measurements(
                measurements,
                prior=prior_device or device,
                space=space_name,
                precision=precision,
                prior_precision=prior_precision,
                device=device,
                lut_dir=lut_dir,
            )
            path = Path(measurements)
        ppath = fit.save(out or predictor_path(lut_dir, device, space_name, precision))
        return Calibration(
            fit.fitted,
            fit.X,
            fit.y,
            ppath,
            fit.calibration["mode"],
            path,
            fit.table.device,
            fit.table.precision,
            fit.selection,
            space_name,
        )


@dataclass
class Validation:
    """What `validate` found, and where its report folder is."""

    heldout: int  # networks judged
    source: str  # "seed S" or "from FILE"
    predictor_file: Path
    default: str
    predictors: list[str]
    metrics: dict[str, dict]  # predictor -> metrics (validate.metrics)
    zoo: list[dict] = field(default_factory=list)
    keras: list[dict] = field(default_factory=list)
    report: Path = Path()
    verdict: dict | None = None  # set when the default lost to the LUT sum (see `validate`)
    conditions: dict | None = None  # calibrate.conditions of the networks timed (None: a file)


def validate(
    *,
    device: str,
    precision: str,
    space_name: str | None,
    lut_dir: Path,
    n_archs: int,
    seed: int,
    with_zoo: bool,
    keras_refs: bool,
    passes: int,
    measurements: Path | None,
    out_dir: Path | None,
    workers: int,
    progress: bool,
    log: Log,
    predictor_file: Path | None = None,
) -> Validation:
    """Judge the device's predictor file (or `predictor_file`: its device, space and
    precision are in it) on held-out networks; write the report folder (holding the
    device's calibration locks)."""
    from latbench.predictors.model import space_for

    profile = None
    if measurements is None and predictor_file is None:  # as in calibrate
        from latbench.devices import load_profile

        profile = load_profile(device)
        device = profile.name
    if predictor_file is not None:
        from latbench.predictors.files import read_doc

        doc = read_doc(predictor_file)
        if space_name not in (None, doc["space"]):
            raise InputError(
                f"{predictor_file} is a predictor for the {doc['space']} space, not {space_name}",
                "--space",
            )
        device, space_name, precision = doc["device"], doc["space"], doc["precision"]
    else:
        space_name = space_for(space_name, lut_dir, device, precision)
    with _locks(lut_dir, device, space_name, precision):
        import pandas as pd

        from latbench.calibration.calibrate import (
            conditions,
            heldout_networks,
            load_results,
            measure_networks,
            nets_path,
            read_measurements,
            zoo_networks,
        )
        from latbench.calibration.validate import (
            keras_rows,
            metrics,
            predict_all,
            scatter_png,
            zoo_from_file,
            zoo_leave_one_out,
        )
        from latbench.fileio import write_atomic
        from latbench.nets.spaces import get_space
        from latbench.predictors import load_predictor, load_predictor_file
        from latbench.predictors.files import file_sha256

        model = (
            load_predictor_file(predictor_file, lut_dir)
            if predictor_file is not None
            else load_predictor(device, precision, lut_dir, space_name, require_calibrated=True)
        )
        doc = model.doc or {}
        cal = doc["calibration"]
        calibrated_on = set(cal.get("digests", []))
        log(
            f"evaluating {model.path} (sha256 {file_sha256(model.path)[:16]}) as predict and "
            f"search load it: {', '.join(model.fitted)} (default {model.name}), "
            f"calibrated on {cal.get('networks')} networks ({cal.get('mode')})"
        )
        zoo_calibrated = [z for z in zoo_networks() if z.arch.digest() in calibrated_on]
        zoo_held = (
            [z for z in zoo_networks() if z.arch.digest() not in calibrated_on] if with_zoo else []
        )
        unprofiled = [z for z in zoo_held if model.table.missing([z.arch])]
        if unprofiled:
            log(
                f"leaving out {len(unprofiled)} zoo network(s) whose layers are not in the "
                f"{model.table.device} LUT (measure them with: latbench profile --device "
                f"{model.table.device} --zoo)"
            )
            zoo_held = [z for z in zoo_held if z not in unprofiled]
        refs: dict = {}
        if measurements is not None:
            given = read_measurements(measurements, get_space(space_name))
            test = [r for r in given if r.network.arch.digest() not in calibrated_on]
            if len(test) < len(given):
                log(
                    f"leaving out {len(given) - len(test)} network(s) of {measurements} that "
                    f"the predictor was calibrated on"
                )
            zoo_res = []
            measured_under = None
        else:
            from latbench.devices import load_profile, open_device

            profile = profile or load_profile(device)  # the predictor file's device
            nets, _ = heldout_networks(get_space(space_name), n_archs, seed, calibrated_on, False)
            nets = runnable(nets + zoo_held, model.table, log)
            path = nets_path(lut_dir, device, space_name, precision, "validate")
            sentinels: list = []
            with open_device(profile) as dev:
                results = measure_networks(
                    dev,
                    nets,
                    path,
                    precision,
                    workers,
                    progress,
                    passes=passes,
                    context="validate",
                    sentinels=sentinels,
                )
                if keras_refs:
                    from latbench.calibration.keras_refs import measure_refs, refs_path
                    from latbench.fileio import hold_lock
                    from latbench.profiling.layers import lut_meta

                    rpath = refs_path(lut_dir, device, precision)  # shared by every space
                    with hold_lock(rpath):
                        refs = measure_refs(
                            dev, rpath, precision, lut_meta(dev, precision, space="keras")
                        )
            zoo_d = {z.arch.digest() for z in zoo_held}
            test = [results[n.arch.digest()] for n in nets if n.arch.digest() not in zoo_d]
            zoo_res = [results[n.arch.digest()] for n in nets if n.arch.digest() in zoo_d]
            measured_under = conditions([*test, *zoo_res], sentinels[0] if sentinels else None)
            if sentinels:
                log(sentinels[0].line())
        preds, meas, rows = predict_all(model, test)
        zoo = zoo_from_file(model, zoo_res)
        if zoo_calibrated and with_zoo:
            calib_path = nets_path(lut_dir, device, space_name, precision, "calib")
            train = load_results(calib_path)
            zoo += zoo_leave_one_out(
                model.table,
                [r for d, r in train.items() if d in calibrated_on],
                [train[z.arch.digest()] for z in zoo_calibrated if z.arch.digest() in train],
            )
        keras = keras_rows(model, refs) if refs else []
        out_dir = out_dir or Path("runs") / f"validate-{device}-{space_name}-{precision}"
        out_dir.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(
            {
                "name": [r.network.arch.name for r in rows],
                "measured_ms": meas,
                **{f"{k}_ms": v for k, v in preds.items()},
            }
        )
        write_atomic(out_dir / "heldout.csv", frame.to_csv(index=False).encode())
        write_atomic(out_dir / "zoo.csv", pd.DataFrame(zoo).to_csv(index=False).encode())
        if keras:
            write_atomic(out_dir / "keras.csv", pd.DataFrame(keras).to_csv(index=False).encode())
        summary = {k: metrics(v, meas).__dict__ for k, v in preds.items()}
        source = f"from {measurements}" if measurements is not None else f"seed {seed}"
        verdict = _judge_default(model, summary, preds, meas, source)
        write_atomic(out_dir / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
        write_atomic(
            out_dir / "predictor.json",
            (
                json.dumps(
                    {
                        "path": str(model.path),
                        "sha256": file_sha256(model.path),
                        "default": model.name,
                        "calibration": {k: v for k, v in cal.items() if k != "digests"},
                        "identity": model.identity(),
                        "conditions": measured_under,
                    },
                    indent=2,
                )
                + "\n"
            ).encode(),
        )
        scatter_png(
            out_dir / "predicted_vs_measured.png",
            preds,
            meas,
            f"{device} {space_name} {precision}: {len(meas)} held-out networks",
            zoo,
            keras,
        )
        return Validation(
            len(meas),
            source,
            model.path,
            model.name,
            list(preds),
            summary,
            zoo,
            keras,
            out_dir,
            verdict,
            measured_under,
        )


def _judge_default(model, summary: dict[str, dict], preds: dict, meas, source: str) -> dict | None:
    """The file's default worse than the plain LUT sum on held-out networks: record it in the
    predictor file, whose users (predict, search, the Python API) then take the LUT sum until
    calibrate writes a new file (or they ask for a method by name). The verdict, or None.

    Worse means by more than one standard error of the per-network difference, on at least
    MIN_JUDGED networks (calibrate's rule): a difference the noise explains changes nothing."""
    from datetime import datetime, timezone

    import numpy as np

    from latbench.calibration.calibrate import MIN_JUDGED
    from latbench.predictors.files import read_doc, write_doc

    name, n = model.name, len(meas)
    if name == "lut" or "lut" not in summary or name not in summary or n < MIN_JUDGED:
        return None
    mine, lut = summary[name]["mape"], summary["lut"]["mape"]
    m = np.asarray(meas, float)
    diff = (np.abs(np.asarray(preds[name]) - m) - np.abs(np.asarray(preds["lut"]) - m)) / m * 100
    se = float(diff.std(ddof=1) / np.sqrt(n))
    if not diff.mean() > se:
        return None
    verdict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "heldout": n,
        "source": source,
        "demoted": name,
        "mape": {name: mine, "lut": lut},
        "reason": (
            f"validate ({n} held-out networks, {source}) found {name} worse than the LUT sum "
            f"(MAPE {mine:.2f} % vs {lut:.2f} %): the LUT sum is used until calibrate runs again"
        ),
    }
    doc = read_doc(model.path)
    doc["default"], doc["verdict"] = "lut", verdict
    write_doc(model.path, doc)
    return verdict


def calibrate_ops(
    *,
    device: str,
    precision: str,
    lut_dir: Path,
    models: list[Path],
    passes: int,
    seed: int,
    measurements: Path | None,
    prior_device: str | None,
    prior_precision: str | None,
    input_shape: tuple[int, ...] | None,
    signature: str | None,
    progress: bool,
    log: Log,
    out: Path | None = None,
) -> Calibration:
    """The operator-level predictor of `device`: its models timed end to end here (their
    missing operators profiled first), or few-shot from `measurements` on `prior_device`'s
    operator LUT (calibration/opcalib.py); holds the device's operator calibration locks."""
    import contextlib

    from latbench.calibration.calibrate import conditions, conditions_warning
    from latbench.calibration.opcalib import (
        fit_models,
        measure_models,
        model_digest,
        models_path,
        read_model_measurements,
    )
    from latbench.fileio import hold_lock
    from latbench.predictors.files import file_sha256
    from latbench.predictors.opmodel import op_predictor_path
    from latbench.profiling.oplut import load_op_lut, prepare_models

    if measurements is None and (prior_device or prior_precision):
        raise InputError("--prior/--prior-precision go with --measurements", "--prior")
    if measurements is not None and models:
        raise InputError("give the models with --model or in --measurements, not both", "--model")
    if measurements is None and not models:
        raise InputError("--ops needs the models to calibrate on: --model M (repeatable)",
                         "--model")  # fmt: skip
    profile = None
    if measurements is None:  # as in calibrate
        from latbench.devices import load_profile

        profile = load_profile(device)
        device = profile.name
    ppath = out or op_predictor_path(lut_dir, device, precision)
    mpath = models_path(lut_dir, device, precision)
    with contextlib.ExitStack() as stack:
        stack.enter_context(hold_lock(ppath, f"the {device} {precision} operator predictor"))
        if measurements is None:
            from latbench.devices import open_device
            from latbench.profiling.oplut import profile_ops

            stack.enter_context(hold_lock(mpath))
            prepared = prepare_models(models, precision, input_shape, signature)
            with open_device(profile) as dev:
                (summ,) = profile_ops([dev], prepared, precision, lut_dir, progress=progress)
                log(summ.line())
                sentinels: list = []
                results = measure_models(
                    dev, prepared, mpath, precision, passes, seed, progress, sentinels
                )
            ok = [(m, results[model_digest(m)]) for m in prepared]
            measured_under = conditions([r for _, r in ok], sentinels[0] if sentinels else None)
            if sentinels:
                log(sentinels[0].line())
            if warning := conditions_warning(measured_under, "models"):
                log(warning)
            failed = [m.name for m, r in ok if r.median_ms is None and r.error]
            if failed:
                log(f"leaving out {len(failed)} model(s) that failed to run: {', '.join(failed)}")
            slow = [m.name for m, r in ok if r.median_ms is None and not r.error]
            if slow:  # every pass timed on a machine far slower than the operator LUT's
                log(f"leaving out {len(slow)} model(s) timed only on a machine too slow "
                    f"(the same command times them again): {', '.join(slow)}")  # fmt: skip
            ok = [(m, r) for m, r in ok if r.median_ms is not None]
            log(f"measured models -> {mpath}")
            lut_device, lut_prec, mode, source = device, precision, "measured", mpath
            fit_on, y = [m for m, _ in ok], [r.median_ms for _, r in ok]
        else:
            rows = read_model_measurements(measurements)
            lut_device = prior_device or device
            lut_prec = prior_precision or precision
            fit_on = prepare_models([p for p, _ in rows], lut_prec, input_shape, signature)
            y = [ms for _, ms in rows]
            mode = (
                "few-shot" if (lut_device, lut_prec) != (device, precision) else "measurements file"
            )
            source = measurements
            measured_under = None
        if not fit_on:
            raise InputError("no successfully measured models to fit on", "--model")
        lut = load_op_lut(lut_dir, lut_device, lut_prec)
        fit = fit_models(
            lut, lut_device, fit_on, y, device=device, precision=precision, mode=mode,
            source=Path(source).name, source_sha=file_sha256(source),
            measured_under=measured_under,
        )  # fmt: skip
        fit.save(ppath)
    return Calibration(
        fit.fitted, fit.X, fit.y, ppath, mode, Path(source), lut_device, lut_prec,
        fit.selection, "ops",
    )  # fmt: skip
