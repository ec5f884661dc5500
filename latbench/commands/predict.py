"""`latbench predict / calibrate / validate`: the predictor's commands; wiring only.

The work is in predictors/ (features, estimators, files) and calibration/ (jobs.py: the
calibrate and validate jobs; calibrate.py: measured networks, fitting; validate.py: metrics,
plots).
"""

from __future__ import annotations

from pathlib import Path

import click

from latbench.commands.console import note, progress_wanted
from latbench.commands.options import (
    PRECISIONS,
    compare_lines,
    conditions_warning,
    converter_workers_option,
    device_option,
    echo_json,
    json_option,
    lut_dir_option,
    model_files_option,
    model_input_options,
    no_progress_option,
    precision_option,
    predictor_method_option,
    space_option,
)
from latbench.errors import InputError

_passes_option = click.option(
    "--passes",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Time every network in this many passes, each in its own shuffled order (minutes "
    "apart), and use the median: on a shared or throttling device one measurement moves "
    "by more than its own confidence interval.",
)

_space_option = space_option(
    "The predictor is calibrated for it (names its files) [the space of the device's "
    "predictor file or LUT; give it only to choose among several].",
    default=None,
)
_predictor_file_option = click.option(
    "--predictor",
    "predictor_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Use this predictor file (calibrate --out) instead of the device's in --lut-dir; "
    "its device, space and precision are in it.",
)


@click.command("predict")
@click.argument("arch_file", metavar="MODEL", type=click.Path(path_type=Path))
@device_option()
@precision_option
@_space_option
@lut_dir_option
@json_option
@click.option(
    "--profile-missing",
    is_flag=True,
    help="Measure the layers missing from the LUT now (with no LUT at all, start one "
    "named after the network: LUTDIR/DEVICE_NAME_PRECISION.csv).",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Also measure the whole network on the device and show predicted vs measured.",
)
@click.option(
    "--png",
    "png_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the per-layer breakdown and the totals (predicted, measured with "
    "--compare) into this PNG.",
)
@click.option(
    "--in-network",
    "in_network",
    is_flag=True,
    help="A model on a phone: also time it once with benchmark_model --enable_op_profiling "
    "and show each operator's in-network time beside its isolated (LUT) time.",
)
@click.option(
    "--ops",
    is_flag=True,
    help="An arch.json: also predict it operator by operator (its .tflite's operators from "
    "the device's operator LUT and operator predictor) beside the layer-level prediction.",
)
@model_input_options
@predictor_method_option
@_predictor_file_option
@no_progress_option
def predict_command(
    arch_file,
    device_name,
    precision,
    space_name,
    lut_dir,
    as_json,
    profile_missing,
    compare,
    png_path,
    predictor_method,
    predictor_file,
    no_progress,
    input_shape,
    signature,
    ops,
    in_network,
) -> None:
    """Predict the latency of MODEL (total and per layer or operator): an arch.json, or any
    .tflite, .keras / .h5 or SavedModel folder.

    Any model: the sum of its operators' rows in the device's operator LUT
    (LUTDIR/DEVICE_PRECISION.ops.csv, made by `latbench profile --model`), with the share of
    each operator; --profile-missing measures the operators it lacks first.

    The device's LUT files in --lut-dir (DEVICE_*_PRECISION.csv: a space, the zoo, single
    networks) are merged into one table; files measured under other settings are refused.
    The total comes from the calibrated predictor file DEVICE_SPACE_PRECISION.predictor.json
    when `latbench calibrate` has written one (its default: the method with the lowest
    out-of-sample error on the calibration networks), else it is the plain sum of the
    layers ([lut]). Which predictor is used, and why, is printed.
    """
    from latbench.build.models import model_kind
    from latbench.devices import load_profile, open_device
    from latbench.nets.arch import unique_specs
    from latbench.nets.load import load_arch
    from latbench.predictors import MissingKeys, load_predictor, load_predictor_file
    from latbench.predictors.model import space_for
    from latbench.profiling.lut import find_luts

    if model_kind(arch_file) != "arch":
        if ops:
            raise click.UsageError("--ops goes with an arch.json (a model file is always "
                                   "predicted operator by operator)")  # fmt: skip
        return _predict_model(
            arch_file, device_name, precision, lut_dir, as_json, profile_missing, compare,
            input_shape, signature, progress_wanted(no_progress or as_json), predictor_file,
            predictor_method, png_path, in_network,
        )  # fmt: skip
    if in_network:
        raise click.UsageError("--in-network goes with a model file (.tflite, Keras, SavedModel)")
    if input_shape or signature:
        raise click.UsageError("--input-shape and --signature go with a model file")
    arch = load_arch(arch_file)
    progress = progress_wanted(no_progress or as_json)
    given, device_arg = None, device_name  # a profile file given by path: loaded once,
    if device_name.endswith(".toml"):  # its name names the files; with --predictor, it is
        given = load_profile(device_name)  # the profile timed when the file's device has its name
        device_name = given.name

    def is_given(name: str) -> bool:  # the device of the profile file given by path
        return given is not None and given.name == name

    def profile_of(name: str):
        return given if is_given(name) else load_profile(name)

    if predictor_file is not None:
        model = load_predictor_file(predictor_file, lut_dir, predictor_method)
        doc = model.doc or {}
        device_name, precision = doc["device"], doc["precision"]
        if space_name not in (None, doc["space"]):
            raise InputError(
                f"{predictor_file} is a predictor for the {doc['space']} space, not {space_name}",
                "--space",
            )
        space_name = doc["space"]
        have_lut = True
    else:
        space_name = space_for(space_name, lut_dir, device_name, precision, fallback="mnasnet")
        have_lut = bool(find_luts(lut_dir, device_name, precision))
        if given is not None and not have_lut and not profile_missing:
            from latbench.predictors.model import no_lut_error

            raise no_lut_error(device_name, precision, lut_dir, str(device_arg))
        model = (
            load_predictor(device_name, precision, lut_dir, space_name, method=predictor_method)
            if have_lut or not profile_missing
            else None
        )
    lut_dev = model.table.device if model else device_name
    lut_prec = model.table.precision if model else precision
    missing = model.table.missing([arch]) if model else [s.key for s in arch.layers(precision)]
    if missing and profile_missing:
        from latbench.predictors.ondemand import measure_layers

        specs = [s for s in unique_specs([arch], lut_prec) if s.key in set(missing)]
        # the device first: a phone with no benchmark_model binary or no link says so before
        # anything is promised
        with open_device(profile_of(lut_dev)) as dev:
            note(f"measuring {len(specs)} missing layer(s) of {arch.name} on {lut_dev}")
            measure_layers(dev, specs, arch.name, lut_prec, lut_dir, progress)
        model = (
            load_predictor_file(predictor_file, lut_dir, predictor_method)
            if predictor_file is not None
            else load_predictor(
                device_name, precision, lut_dir, space_name, method=predictor_method
            )
        )
    elif missing:

        def arg(name: str) -> str:  # what --device takes for it: the path, where given so
            return device_arg if is_given(name) else name

        exc = MissingKeys(missing, lut_dev, lut_prec, arg(lut_dev))
        exc.hint = (
            f"or in one step: latbench predict {arch_file} --device {arg(device_name)} "
            f"--precision {precision} --lut-dir {lut_dir} --profile-missing"
        )
        raise exc
    total = float(model.predict([arch])[0])
    outside = model.out_of_range([arch])[0]
    rows = model.breakdown(arch)
    lut_sum = sum(ms for _, ms in rows)
    op_level = (
        _arch_ops(arch, device_name, precision, lut_dir, profile_missing, progress, given)
        if ops
        else None
    )
    measured = None
    if compare:
        from latbench.profiling.sentinel import measure_watched

        with open_device(profile_of(device_name)) as dev:
            measured = measure_watched(dev, arch, precision, lut_dir, progress)
    if png_path:
        from latbench.predictors.breakdown import breakdown_png, layer_label

        breakdown_png(
            png_path,
            f"{arch.name} on {device_name} ({precision})",
            [(layer_label(s), ms) for s, ms in rows],
            total,
            model.name,
            measured.median_ms if measured else None,
        )
        note(f"figure -> {png_path}")
    if as_json:
        doc = {
            "arch": arch.name,
            "device": device_name,
            "precision": precision,
            "predictor": model.name,
            "predictor_reason": model.reason,
            "predictor_file": str(model.path) if model.path else None,
            "lut_device": model.table.device,
            "latency_ms": total,
            "lut_sum_ms": lut_sum,
            "in_calibration_range": not outside,
            "outside_range": outside,
            "macs": arch.macs(),
            "params": arch.params(trainable=True),
            "layers": [{"key": s.key, "ms": ms} for s, ms in rows],
        }
        if op_level is not None:
            doc["ops"] = op_level
        if measured is not None:
            doc["measured"] = measured.to_dict()
            doc["error_pct"] = 100 * (total - measured.median_ms) / measured.median_ms
            doc["lut_sum_error_pct"] = 100 * (lut_sum - measured.median_ms) / measured.median_ms
            doc["measured_warning"] = conditions_warning(measured)
        echo_json(doc)
        return
    src = f"{model.table.device} LUT" + (f", {model.path}" if model.path else ", no calibration")
    click.echo(
        f"{arch.name} on {device_name} ({precision}): {total:.3f} ms "
        f"[{model.name}; {src}]   LUT sum {lut_sum:.3f} ms"
    )
    note(f"predictor {model.name}: {model.reason}")
    if outside:
        note(
            "warning: outside the range the predictor was calibrated on ("
            + "; ".join(outside)
            + "): the prediction extrapolates"
        )
    for s, ms in rows:
        click.echo(f"  {ms:8.3f} ms  {100 * ms / lut_sum:5.1f} %  {s.key}")
    if op_level is not None:
        o = op_level
        click.echo(
            f"operator level: {o['latency_ms']:.3f} ms [{o['predictor']}; {o['lut']}]   op sum "
            f"{o['op_sum_ms']:.3f} ms, {o['operators']} operators; vs the layer level "
            f"{100 * (o['latency_ms'] - total) / total:+.1f} % (sums: "
            f"{100 * (o['op_sum_ms'] - lut_sum) / lut_sum:+.1f} %)"
        )
    if measured is not None:
        compare_lines(total, model.name, measured, lut_sum)
        if op_level is not None:
            med = measured.median_ms
            click.echo(f"  operator level [{op_level['predictor']}] "
                       f"{100 * (op_level['latency_ms'] - med) / med:+.1f} %")  # fmt: skip


def _arch_ops(arch, device_name, precision, lut_dir, profile_missing, progress, given) -> dict:
    """`predict arch.json --ops`: the network's .tflite predicted operator by operator."""
    from latbench.profiling.oplut import models_of_archs

    (mo,) = models_of_archs([arch], precision, workers=1, progress=False)
    om, pred, total, _ = _op_prediction(
        mo, device_name, precision, lut_dir, profile_missing, progress, dev_profile=given
    )
    return {
        "latency_ms": total,
        "op_sum_ms": pred.total_ms,
        "predictor": om.name,
        "predictor_reason": om.reason,
        "lut": f"{om.lut_device} operator LUT"
        + (f", {om.path}" if om.path else ", no calibration"),
        "operators": len(pred.rows),
    }


def _predict_model(
    path: Path, device_name, precision, lut_dir, as_json, profile_missing, compare, input_shape,
    signature, progress, predictor_file=None, method=None, png_path=None, in_network=False,
) -> None:  # fmt: skip
    """`predict MODEL` for any model: the operator predictor (calibrated when the device has
    an operator predictor file, or --predictor names one; else the plain operator sum), and
    each operator's share."""
    from latbench.build.models import parse_input_shape
    from latbench.devices import load_profile, open_device
    from latbench.profiling.oplut import op_lut_path, prepare_models

    shape = parse_input_shape(input_shape)
    # an unknown device: refused before any work; a profile file given by path is loaded
    # here, once, and its name names the files
    profile_ = load_profile(device_name)
    if predictor_file is not None:
        from latbench.predictors.files import read_doc

        doc = read_doc(predictor_file)
        device_name, precision = doc["device"], doc["precision"]
        lut_dev = str(doc["lut"]["device"])
        lut_prec = str(doc["lut"].get("precision") or precision)
        if profile_.name != device_name:  # the file's device, not the one --device named
            profile_ = load_profile(device_name)
    else:
        device_name = lut_dev = profile_.name
        lut_prec = precision
    (model,) = prepare_models([path], lut_prec, shape, signature)
    lut_file = op_lut_path(lut_dir, lut_dev, "", lut_prec)
    om, pred, total, shares = _op_prediction(
        model, device_name, precision, lut_dir, profile_missing, progress, predictor_file, method,
        profile_,
    )  # fmt: skip
    outside = om.out_of_range([pred])[0]
    measured = inn = None
    if compare or in_network:
        from latbench.profiling.innetwork import in_network as profile_in_network
        from latbench.profiling.sentinel import measure_watched

        with open_device(profile_) as dev:
            if in_network:
                inn = profile_in_network(model, dev.op_profile(model.tflite))
            if compare:
                measured = measure_watched(dev, model, precision, lut_dir, progress)
    title = f"{model.name} on {device_name} ({precision})"
    if png_path:
        from latbench.predictors.breakdown import breakdown_png

        breakdown_png(
            png_path, title, [(f"{s.op} {s.outputs}", ms) for s, ms in pred.rows], total,
            om.name, measured.median_ms if measured else None, unit="operator",
            predicted=shares if om.name != "lut" else None,
        )  # fmt: skip
        note(f"figure -> {png_path}")
    if as_json:
        doc = {**pred.to_dict(), "source": str(path), "lut": str(lut_file)}
        doc.update(
            predictor=om.name, predictor_reason=om.reason, latency_ms=total,
            op_sum_ms=pred.total_ms, lut_device=om.lut_device,
            predictor_file=str(om.path) if om.path else None, outside_range=outside,
        )  # fmt: skip
        for j, (o, share) in enumerate(zip(doc["operators"], shares)):
            o["predicted_ms"] = share
            o["share"] = share / total if total else 0.0
            if inn is not None:
                o["in_network_ms"] = inn.ms[j]
        if inn is not None:
            doc["in_network"] = {"matched": inn.note, "whole_ms": inn.whole_ms,
                                 "sum_ms": sum(v for v in inn.ms if v is not None)}  # fmt: skip
        if measured is not None:
            doc["measured"] = measured.to_dict()
            doc["error_pct"] = 100 * (total - measured.median_ms) / measured.median_ms
            doc["op_sum_error_pct"] = (
                100 * (pred.total_ms - measured.median_ms) / measured.median_ms
            )
            doc["measured_warning"] = conditions_warning(measured)
        echo_json(doc)
        return
    src = f"{om.lut_device} operator LUT" + (f", {om.path}" if om.path else ", no calibration")
    click.echo(
        f"{title}: {total:.4f} ms [{om.name}; {src}]   op sum {pred.total_ms:.4f} ms, "
        f"{len(pred.rows)} operators"
    )
    note(f"predictor {om.name}: {om.reason}")
    if outside:
        note("warning: outside the range the predictor was calibrated on ("
             + "; ".join(outside) + "): the prediction extrapolates")  # fmt: skip
    click.echo(f"  {'predicted':>10}  {'share':>5}  {'isolated':>10}  operators")
    for op, n, ms_pred, ms_iso in _by_op(pred, shares):
        pct = 100 * ms_pred / total if total else 0.0
        click.echo(f"  {ms_pred:7.4f} ms  {pct:5.1f}  {ms_iso:7.4f} ms  {n:3d} x {op}")
    if inn is not None:
        _in_network_lines(pred, inn, device_name)
    note("per operator, in graph order (predicted ms, share, isolated ms"
         + (", in-network ms" if inn else "") + "; --json: every key):")  # fmt: skip
    for j, ((s, ms), share) in enumerate(zip(pred.rows, shares)):
        pct = 100 * share / total if total else 0.0
        net = "" if inn is None else ("       -" if inn.ms[j] is None else f"{inn.ms[j]:8.4f}")
        first = s.inputs.split(";")[0]
        note(f"  {share:8.4f}  {pct:5.1f} %  {ms:8.4f}{net}  {s.op} {first} -> {s.outputs}")
    if measured is not None:
        compare_lines(total, om.name, measured)
        if om.name != "lut":
            med = measured.median_ms
            click.echo(
                f"  (op sum {pred.total_ms:.3f} ms: {100 * (pred.total_ms - med) / med:+.1f} %)"
            )


def _op_prediction(
    model, device_name, precision, lut_dir, profile_missing, progress, predictor_file=None,
    method=None, dev_profile=None,
):  # fmt: skip
    """(OpModel, OpPrediction, total ms, per-operator predicted ms) of a decomposed model:
    the device's operator predictor (or the file given) on its operator LUT, the operators
    it lacks measured first when asked (on the LUT's device: the prior, for a few-shot file)."""
    from latbench.devices import load_profile, open_device
    from latbench.predictors.opmodel import load_op_model
    from latbench.predictors.opsum import missing_ops, op_sum
    from latbench.profiling.oplut import OpLUT, op_lut_path

    if predictor_file is not None:
        from latbench.predictors.files import read_doc

        rec = read_doc(predictor_file)["lut"]
        lut_dev, lut_prec = str(rec["device"]), str(rec.get("precision") or precision)
    else:
        lut_dev, lut_prec = device_name, precision
    lut_file = op_lut_path(lut_dir, lut_dev, "", lut_prec)
    if profile_missing and (not lut_file.exists() or missing_ops(model, OpLUT.load(lut_file))):
        from latbench.profiling.oplut import profile_ops

        prof = dev_profile if getattr(dev_profile, "name", None) == lut_dev else None
        with open_device(prof or load_profile(lut_dev)) as dev:
            (summ,) = profile_ops([dev], [model], lut_prec, lut_dir, progress=progress)
        note(summ.line())
    om = load_op_model(device_name, precision, lut_dir, predictor_file, method)
    pred = op_sum(model, om.lut, om.lut_device)
    return om, pred, float(om.predict([pred])[0]), om.breakdown(pred)


def _in_network_lines(pred, inn, device_name: str) -> None:
    """Isolated vs in-network time per operator type (`predict MODEL --in-network`)."""
    click.echo(f"in network on {device_name} (benchmark_model --enable_op_profiling; {inn.note}):")
    click.echo(f"  {'isolated':>10}  {'in network':>10}  {'ratio':>5}  operators")
    agg: dict[str, list[float]] = {}
    for (s, ms), net in zip(pred.rows, inn.ms):
        if net is not None:
            a = agg.setdefault(s.op, [0, 0.0, 0.0])
            a[0], a[1], a[2] = a[0] + 1, a[1] + ms, a[2] + net
    for op, (n, iso, net) in sorted(agg.items(), key=lambda kv: -kv[1][2]):
        ratio = f"{net / iso:5.2f}" if iso > 0 else "    -"
        click.echo(f"  {iso:7.4f} ms  {net:7.4f} ms  {ratio}  {int(n):3d} x {op}")
    got = [v for v in inn.ms if v is not None]
    click.echo(
        f"  {len(got)} of {len(inn.ms)} operators matched; their in-network sum "
        f"{sum(got):.4f} ms, the profiled run {inn.whole_ms:.4f} ms (profiler on), the isolated "
        f"sum {pred.total_ms:.4f} ms"
    )


def _by_op(pred, shares) -> list[tuple[str, int, float, float]]:
    """(operator type, count, predicted ms, isolated ms) per type, most predicted time first."""
    agg: dict[str, list[float]] = {}
    for (s, ms), share in zip(pred.rows, shares):
        a = agg.setdefault(s.op, [0, 0.0, 0.0])
        a[0] += 1
        a[1] += share
        a[2] += ms
    return sorted(((k, int(a[0]), a[1], a[2]) for k, a in agg.items()), key=lambda x: -x[2])


def _report_fit(
    fitted,
    X,
    y,
    n_what: str,
    path: Path,
    as_json: bool = False,
    extra: dict | None = None,
    selection: dict | None = None,
    coefficients: str = "scaled",
) -> None:
    """Per method: its out-of-sample error on the measurements (the headline: what predicts
    unseen networks), then its training error; the default marked; a warning where a method
    has more free parameters than the measurements support (fewer than two per parameter)."""
    from latbench.calibration.calibrate import too_many_parameters
    from latbench.calibration.validate import metrics

    selection = selection or {}
    loo = selection.get("mape") or {}
    default = selection.get("default")
    n = len(y)
    free = {k: p.free_parameters() for k, p in fitted.items()}
    crowded = [k for k, f in free.items() if too_many_parameters(f, n)]
    if as_json:
        echo_json(
            {
                **(extra or {}),
                "networks": int(n),
                "predictor": str(path),
                "default": default,
                "selection": selection,
                "free_parameters": free,
                "too_many_parameters": crowded,
                "coefficients": {k: p.to_dict().get("coef") for k, p in fitted.items()},
                "training": {k: metrics(p.predict(X), y).__dict__ for k, p in fitted.items()},
            }
        )
        return
    click.echo(f"fitted on {n} {n_what}")
    how = selection.get("method", "none")
    click.echo(
        f"  {'method':11} {'held-out MAPE %':>15}  {'training MAPE %':>15}  free parameters"
        + (f"   (held out: {how})" if how != "none" else "")
    )
    for k, p in fitted.items():
        m = metrics(p.predict(X), y)
        held = f"{loo[k]:15.2f}" if k in loo else f"{'-':>15}"
        mark = "  <- default" if k == default else ""
        click.echo(f"  {k:11} {held}  {m.mape:15.2f}  {free[k]:15d}{mark}")
    if selection.get("reason"):
        click.echo(f"  default {default}: {selection['reason']}")
    for k in crowded:
        note(
            f"warning: {k} has {free[k]} free parameters for {n} networks (fewer than two "
            f"networks per parameter): its training error says little; trust the held-out "
            f"column, and validate"
        )
    d = fitted[coefficients].to_dict()
    click.echo(
        f"  {coefficients} coefficients: "
        + ", ".join(f"{k} {v:.4g}" for k, v in d["coef"].items())
        + (f" (fell back to {d['fallback']})" if d.get("fallback") else "")
    )
    click.echo(f"predictor -> {path}")


@click.command("calibrate")
@device_option(help_extra="Whom the predictor is for (with --measurements: any name).")
@precision_option
@click.option(
    "--archs",
    "n_archs",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Networks sampled from the space and measured on the device.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the network sample (validate uses another one).",
)
@_space_option
@click.option(
    "--zoo/--no-zoo",
    "with_zoo",
    default=None,
    help="Also measure the zoo networks (--no-zoo keeps them held out for validate) "
    "[default: when the space's family is the zoo's (mnasnet: yes; fbnet-*: no)].",
)
@click.option(
    "--heldout",
    "n_heldout",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Also measure the networks `validate --archs N --seed HELDOUT_SEED` will judge "
    "the predictor on (and the zoo, with --no-zoo), interleaved with the "
    "calibration networks in one shuffled pass, so that a drift of the device's "
    "speed hits both sets alike; validate then measures nothing.",
)
@click.option(
    "--heldout-seed",
    type=int,
    default=7,
    show_default=True,
    help="Seed of the held-out sample (validate's --seed).",
)
@_passes_option
@click.option(
    "--measurements",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Few-shot: a CSV of network,latency_ms measured elsewhere (network = "
    "arch.json path or the space's tokens); nothing is measured here.",
)
@click.option(
    "--prior",
    "prior_device",
    help="With --measurements: the device whose LUT gives the features [--device].",
)
@click.option(
    "--prior-precision", type=PRECISIONS, help="Precision of the prior's LUT [--precision]."
)
@lut_dir_option
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the predictor file here [LUTDIR/DEVICE_SPACE_PRECISION.predictor.json]; "
    "predict and validate take it with --predictor.",
)
@click.option(
    "--ops",
    is_flag=True,
    help="Fit the operator-level predictor (for any model: predict MODEL) instead of the "
    "layer-level one: on the --model files timed end to end here, or few-shot on "
    "--measurements (model,latency_ms) with the --prior device's operator LUT.",
)
@model_files_option(
    "With --ops: a model to calibrate on (.tflite, .keras / .h5, SavedModel, arch.json; "
    "repeat for several)."
)
@model_input_options
@converter_workers_option
@no_progress_option
@json_option
def calibrate_command(
    device_name,
    precision,
    n_archs,
    seed,
    space_name,
    with_zoo,
    n_heldout,
    heldout_seed,
    passes,
    measurements,
    prior_device,
    prior_precision,
    lut_dir,
    out_file,
    workers,
    no_progress,
    as_json,
    ops,
    model_files,
    input_shape,
    signature,
) -> None:
    """Fit the device's predictor on whole networks measured end to end.

    With --ops, the operator-level predictor (LUTDIR/DEVICE_ops_PRECISION.predictor.json)
    on whole models: `--model M` (repeat) are timed end to end on the device after their
    missing operators are profiled; or few-shot, `--measurements FILE.csv --prior P`."""
    if ops:
        return _calibrate_ops(
            device_name, precision, lut_dir, model_files, passes, seed, measurements,
            prior_device, prior_precision, input_shape, signature, out_file,
            progress_wanted(no_progress or as_json), as_json,
        )  # fmt: skip
    if model_files or input_shape or signature:
        raise click.UsageError("--model, --input-shape and --signature go with --ops")
    from latbench.calibration.jobs import calibrate

    c = calibrate(
        device=device_name,
        precision=precision,
        space_name=space_name,
        lut_dir=lut_dir,
        n_archs=n_archs,
        seed=seed,
        with_zoo=with_zoo,
        n_heldout=n_heldout,
        heldout_seed=heldout_seed,
        passes=passes,
        measurements=measurements,
        prior_device=prior_device,
        prior_precision=prior_precision,
        workers=workers,
        progress=progress_wanted(no_progress or as_json),
        log=note,
        out=out_file,
    )
    _report_fit(
        c.fitted,
        c.X,
        c.y,
        f"networks ({c.mode}; features from the {c.lut_device} {c.lut_precision} LUT)",
        c.path,
        as_json,
        {
            "device": device_name,
            "space": c.space,
            "precision": precision,
            "mode": c.mode,
            "measurements": str(c.measurements),
            "lut_device": c.lut_device,
        },
        c.selection,
    )


def _calibrate_ops(
    device_name, precision, lut_dir, model_files, passes, seed, measurements, prior_device,
    prior_precision, input_shape, signature, out_file, progress, as_json,
) -> None:  # fmt: skip
    from latbench.build.models import parse_input_shape
    from latbench.calibration.jobs import calibrate_ops

    c = calibrate_ops(
        device=device_name, precision=precision, lut_dir=lut_dir, models=list(model_files),
        passes=passes, seed=seed, measurements=measurements, prior_device=prior_device,
        prior_precision=prior_precision, input_shape=parse_input_shape(input_shape),
        signature=signature, progress=progress, log=note, out=out_file,
    )  # fmt: skip
    _report_fit(
        c.fitted,
        c.X,
        c.y,
        f"models ({c.mode}; features from the {c.lut_device} {c.lut_precision} operator LUT)",
        c.path,
        as_json,
        {"device": device_name, "precision": precision, "mode": c.mode, "ops": True,
         "measurements": str(c.measurements), "lut_device": c.lut_device},
        c.selection,
        coefficients="opwise",
    )  # fmt: skip


def _fmt_ci(share: float, ci) -> str:
    return f"{share:5.1f} [{ci[0]:4.1f}-{ci[1]:5.1f}]"


@click.command("validate")
@device_option()
@precision_option
@click.option(
    "--archs",
    "n_archs",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Held-out networks sampled from the space (those calibrate used are left out).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the held-out sample.")
@_space_option
@click.option(
    "--zoo/--no-zoo",
    "with_zoo",
    default=True,
    show_default=True,
    help="Also report the zoo networks (measured here if calibration did not).",
)
@click.option(
    "--keras-refs",
    is_flag=True,
    help="Also time Keras' own MobileNetV2/V3 and EfficientNet-B0 end to end.",
)
@_passes_option
@click.option(
    "--measurements",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Held-out networks measured elsewhere (network,latency_ms CSV) instead of measuring here.",
)
@lut_dir_option
@_predictor_file_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report directory [runs/validate-DEVICE-SPACE-PRECISION].",
)
@converter_workers_option
@no_progress_option
@json_option
def validate_command(
    device_name,
    precision,
    n_archs,
    seed,
    space_name,
    with_zoo,
    keras_refs,
    passes,
    measurements,
    lut_dir,
    predictor_file,
    out_dir,
    workers,
    no_progress,
    as_json,
) -> None:
    """Held-out accuracy of the device's predictor file (and the baselines in it)."""
    from latbench.calibration.jobs import validate

    v = validate(
        device=device_name,
        precision=precision,
        space_name=space_name,
        lut_dir=lut_dir,
        n_archs=n_archs,
        seed=seed,
        with_zoo=with_zoo,
        keras_refs=keras_refs,
        passes=passes,
        measurements=measurements,
        predictor_file=predictor_file,
        out_dir=out_dir,
        workers=workers,
        progress=progress_wanted(no_progress or as_json),
        log=note,
    )
    summary, zoo, keras, preds, out_dir = v.metrics, v.zoo, v.keras, v.predictors, v.report
    if v.verdict:  # loud, even under --quiet: predict and search change what they use
        click.echo(f"WARNING {v.verdict['reason']} (recorded in {v.predictor_file})", err=True)
    from latbench.calibration.calibrate import conditions_warning as networks_warning

    warning = networks_warning(v.conditions, "held-out networks") if v.conditions else None
    if warning:
        click.echo(warning, err=True)
    if as_json:
        echo_json(
            {
                "device": device_name,
                "space": space_name,
                "precision": precision,
                "source": v.source,
                "heldout": v.heldout,
                "predictor_file": str(v.predictor_file),
                "default": v.default,
                "metrics": summary,
                "zoo": zoo,
                "keras": keras,
                "report": str(out_dir),
                "verdict": v.verdict,
                "conditions": v.conditions,
                "warning": warning,
            }
        )
        return
    click.echo(f"{v.heldout} held-out networks ({v.source}); shares with 95 % Wilson intervals:")
    click.echo(
        f"{'predictor':11} {'MAPE %':>7} {'max %':>6} {'±5 % [95 % CI]':>19} "
        f"{'±10 % [95 % CI]':>19} {'tau':>5} {'rho':>5}"
    )
    for k, m in summary.items():
        click.echo(
            f"{k:11} {m['mape']:7.2f} {m['max_abs_pct']:6.1f} "
            f"{_fmt_ci(m['within5'], m['within5_ci']):>19} "
            f"{_fmt_ci(m['within10'], m['within10_ci']):>19} "
            f"{m['kendall_tau']:5.2f} {m['spearman_rho']:5.2f}"
        )
    for title, tab in (("zoo", zoo), ("Keras applications (measured end to end)", keras)):
        if tab:
            click.echo(f"{title}:")
            for z in tab:
                twin = (
                    f"; latbench's {z['zoo']} timed beside it: {z['zoo_twin_measured_ms']:.3f} ms"
                    if "zoo_twin_measured_ms" in z
                    else ""
                )
                click.echo(
                    f"  {z['name']:22} measured {z['measured_ms']:8.3f} ms   "
                    + "  ".join(f"{k} {z[f'{k}_err_pct']:+6.1f} %" for k in preds)
                    + f"   ({z['how']}{twin})"
                )
    click.echo(
        f"report -> {out_dir}/ (metrics.json, predictor.json, heldout.csv, zoo.csv"
        f"{', keras.csv' if keras else ''}, predicted_vs_measured.png)"
    )
