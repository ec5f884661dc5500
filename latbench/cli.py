"""The `latbench` command line. Each command is a thin layer over a module.

Exit codes: 0 ok, 1 failure, 2 usage error (bad arch.json, unknown device...).
Conventions (console.py): results on stdout, as JSON with --json (errors too);
progress bars and notes on stderr, bars only on a terminal; `latbench --quiet`
keeps stderr to errors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .console import note, progress_wanted
from .errors import InputError, LatbenchError

PRECISIONS = click.Choice(["fp32", "int8"])
PRECISION_HELP = "Numeric precision of the converted models (int8: full-integer quantized)."
DEVICE_HELP = "Device profile name (device_profiles/NAME.toml; `latbench devices` lists phones)."
LUT_DIR_HELP = "Folder of LUT and predictor files."
NO_PROGRESS_HELP = "No progress bars (they are shown only on a terminal anyway)."
JSON_HELP = "Machine-readable output on stdout (errors too)."


def _space_choice():
    from .spaces import SPACES  # light: arch dataclasses only

    return click.Choice(list(SPACES))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="latbench")
@click.option("-q", "--quiet", is_flag=True,
              help="Only results and errors: no progress bars, notes or summaries on stderr.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """Measured-latency, platform-aware NAS for mobile CNNs."""
    ctx.meta["latbench.quiet"] = quiet


def _json_safe(x):
    """NaN and infinities (e.g. a rank correlation of two networks) become null: strict JSON."""
    import math

    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _echo_json(doc) -> None:
    click.echo(json.dumps(_json_safe(doc), indent=2, allow_nan=False))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--write", "write_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write each network as DIR/NAME.json.")
def zoo(as_json: bool, write_dir: Path | None) -> None:
    """List the reference networks with parameters and MACs."""
    from . import zoo as zoo_mod
    from .arch import save_arch

    rows = []
    for name, make in zoo_mod.ZOO.items():
        a = make()
        rows.append({"name": name, "resolution": a.resolution, "width": a.width,
                     "layers": len(a.layers()), "params_m": round(a.params(trainable=True) / 1e6, 3),
                     "macs_m": round(a.macs() / 1e6, 1),
                     "published_params_m": (zoo_mod.PUBLISHED_PARAMS.get(name) or 0) / 1e6 or None})
        if write_dir:
            write_dir.mkdir(parents=True, exist_ok=True)
            save_arch(a, write_dir / f"{name}.json")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'network':22} {'res':>4} {'layers':>6} {'params (M)':>10} {'MACs (M)':>9}  published")
    for r in rows:
        pub = f"{r['published_params_m']:.1f}M" if r["published_params_m"] else ""
        click.echo(f"{r['name']:22} {r['resolution']:>4} {r['layers']:>6} {r['params_m']:>10.3f} "
                   f"{r['macs_m']:>9.1f}  {pub}")


@cli.command()
@click.option("--space", "space_name", type=_space_choice(), default="mnasnet", show_default=True,
              help="Search space: mnasnet (7 blocks), fbnet-cifar100 / fbnet-imagenet (HW-NAS-Bench), "
                   "or tiny (2 blocks, 32x32, for tests and first looks).")
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
              help=PRECISION_HELP)
@click.option("--list", "list_keys", is_flag=True, help="Print every distinct layer key.")
@click.option("--decode", "tokens", metavar="TOKENS",
              help="Print the network these tokens (e.g. 7-8-1-...) decode to, as arch.json.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def space(space_name: str, precision: str, list_keys: bool, tokens: str | None,
          as_json: bool) -> None:
    """Describe a search space: decisions, network count, distinct layers."""
    from .spaces import get_space

    sp = get_space(space_name)
    if tokens is not None:
        click.echo(sp.decode(sp.parse_tokens(tokens, "--decode")).to_json(), nl=False)
        return
    specs = sp.enumerate_specs(precision)
    if as_json:
        doc = {"space": sp.name, "precision": precision, "decisions": sp.decisions(),
               "tokens": sp.num_tokens, "vocab_sizes": list(sp.vocab_sizes),
               "networks": sp.size(), "distinct_networks": sp.distinct_networks(),
               "distinct_layers": len(specs)}
        if list_keys:
            doc["keys"] = [s.key for s in specs]
        _echo_json(doc)
        return
    if list_keys:
        for s in specs:
            click.echo(s.key)
        return
    for line in sp.summary():
        click.echo(line)
    click.echo(f"tokens: {sp.num_tokens}")
    click.echo(f"networks: {sp.size():.3e} token sequences")
    click.echo(f"distinct networks: {sp.distinct_networks():.3e} (equivalent token values merged)")
    click.echo(f"distinct layers ({precision}): {len(specs)}")


def _profile_specs(space_name: str | None, use_zoo: bool, arch_files: tuple[Path, ...],
                   precision: str):
    from .arch import load_arch, unique_specs

    chosen = [bool(space_name), use_zoo, bool(arch_files)]
    if sum(chosen) != 1:
        raise click.UsageError("give exactly one of --space NAME, --zoo, --arch FILE")
    if space_name:
        from .spaces import get_space

        return space_name, get_space(space_name).enumerate_specs(precision)
    if use_zoo:
        from .zoo import all_archs

        return "zoo", unique_specs(all_archs(), precision)
    archs = [load_arch(p) for p in arch_files]
    name = archs[0].name if len(archs) == 1 else "archs"
    return name, unique_specs(archs, precision)


def _summary_doc(s) -> dict:
    return {"device": s.device, "lut": str(s.lut), "total": s.total, "measured": s.measured,
            "failed": s.failed, "reused": s.reused, "skipped": s.skipped, "wall_s": s.wall_s,
            "stopped": s.stopped, "errors": s.errors, "health_before": s.health_before,
            "health_after": s.health_after}


@cli.command()
@click.option("--device", "device_names", multiple=True, default=("host",), show_default=True,
              help="Device profile name (device_profiles/NAME.toml); repeat for several.")
@click.option("--space", "space_name", type=_space_choice(),
              help="Every distinct layer of this search space.")
@click.option("--zoo", "use_zoo", is_flag=True, help="Every layer of the zoo networks.")
@click.option("--arch", "arch_files", multiple=True, type=click.Path(path_type=Path),
              help="Every layer of these arch.json files (rows already measured in the device's "
                   "other LUT files are copied, not measured again).")
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
              help=PRECISION_HELP)
@click.option("--lut-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("lut"),
              show_default=True, help=LUT_DIR_HELP)
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Conversion processes.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N layers (by key).")
@click.option("--retry-failed", is_flag=True, help="Measure again entries recorded as failed.")
@click.option("--split", is_flag=True,
              help="Identical phones share the work and one LUT (named after the first).")
@click.option("--dry-run", is_flag=True,
              help="Only report how many layers are missing and which file they would go to.")
@click.option("--no-progress", is_flag=True, help=NO_PROGRESS_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def profile(device_names, space_name, use_zoo, arch_files, precision, lut_dir, workers, limit,
            retry_failed, split, dry_run, no_progress, as_json) -> None:
    """Time every layer of a space / the zoo / arch files into a LUT per device."""
    from .devices import load_profile, open_device
    from .lut import lut_path
    from .profile import count_missing
    from .profile import profile as run_profile

    profiles = [load_profile(n) for n in device_names]
    space_label, specs = _profile_specs(space_name, use_zoo, arch_files, precision)
    if limit:
        specs = specs[:limit]
    reuse = bool(arch_files)
    if dry_run:
        docs = []
        for p in profiles:
            target = lut_path(lut_dir, p.name, space_label, precision)
            have, todo = count_missing(specs, lut_dir, p.name, precision, target, reuse,
                                       retry_failed)
            docs.append({"device": p.name, "distinct_layers": len(specs), "measured": have,
                         "missing": todo, "lut": str(target)})
        if as_json:
            _echo_json(docs)
            return
        for d in docs:
            click.echo(f"{d['device']}: {d['distinct_layers']} distinct layers, {d['measured']} "
                       f"already measured, {d['missing']} to measure -> {d['lut']}")
        return
    devices = [open_device(p) for p in profiles]
    summaries = []
    try:
        summaries = run_profile(devices, specs, space_label, precision, lut_dir,
                                workers=workers, retry_failed=retry_failed,
                                progress=progress_wanted(no_progress), split=split, reuse=reuse)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: every entry measured so far is in the LUT; "
                   "run the same command again to resume", err=True)
        sys.exit(1)
    finally:
        for d in devices:
            d.close()
    if as_json:
        _echo_json([_summary_doc(s) for s in summaries])
    else:
        for s in summaries:
            click.echo(s.line())
            if s.measured + s.failed and (s.health_before or s.health_after):
                note(f"  health before: {s.health_before}  after: {s.health_after}")
            for e in s.errors[:5]:
                click.echo(f"  failed: {e}", err=True)
            if len(s.errors) > 5:
                click.echo(f"  ... and {len(s.errors) - 5} more failures (status=failed rows)",
                           err=True)
    if any(s.stopped for s in summaries):
        click.echo("stopped early; run the same command again to resume", err=True)
        sys.exit(1)


def _lut_dir_option(f):
    return click.option("--lut-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("lut"), show_default=True, help=LUT_DIR_HELP)(f)


def _measurement_doc(m) -> dict:
    return m.to_dict()


def _measurement_line(m) -> str:
    return (f"median {m.median_ms:.3f} ms  (p10 {m.p10_ms:.3f}, p90 {m.p90_ms:.3f}, "
            f"std {m.std_ms:.3f})  {m.runs} runs, 95 % CI of the median ±{100 * m.ci_rel:.1f} %")


@cli.command()
@click.argument("arch_file", type=click.Path(path_type=Path))
@click.option("--device", "device_name", default="host", show_default=True, help=DEVICE_HELP)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
              help=PRECISION_HELP)
@_lut_dir_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--profile-missing", is_flag=True,
              help="Measure the layers missing from the LUT now (with no LUT at all, start one "
                   "named after the network: LUTDIR/DEVICE_NAME_PRECISION.csv).")
@click.option("--compare", is_flag=True,
              help="Also measure the whole network on the device and show predicted vs measured.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the per-layer breakdown and the totals (predicted, measured with "
                   "--compare) into this PNG.")
@click.option("--no-progress", is_flag=True, help=NO_PROGRESS_HELP)
def predict(arch_file, device_name, precision, lut_dir, as_json, profile_missing, compare,
            png_path, no_progress) -> None:
    """Predict the latency of ARCH_FILE (total and per layer).

    The device's LUT files in --lut-dir (DEVICE_*_PRECISION.csv: a space, the zoo, single
    networks) are merged into one table; files measured under other settings are refused.
    The total comes from the calibrated regression when `latbench calibrate` has written
    one ([regression]), else it is the plain sum of the layers ([lut]).
    """
    from .arch import load_arch, unique_specs
    from .devices import load_profile, open_device
    from .lut import find_luts
    from .predict import MissingKeys, load_predictor

    arch = load_arch(arch_file)
    profile_ = load_profile(device_name)  # unknown device: exit 2 listing the known ones
    progress = progress_wanted(no_progress or as_json)
    have_lut = bool(find_luts(lut_dir, device_name, precision))
    model = load_predictor(device_name, precision, lut_dir) if have_lut or not profile_missing \
        else None
    missing = model.table.missing([arch]) if model else [s.key for s in arch.layers(precision)]
    if missing and profile_missing:
        from .profile import profile as run_profile

        specs = [s for s in unique_specs([arch], precision) if s.key in set(missing)]
        note(f"measuring {len(specs)} missing layer(s) of {arch.name} on {device_name}")
        with open_device(profile_) as dev:
            summ = run_profile([dev], specs, arch.name, precision, lut_dir, progress=progress,
                               reuse=True)
        if summ and summ[0].stopped:
            exc = LatbenchError(f"profiling stopped: {summ[0].stopped}")
            exc.hint = ("the layers measured so far are in the LUT; reconnect the device and run "
                        "the same command again to resume")
            raise exc
        model = load_predictor(device_name, precision, lut_dir)
    elif missing:
        exc = MissingKeys(missing, device_name, precision)
        exc.hint = (f"or in one step: latbench predict {arch_file} --device {device_name} "
                    f"--precision {precision} --lut-dir {lut_dir} --profile-missing")
        raise exc
    total = float(model.predict([arch])[0])
    rows = model.breakdown(arch)
    lut_sum = sum(ms for _, ms in rows)
    measured = None
    if compare:
        from .e2e import measure_network

        with open_device(profile_) as dev:
            measured = measure_network(dev, arch, precision, progress)
    if png_path:
        from .breakdown import breakdown_png

        breakdown_png(png_path, f"{arch.name} on {device_name} ({precision})", rows, total,
                      model.name, measured.median_ms if measured else None)
        note(f"figure -> {png_path}")
    if as_json:
        doc = {"arch": arch.name, "device": device_name, "precision": precision,
               "predictor": model.name, "latency_ms": total, "lut_sum_ms": lut_sum,
               "macs": arch.macs(), "params": arch.params(trainable=True),
               "layers": [{"key": s.key, "ms": ms} for s, ms in rows]}
        if measured is not None:
            doc["measured"] = _measurement_doc(measured)
            doc["error_pct"] = 100 * (total - measured.median_ms) / measured.median_ms
            doc["lut_sum_error_pct"] = 100 * (lut_sum - measured.median_ms) / measured.median_ms
        _echo_json(doc)
        return
    click.echo(f"{arch.name} on {device_name} ({precision}): {total:.3f} ms "
               f"[{model.name}]   LUT sum {lut_sum:.3f} ms")
    for s, ms in rows:
        click.echo(f"  {ms:8.3f} ms  {100 * ms / lut_sum:5.1f} %  {s.key}")
    if measured is not None:
        med = measured.median_ms
        click.echo(f"measured end to end: {_measurement_line(measured)}")
        click.echo(f"predicted [{model.name}] {total:.3f} ms vs measured {med:.3f} ms: "
                   f"{100 * (total - med) / med:+.1f} %   (LUT sum {100 * (lut_sum - med) / med:+.1f} %)")


@cli.command()
@click.argument("arch_file", type=click.Path(path_type=Path))
@click.option("--device", "device_name", default="host", show_default=True, help=DEVICE_HELP)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
              help=PRECISION_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--no-progress", is_flag=True, help=NO_PROGRESS_HELP)
def measure(arch_file, device_name, precision, as_json, no_progress) -> None:
    """Time the whole network ARCH_FILE end to end on a device.

    Same protocol as a LUT row and as `calibrate`: the converted model (cached) is warmed up,
    then timed until the median's 95 % confidence interval is within 1 % or a cap is hit;
    prints the median, p10/p90, std and the number of timed runs.
    """
    from .arch import load_arch
    from .devices import load_profile, open_device
    from .e2e import measure_network

    arch = load_arch(arch_file)
    profile_ = load_profile(device_name)
    with open_device(profile_) as dev:
        m = measure_network(dev, arch, precision, progress_wanted(no_progress or as_json))
    if as_json:
        _echo_json({"arch": arch.name, "device": device_name, "precision": precision,
                    "macs": arch.macs(), "params": arch.params(trainable=True),
                    **_measurement_doc(m)})
        return
    click.echo(f"{arch.name} on {device_name} ({precision}): {_measurement_line(m)}")


@cli.command()
@click.argument("arch_file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the .tflite file.")
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
              help=PRECISION_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def export(arch_file, output, precision, as_json) -> None:
    """Convert a whole network to .tflite for use outside latbench."""
    from .arch import load_arch
    from .convert import convert_arch
    from .fileio import write_atomic

    arch = load_arch(arch_file)
    write_atomic(output, convert_arch(arch, precision).read_bytes())
    if as_json:
        _echo_json({"arch": arch.name, "output": str(output), "bytes": output.stat().st_size,
                    "precision": precision})
        return
    click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {precision})")


def _runnable(nets, table, precision):
    """Leave out networks holding a layer the device failed to run (LUT status=failed)."""
    keep = [n for n in nets if not table.failed([n.arch])]
    if len(keep) < len(nets):
        note(f"skipping {len(nets) - len(keep)} network(s) with layers that failed on this "
                   f"device (status=failed in the LUT; --retry-failed to measure them again)")
    return keep


@cli.command()
@click.option("--device", "device_name", default="host", show_default=True, help=DEVICE_HELP)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
              help=PRECISION_HELP)
@click.option("--archs", "n_archs", type=click.IntRange(1), default=100, show_default=True,
              help="Networks sampled from the space.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the network sample (validate uses another one).")
@click.option("--space", "space_name", type=_space_choice(), default="mnasnet", show_default=True,
              help="Search space the networks are sampled from.")
@click.option("--zoo/--no-zoo", "with_zoo", default=None,
              help="Also measure the zoo networks [default: when the space's family is the "
                   "zoo's (mnasnet: yes; fbnet-*: no)].")
@_lut_dir_option
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Conversion processes.")
@click.option("--no-progress", is_flag=True, help=NO_PROGRESS_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def calibrate(device_name, precision, n_archs, seed, space_name, with_zoo, lut_dir, workers,
              no_progress, as_json) -> None:
    """Measure whole networks end to end and fit the latency regression."""
    from .calibrate import fit_and_save, measure_networks, nets_path, sample_networks, zoo_networks
    from .devices import load_profile, open_device
    from .predict import load_table, predictor_path
    from .spaces import get_space

    profile_ = load_profile(device_name)
    table = load_table(device_name, precision, lut_dir)
    sp = get_space(space_name)
    nets = sample_networks(sp, n_archs, seed)
    if sp.calibrate_with_zoo if with_zoo is None else with_zoo:
        nets += zoo_networks()
    nets = _runnable(nets, table, precision)
    missing = table.missing([n.arch for n in nets])
    if missing:
        from .predict import MissingKeys

        exc = MissingKeys(missing, device_name, precision)
        exc.hint = (f"for the space's networks: latbench profile --device {device_name} --space "
                    f"{space_name} --precision {precision} --lut-dir {lut_dir}"
                    + (f"; for the zoo: the same with --zoo instead of --space {space_name}"
                       if with_zoo else ""))
        raise exc
    path = nets_path(lut_dir, device_name, precision, "calib")
    with open_device(profile_) as dev:
        results = measure_networks(dev, nets, path, precision, workers,
                                   progress_wanted(no_progress))
    wanted = {n.arch.digest() for n in nets}
    fitted, X, y = fit_and_save(table, [r for d, r in results.items() if d in wanted], lut_dir)
    from .validate import metrics

    if as_json:
        _echo_json({"device": device_name, "precision": precision, "networks": int(len(y)),
                    "measurements": str(path),
                    "predictor": str(predictor_path(lut_dir, device_name, precision)),
                    "training": {k: metrics(p.predict(X), y).__dict__
                                 for k, p in fitted.items()}})
        return
    click.echo(f"measured {len(y)} networks -> {path}")
    for k, p in fitted.items():
        m = metrics(p.predict(X), y)
        click.echo(f"  {k:10} training MAPE {m.mape:5.2f} %  within 10 % {m.within10:5.1f} %")
    click.echo(f"predictor -> {predictor_path(lut_dir, device_name, precision)}")


@cli.command()
@click.option("--device", "device_name", default="host", show_default=True, help=DEVICE_HELP)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True,
              help=PRECISION_HELP)
@click.option("--archs", "n_archs", type=click.IntRange(1), default=50, show_default=True,
              help="Held-out networks sampled from the space (those calibrate used are left out).")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Seed of the held-out sample.")
@click.option("--space", "space_name", type=_space_choice(), default="mnasnet", show_default=True,
              help="Search space the networks are sampled from.")
@_lut_dir_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Report directory [runs/validate-DEVICE-PRECISION].")
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Conversion processes.")
@click.option("--no-progress", is_flag=True, help=NO_PROGRESS_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def validate(device_name, precision, n_archs, seed, space_name, lut_dir, out_dir, workers,
             no_progress, as_json) -> None:
    """Held-out accuracy of every predictor against end-to-end measurements."""
    import pandas as pd

    from .calibrate import load_results, measure_networks, nets_path, sample_networks, zoo_networks
    from .devices import load_profile, open_device
    from .errors import InputError
    from .fileio import write_atomic
    from .predict import PREDICTOR_KINDS, load_table
    from .spaces import get_space
    from .validate import metrics, predict_heldout, scatter_png, zoo_leave_one_out

    profile_ = load_profile(device_name)
    table = load_table(device_name, precision, lut_dir)
    calib = nets_path(lut_dir, device_name, precision, "calib")
    if not calib.exists():
        raise InputError(f"no calibration measurements at {calib}; run: latbench calibrate "
                         f"--device {device_name} --precision {precision}")
    train = load_results(calib)
    nets = [n for n in sample_networks(get_space(space_name), n_archs, seed)
            if n.arch.digest() not in train]
    nets = _runnable(nets, table, precision)
    path = nets_path(lut_dir, device_name, precision, "validate")
    with open_device(profile_) as dev:
        results = measure_networks(dev, nets, path, precision, workers,
                                   progress_wanted(no_progress))
    test = [results[n.arch.digest()] for n in nets]
    preds, meas, rows = predict_heldout(table, list(train.values()), test)
    zoo_digests = {n.arch.digest() for n in zoo_networks()}
    zoo = zoo_leave_one_out(table, list(train.values()),
                            [r for d, r in train.items() if d in zoo_digests])
    out_dir = out_dir or Path("runs") / f"validate-{device_name}-{precision}"
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"name": [r.network.arch.name for r in rows], "measured_ms": meas,
                          **{f"{k}_ms": preds[k] for k in PREDICTOR_KINDS}})
    write_atomic(out_dir / "heldout.csv", frame.to_csv(index=False).encode())
    write_atomic(out_dir / "zoo.csv", pd.DataFrame(zoo).to_csv(index=False).encode())
    summary = {k: metrics(preds[k], meas).__dict__ for k in PREDICTOR_KINDS}
    write_atomic(out_dir / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    scatter_png(out_dir / "predicted_vs_measured.png", preds, meas,
                f"{device_name} {precision}: {len(meas)} held-out networks (seed {seed})", zoo)
    if as_json:
        _echo_json({"device": device_name, "precision": precision, "seed": seed,
                    "heldout": len(meas), "trained_on": len(train), "metrics": summary,
                    "zoo": zoo, "report": str(out_dir)})
        return
    click.echo(f"{len(meas)} held-out networks (seed {seed}), trained on {len(train)}:")
    click.echo(f"{'predictor':11} {'MAPE %':>7} {'RMSE ms':>8} {'±5 %':>6} {'±10 %':>6} "
               f"{'tau':>5} {'rho':>5}")
    for k, m in summary.items():
        click.echo(f"{k:11} {m['mape']:7.2f} {m['rmse_ms']:8.3f} {m['within5']:6.1f} "
                   f"{m['within10']:6.1f} {m['kendall_tau']:5.2f} {m['spearman_rho']:5.2f}")
    if zoo:
        click.echo("zoo (leave-one-out):")
        for z in zoo:
            click.echo(f"  {z['name']:22} measured {z['measured_ms']:8.3f} ms   " + "  ".join(
                f"{k} {z[f'{k}_err_pct']:+6.1f} %" for k in PREDICTOR_KINDS))
    click.echo(f"report -> {out_dir}/ (metrics.json, heldout.csv, zoo.csv, "
               f"predicted_vs_measured.png)")


@cli.group()
def lut() -> None:
    """Inspect the LUT folder."""


@lut.command("list")
@_lut_dir_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def lut_list(lut_dir: Path, as_json: bool) -> None:
    """Which devices, spaces and precisions have LUTs and predictors: rows, dates, identity.

    Files with the same identity were measured under the same settings (device fingerprint,
    runtime, converter, precision) and are merged by `predict`; a predictor names the
    identity of the LUT it was fitted on.
    """
    from .inventory import inventory

    if not lut_dir.is_dir():
        raise InputError(f"{lut_dir} is not a folder", "--lut-dir")
    entries = inventory(lut_dir)
    if as_json:
        _echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        note(f"no LUT or predictor files in {lut_dir}/; start with: latbench profile --device host "
             f"--arch examples/zoo/mobilenet_v2_x0.35.json")
        return
    head = ("FILE", "KIND", "DEVICE", "SPACE", "PREC", "ROWS", "FAILED", "LAST MEASURED",
            "IDENTITY")
    rows = [head] + [(e.file, e.kind, e.device or "-", e.space or "-", e.precision or "-",
                      str(e.rows), str(e.failed) if e.kind != "predictor" else "-",
                      (e.last_measured or e.created or "-")[:19], e.identity or "-")
                     for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    note("ROWS: layers (lut), networks (networks), training networks (predictor). Runtime and "
         "converter: --json.")


def _register_subsystem_commands() -> None:
    """Commands that live beside their subsystem."""
    from .devices.cli_devices import devices_command
    from .search.cli_search import search_command

    cli.add_command(devices_command, "devices")
    cli.add_command(search_command, "search")


_register_subsystem_commands()


def main() -> None:
    """Entry point: quiet TensorFlow, then map latbench errors to exit codes and one message."""
    from .quiet import quiet_tensorflow

    quiet_tensorflow()  # before anything imports TensorFlow (here and in worker processes)
    from .console import error_json, error_text

    as_json = "--json" in sys.argv[1:]

    def fail(exc: BaseException, code: int) -> None:
        if as_json:
            click.echo(error_json(exc, code))
        else:
            click.echo(error_text(exc), err=True)
        sys.exit(code)

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        if as_json:
            fail(exc, exc.exit_code)
        exc.show()
        sys.exit(exc.exit_code)
    except LatbenchError as exc:  # InputError (2), device and job failures (1)
        fail(exc, exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
