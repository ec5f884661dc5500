"""The `latbench` command line. Each command is a thin layer over a module.

Exit codes: 0 ok, 1 failure, 2 usage error (bad arch.json, unknown device...).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import InputError, LatbenchError

PRECISIONS = click.Choice(["fp32", "int8"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="latbench")
def cli() -> None:
    """Measured-latency, platform-aware NAS for mobile CNNs."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
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
@click.option("--space", "space_name", default="mnasnet", show_default=True)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True)
@click.option("--list", "list_keys", is_flag=True, help="Print every distinct layer key.")
def space(space_name: str, precision: str, list_keys: bool) -> None:
    """Describe a search space: decisions, network count, distinct layers."""
    from .space import DECISIONS, get_space

    sp = get_space(space_name)
    specs = sp.enumerate_specs(precision)
    if list_keys:
        for s in specs:
            click.echo(s.key)
        return
    click.echo(f"space {sp.name}: {sp.num_blocks} blocks x {len(DECISIONS)} decisions")
    for name, choices in DECISIONS:
        click.echo(f"  {name:8} {list(choices)}")
    click.echo(f"networks: {sp.size():.3e}")
    click.echo(f"distinct layers ({precision}): {len(specs)}")


def _profile_specs(space_name: str | None, use_zoo: bool, arch_files: tuple[Path, ...],
                   precision: str):
    from .arch import load_arch, unique_specs

    chosen = [bool(space_name), use_zoo, bool(arch_files)]
    if sum(chosen) != 1:
        raise click.UsageError("give exactly one of --space NAME, --zoo, --arch FILE")
    if space_name:
        from .space import get_space

        return space_name, get_space(space_name).enumerate_specs(precision)
    if use_zoo:
        from .zoo import all_archs

        return "zoo", unique_specs(all_archs(), precision)
    archs = [load_arch(p) for p in arch_files]
    name = archs[0].name if len(archs) == 1 else "archs"
    return name, unique_specs(archs, precision)


@cli.command()
@click.option("--device", "device_names", multiple=True, default=("host",), show_default=True,
              help="Device profile name (device_profiles/NAME.toml); repeat for several.")
@click.option("--space", "space_name", help="Every distinct layer of this search space.")
@click.option("--zoo", "use_zoo", is_flag=True, help="Every layer of the zoo networks.")
@click.option("--arch", "arch_files", multiple=True, type=click.Path(path_type=Path),
              help="Every layer of these arch.json files.")
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True)
@click.option("--lut-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("lut"),
              show_default=True)
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Conversion processes.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N layers (by key).")
@click.option("--retry-failed", is_flag=True, help="Measure again entries recorded as failed.")
@click.option("--split", is_flag=True,
              help="Identical phones share the work and one LUT (named after the first).")
@click.option("--dry-run", is_flag=True, help="Only report what would be profiled.")
@click.option("--no-progress", is_flag=True)
def profile(device_names, space_name, use_zoo, arch_files, precision, lut_dir, workers, limit,
            retry_failed, split, dry_run, no_progress) -> None:
    """Time every layer of a space / the zoo / arch files into a LUT per device."""
    from .devices import load_profile, open_device
    from .lut import lut_path
    from .profile import profile as run_profile

    profiles = [load_profile(n) for n in device_names]
    space_label, specs = _profile_specs(space_name, use_zoo, arch_files, precision)
    if limit:
        specs = specs[:limit]
    if dry_run:
        for p in profiles:
            click.echo(f"{p.name}: {len(specs)} distinct layers -> "
                       f"{lut_path(lut_dir, p.name, space_label, precision)}")
        return
    devices = [open_device(p) for p in profiles]
    summaries = []
    try:
        summaries = run_profile(devices, specs, space_label, precision, lut_dir,
                                workers=workers, retry_failed=retry_failed,
                                progress=not no_progress, split=split)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: every entry measured so far is in the LUT; "
                   "run the same command again to resume", err=True)
        sys.exit(1)
    finally:
        for d in devices:
            d.close()
    for s in summaries:
        click.echo(s.line())
        if s.measured + s.failed and (s.health_before or s.health_after):
            click.echo(f"  health before: {s.health_before}  after: {s.health_after}")
        for e in s.errors[:5]:
            click.echo(f"  failed: {e}", err=True)
        if len(s.errors) > 5:
            click.echo(f"  ... and {len(s.errors) - 5} more failures (status=failed rows)", err=True)
    if any(s.stopped for s in summaries):
        click.echo("stopped early; run the same command again to resume", err=True)
        sys.exit(1)


