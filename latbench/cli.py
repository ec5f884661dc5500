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


def _register_subsystem_commands() -> None:
    """Commands that live beside their subsystem."""
    from .cli_predict import calibrate_command, predict_command, validate_command
    from .devices.cli_devices import devices_command
    from .search.cli_search import search_command

    cli.add_command(predict_command, "predict")
    cli.add_command(calibrate_command, "calibrate")
    cli.add_command(validate_command, "validate")
    cli.add_command(devices_command, "devices")
    cli.add_command(search_command, "search")


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