def _lut_dir_option(f):
    return click.option("--lut-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("lut"), show_default=True)(f)


@cli.command()
@click.argument("arch_file", type=click.Path(path_type=Path))
@click.option("--device", "device_name", default="host", show_default=True)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True)
@_lut_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--profile-missing", is_flag=True, help="Measure missing LUT entries now.")
def predict(arch_file, device_name, precision, lut_dir, as_json, profile_missing) -> None:
    """Predict the latency of ARCH_FILE (total and per layer)."""
    from .arch import load_arch, unique_specs
    from .devices import load_profile, open_device
    from .predict import MissingKeys, load_predictor

    arch = load_arch(arch_file)
    load_profile(device_name)  # unknown device: exit 2 listing the known ones
    model = load_predictor(device_name, precision, lut_dir)
    missing = model.table.missing([arch])
    if missing and profile_missing:
        from .profile import profile as run_profile

        specs = [s for s in unique_specs([arch], precision) if s.key in set(missing)]
        with open_device(load_profile(device_name)) as dev:
            run_profile([dev], specs, arch.name, precision, lut_dir, progress=not as_json)
        model = load_predictor(device_name, precision, lut_dir)
    elif missing:
        raise MissingKeys(missing, device_name, precision)
    total = float(model.predict([arch])[0])
    rows = model.breakdown(arch)
    lut_sum = sum(ms for _, ms in rows)
    if as_json:
        click.echo(json.dumps({
            "arch": arch.name, "device": device_name, "precision": precision,
            "predictor": model.name, "latency_ms": total, "lut_sum_ms": lut_sum,
            "macs": arch.macs(), "params": arch.params(trainable=True),
            "layers": [{"key": s.key, "ms": ms} for s, ms in rows]}, indent=2))
        return
    click.echo(f"{arch.name} on {device_name} ({precision}): {total:.3f} ms "
               f"[{model.name}]   LUT sum {lut_sum:.3f} ms")
    for s, ms in rows:
        click.echo(f"  {ms:8.3f} ms  {100 * ms / lut_sum:5.1f} %  {s.key}")


@cli.command()
@click.argument("arch_file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True)
def export(arch_file, output, precision) -> None:
    """Convert a whole network to .tflite for use outside latbench."""
    from .arch import load_arch
    from .convert import convert_arch
    from .fileio import write_atomic

    arch = load_arch(arch_file)
    write_atomic(output, convert_arch(arch, precision).read_bytes())
    click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {precision})")


def _runnable(nets, table, precision):
    """Leave out networks holding a layer the device failed to run (LUT status=failed)."""
    keep = [n for n in nets if not table.failed([n.arch])]
    if len(keep) < len(nets):
        click.echo(f"skipping {len(nets) - len(keep)} network(s) with layers that failed on this "
                   f"device (status=failed in the LUT; --retry-failed to measure them again)",
                   err=True)
    return keep


@cli.command()
@click.option("--device", "device_name", default="host", show_default=True)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True)
@click.option("--archs", "n_archs", type=click.IntRange(1), default=100, show_default=True,
              help="Networks sampled from the space.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--space", "space_name", default="mnasnet", show_default=True)
@click.option("--zoo/--no-zoo", "with_zoo", default=True, show_default=True,
              help="Also measure the zoo networks.")
@_lut_dir_option
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--no-progress", is_flag=True)
def calibrate(device_name, precision, n_archs, seed, space_name, with_zoo, lut_dir, workers,
              no_progress) -> None:
    """Measure whole networks end to end and fit the latency regression."""
    from .calibrate import fit_and_save, measure_networks, nets_path, sample_networks, zoo_networks
    from .devices import load_profile, open_device
    from .predict import load_table, predictor_path
    from .space import get_space

    profile_ = load_profile(device_name)
    table = load_table(device_name, precision, lut_dir)
    nets = sample_networks(get_space(space_name), n_archs, seed)
    if with_zoo:
        nets += zoo_networks()
    nets = _runnable(nets, table, precision)
    missing = table.missing([n.arch for n in nets])
    if missing:
        from .predict import MissingKeys

        raise MissingKeys(missing, device_name, precision)
    path = nets_path(lut_dir, device_name, precision, "calib")
    with open_device(profile_) as dev:
        results = measure_networks(dev, nets, path, precision, workers, not no_progress)
    wanted = {n.arch.digest() for n in nets}
    fitted, X, y = fit_and_save(table, [r for d, r in results.items() if d in wanted], lut_dir)
    from .validate import metrics

    click.echo(f"measured {len(y)} networks -> {path}")
    for k, p in fitted.items():
        m = metrics(p.predict(X), y)
        click.echo(f"  {k:10} training MAPE {m.mape:5.2f} %  within 10 % {m.within10:5.1f} %")
    click.echo(f"predictor -> {predictor_path(lut_dir, device_name, precision)}")


@cli.command()
@click.option("--device", "device_name", default="host", show_default=True)
@click.option("--precision", type=PRECISIONS, default="fp32", show_default=True)
@click.option("--archs", "n_archs", type=click.IntRange(1), default=50, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--space", "space_name", default="mnasnet", show_default=True)
@_lut_dir_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Report directory [runs/validate-DEVICE-PRECISION].")
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--no-progress", is_flag=True)
def validate(device_name, precision, n_archs, seed, space_name, lut_dir, out_dir, workers,
             no_progress) -> None:
    """Held-out accuracy of every predictor against end-to-end measurements."""
    import pandas as pd

    from .calibrate import load_results, measure_networks, nets_path, sample_networks, zoo_networks
    from .devices import load_profile, open_device
    from .errors import InputError
    from .predict import PREDICTOR_KINDS, load_table
    from .space import get_space
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
        results = measure_networks(dev, nets, path, precision, workers, not no_progress)
    test = [results[n.arch.digest()] for n in nets]
    preds, meas, rows = predict_heldout(table, list(train.values()), test)
    zoo_digests = {n.arch.digest() for n in zoo_networks()}
    zoo = zoo_leave_one_out(table, list(train.values()),
                            [r for d, r in train.items() if d in zoo_digests])
    out_dir = out_dir or Path("runs") / f"validate-{device_name}-{precision}"
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"name": [r.network.arch.name for r in rows], "measured_ms": meas,
                          **{f"{k}_ms": preds[k] for k in PREDICTOR_KINDS}})
    frame.to_csv(out_dir / "heldout.csv", index=False)
    pd.DataFrame(zoo).to_csv(out_dir / "zoo.csv", index=False)
    summary = {k: metrics(preds[k], meas).__dict__ for k in PREDICTOR_KINDS}
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    scatter_png(out_dir / "predicted_vs_measured.png", preds, meas,
                f"{device_name} {precision}: {len(meas)} held-out networks (seed {seed})", zoo)
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


def _register_subsystem_commands() -> None:
    """Commands that live beside their subsystem."""
    from .devices.cli_devices import devices_command
    from .cli_tuning import netadapt_command, scale_command
    from .search.cli_search import search_command

    cli.add_command(devices_command, "devices")
    cli.add_command(search_command, "search")
    cli.add_command(netadapt_command, "netadapt")
    cli.add_command(scale_command, "scale")


_register_subsystem_commands()


def main() -> None:
    """Entry point: map latbench errors to exit codes and one clear message."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except LatbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
