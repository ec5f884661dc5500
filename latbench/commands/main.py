"""The `latbench` command line. Each command is a thin layer over a module.

Exit codes: 0 ok, 1 failure, 2 usage error (bad arch.json, unknown device...).
Conventions (console.py): results on stdout, as JSON with --json (errors too);
progress bars and notes on stderr, bars only on a terminal; `latbench --quiet`
keeps stderr to errors.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from latbench._version import __version__
from latbench.commands.console import note, progress_wanted
from latbench.commands.options import (
    conditions_warning,
    converter_workers_option,
    device_option,
    echo_json,
    json_option,
    lut_dir_option,
    measurement_line,
    model_files_option,
    model_input_options,
    no_progress_option,
    precision_option,
    space_option,
)
from latbench.errors import InputError, Interrupted, LatbenchError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="latbench")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Only results and errors: no progress bars, notes or summaries on stderr.",
)
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """Measured-latency, platform-aware NAS for mobile CNNs."""
    ctx.meta["latbench.quiet"] = quiet


@cli.command()
@json_option
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write each network as DIR/NAME.json.",
)
def zoo(as_json: bool, write_dir: Path | None) -> None:
    """List the reference networks with parameters and MACs."""
    from latbench.nets import zoo as zoo_mod
    from latbench.nets.arch import save_arch

    rows = []
    for name, make in zoo_mod.ZOO.items():
        a = make()
        rows.append(
            {
                "name": name,
                "resolution": a.resolution,
                "width": a.width,
                "layers": len(a.layers()),
                "params_m": round(a.params(trainable=True) / 1e6, 3),
                "macs_m": round(a.macs() / 1e6, 1),
                "published_params_m": (zoo_mod.PUBLISHED_PARAMS.get(name) or 0) / 1e6 or None,
            }
        )
        if write_dir:
            write_dir.mkdir(parents=True, exist_ok=True)
            save_arch(a, write_dir / f"{name}.json")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(
        f"{'network':22} {'res':>4} {'layers':>6} {'params (M)':>10} {'MACs (M)':>9}  published"
    )
    for r in rows:
        pub = f"{r['published_params_m']:.1f}M" if r["published_params_m"] else ""
        click.echo(
            f"{r['name']:22} {r['resolution']:>4} {r['layers']:>6} {r['params_m']:>10.3f} "
            f"{r['macs_m']:>9.1f}  {pub}"
        )


@cli.command()
@space_option(
    "mnasnet: 7 blocks; fbnet-cifar100 / fbnet-imagenet: HW-NAS-Bench's; tiny: 2 blocks at 32x32."
)
@precision_option
@click.option("--list", "list_keys", is_flag=True, help="Print every distinct layer key.")
@click.option(
    "--decode",
    "tokens",
    metavar="TOKENS",
    help="Print the network these tokens (e.g. 7-8-1-...) decode to, as arch.json.",
)
@json_option
def space(
    space_name: str, precision: str, list_keys: bool, tokens: str | None, as_json: bool
) -> None:
    """Describe a search space: decisions, network count, distinct layers."""
    from latbench.nets.spaces import get_space

    sp = get_space(space_name)
    if tokens is not None:
        click.echo(sp.decode(sp.parse_tokens(tokens, "--decode")).to_json(), nl=False)
        return
    specs = sp.enumerate_specs(precision)
    if as_json:
        doc = {
            "space": sp.name,
            "precision": precision,
            "decisions": sp.decisions(),
            "tokens": sp.num_tokens,
            "vocab_sizes": list(sp.vocab_sizes),
            "networks": sp.size(),
            "distinct_networks": sp.distinct_networks(),
            "distinct_layers": len(specs),
        }
        if list_keys:
            doc["keys"] = [s.key for s in specs]
        echo_json(doc)
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


def _profile_specs(
    space_name: str | None, use_zoo: bool, arch_files: tuple[Path, ...], precision: str
):
    from latbench.nets.arch import unique_specs
    from latbench.nets.load import load_arch

    if space_name:
        from latbench.nets.spaces import get_space

        return space_name, get_space(space_name).enumerate_specs(precision)
    if use_zoo:
        from latbench.nets.zoo import all_archs

        return "zoo", unique_specs(all_archs(), precision)
    archs = [load_arch(p) for p in arch_files]
    name = archs[0].name if len(archs) == 1 else "archs"
    return name, unique_specs(archs, precision)


def _summary_doc(s) -> dict:
    return {
        "device": s.device,
        "lut": str(s.lut),
        "total": s.total,
        "measured": s.measured,
        "failed": s.failed,
        "reused": s.reused,
        "skipped": s.skipped,
        "wall_s": s.wall_s,
        "stopped": s.stopped,
        "errors": s.errors,
        "health_before": s.health_before,
        "health_after": s.health_after,
        "flagged": s.flagged,
        "sentinel": s.sentinel,
    }


@cli.command()
@device_option("device_names", multiple=True, help_extra="Repeat for several.")
@space_option("Every distinct layer of this search space.", default=None)
@click.option("--zoo", "use_zoo", is_flag=True, help="Every layer of the zoo networks.")
@click.option(
    "--arch",
    "arch_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Every layer of these arch.json files (rows already measured in the device's "
    "other LUT files are copied, not measured again).",
)
@model_files_option(
    "Every operator of this model (.tflite, .keras / .h5, SavedModel folder; repeat for "
    "several) into the device's operator LUT, LUTDIR/DEVICE_PRECISION.ops.csv; an operator "
    "shared by several models is measured once."
)
@model_input_options
@precision_option
@lut_dir_option
@converter_workers_option
@click.option("--limit", type=click.IntRange(1), help="Only the first N layers (by key).")
@click.option("--retry-failed", is_flag=True, help="Measure again entries recorded as failed.")
@click.option(
    "--split",
    is_flag=True,
    help="Identical phones share the work and one LUT (named after the first).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="A phone farm: the Ray cluster whose nodes advertise their phones as resources "
    "phone:SERIAL; each phone is timed by an actor on its node, phones matching one --device "
    "share its LUT (docs/phones.md).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only report how many layers are missing and which file they would go to.",
)
@no_progress_option
@json_option
def profile(
    device_names,
    space_name,
    use_zoo,
    arch_files,
    model_files,
    input_shape,
    signature,
    precision,
    lut_dir,
    workers,
    limit,
    retry_failed,
    split,
    ray_address,
    dry_run,
    no_progress,
    as_json,
) -> None:
    """Time every layer of a space / the zoo / arch files into a LUT per device, or every
    operator of any model (--model) into the device's operator LUT."""
    if ray_address and split:
        raise click.UsageError(
            "--split and --ray-address: a farm already shares one LUT per --device"
        )
    from latbench.devices import load_profile, open_device
    from latbench.profiling.layers import LAYERS, count_missing
    from latbench.profiling.layers import profile as run_profile

    chosen = [bool(space_name), use_zoo, bool(arch_files), bool(model_files)]
    if sum(chosen) != 1:
        raise click.UsageError("give exactly one of --space NAME, --zoo, --arch FILE, --model FILE")
    if (input_shape or signature) and not model_files:
        raise click.UsageError("--input-shape and --signature go with --model")
    profiles = [load_profile(n) for n in device_names]
    table, models = LAYERS, []
    if model_files:
        from latbench.build.models import parse_input_shape
        from latbench.profiling.oplut import OPS, prepare_models, unique_ops

        shape = parse_input_shape(input_shape)
        models = prepare_models(model_files, precision, shape, signature)
        space_label, specs, table = "ops", unique_ops(models), OPS
        for m in models:
            if m.decomposition.refused:
                note(f"{m.source}: not timed alone (whole model only): {m.refused_line()}")
    else:
        space_label, specs = _profile_specs(space_name, use_zoo, arch_files, precision)
    if limit:
        specs = specs[:limit]
    reuse = bool(arch_files)
    if dry_run:
        docs = []
        for p in profiles:
            target = table.lut_file(lut_dir, p.name, space_label, precision)
            have, todo = count_missing(
                specs, lut_dir, p.name, precision, target, reuse, retry_failed, table.lut_cls
            )
            docs.append(
                {
                    "device": p.name,
                    "distinct_layers": len(specs),
                    "measured": have,
                    "missing": todo,
                    "lut": str(target),
                }
            )
        if as_json:
            echo_json(docs)
            return
        for d in docs:
            click.echo(
                f"{d['device']}: {d['distinct_layers']} distinct {table.lut_cls.unit}s, "
                f"{d['measured']} "
                f"already measured, {d['missing']} to measure -> {d['lut']}"
            )
        return
    groups = None
    if ray_address:
        from latbench.devices.farm import open_farm

        groups = open_farm(profiles, ray_address)
        devices = [d for g in groups for d in g]
        for p, g in zip(profiles, groups):
            note(
                f"{p.name}: {len(g)} phone(s) on the farm: {', '.join(d.remote.serial for d in g)}"
            )
    else:
        devices = [open_device(p) for p in profiles]
    summaries = []
    try:
        summaries = run_profile(
            devices,
            specs,
            space_label,
            precision,
            lut_dir,
            workers=workers,
            retry_failed=retry_failed,
            progress=progress_wanted(no_progress),
            split=split,
            reuse=reuse,
            table=table,
            groups=groups,
        )
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted: every entry measured so far is in the LUT; "
            "run the same command again to resume"
        ) from None
    finally:
        for d in devices:
            d.close()
    if as_json:
        docs = [_summary_doc(s) for s in summaries]
        if models:
            for d in docs:
                d["models"] = [m.to_dict() for m in models]
        echo_json(docs)
    else:
        for s in summaries:
            click.echo(s.line())
            if s.measured + s.failed and (s.health_before or s.health_after):
                note(f"  health before: {s.health_before}  after: {s.health_after}")
            for e in s.errors[:5]:
                click.echo(f"  failed: {e}", err=True)
            if len(s.errors) > 5:
                click.echo(
                    f"  ... and {len(s.errors) - 5} more failures (status=failed rows)", err=True
                )
    if any(s.stopped for s in summaries):
        click.echo("stopped early; run the same command again to resume", err=True)
        sys.exit(1)


@cli.command()
@click.argument("model_file", metavar="MODEL", type=click.Path(path_type=Path))
@device_option()
@precision_option
@click.option(
    "--bursts",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Time the network in this many bursts a second apart; the confidence interval "
    "covers the spread between them (1: one burst, whose interval says nothing of drift).",
)
@model_input_options
@lut_dir_option
@json_option
@no_progress_option
def measure(
    model_file, device_name, precision, bursts, input_shape, signature, lut_dir, as_json,
    no_progress,
) -> None:  # fmt: skip
    """Time a model end to end on a device: latbench's arch.json, or any .tflite, .keras /
    .h5 Keras model or SavedModel folder.

    Same protocol as a LUT row and as `calibrate`: the converted model (cached) is warmed up,
    then timed until the median's 95 % confidence interval is within 1 % or a cap is hit,
    in --bursts bursts a second apart; the interval printed holds across the bursts. The
    sentinel layer is timed before and after (see docs/measurement.md): a machine slower than
    when the LUT was timed, or one whose speed moved meanwhile, gets a warning line. A Keras
    or SavedModel input is converted with --precision (int8: full-integer, the project's
    recipe); a .tflite is timed as it is.
    """
    from latbench.build.models import model_kind, parse_input_shape, prepare_model
    from latbench.devices import load_profile, open_device
    from latbench.nets.load import load_arch
    from latbench.profiling.sentinel import measure_watched

    kind = model_kind(model_file)
    shape = parse_input_shape(input_shape)
    profile_ = load_profile(device_name)
    if kind == "arch":
        if shape or signature:
            raise InputError("goes with a model file, not an arch.json", "--input-shape")
        target = load_arch(model_file)
        doc = {
            "arch": target.name,
            "macs": target.macs(),
            "params": target.params(trainable=True),
        }
    else:
        target = prepare_model(model_file, precision, shape, signature)
        doc = {
            "model": str(model_file),
            "kind": target.kind,
            "tflite": str(target.path),
            "inputs": target.inputs,
            "ops": target.extra.get("ops", {}),
        }
    with open_device(profile_) as dev:
        m = measure_watched(
            dev, target, precision, lut_dir, progress_wanted(no_progress or as_json), bursts
        )
    warning = conditions_warning(m)
    held = getattr(target, "precision", precision)  # a .tflite: "as-is"
    if as_json:
        echo_json(
            {**doc, "device": device_name, "precision": held, **m.to_dict(), "warning": warning}
        )
        return
    click.echo(f"{target.name} on {device_name} ({held}): {measurement_line(m)}")
    if warning:
        click.echo(warning, err=True)


@cli.command()
@click.argument("arch_file", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the .tflite file.",
)
@precision_option
@json_option
def export(arch_file, output, precision, as_json) -> None:
    """Convert a whole network to .tflite for use outside latbench."""
    from latbench.build.convert import convert_arch
    from latbench.fileio import write_atomic
    from latbench.nets.load import load_arch

    arch = load_arch(arch_file)
    write_atomic(output, convert_arch(arch, precision).read_bytes())
    if as_json:
        echo_json(
            {
                "arch": arch.name,
                "output": str(output),
                "bytes": output.stat().st_size,
                "precision": precision,
            }
        )
        return
    click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {precision})")


@cli.group()
def lut() -> None:
    """Inspect the LUT folder."""


@lut.command("list")
@lut_dir_option
@json_option
def lut_list(lut_dir: Path, as_json: bool) -> None:
    """Which devices, spaces and precisions have LUTs and predictors: rows, dates, identity.

    Files with the same identity were measured under the same settings (device fingerprint,
    runtime, converter, precision) and are merged by `predict`; a predictor names the
    identity of the LUT it was fitted on.
    """
    from latbench.profiling.inventory import inventory

    if not lut_dir.is_dir():
        raise InputError(f"{lut_dir} is not a folder", "--lut-dir")
    entries = inventory(lut_dir)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        note(
            f"no LUT or predictor files in {lut_dir}/; start with: latbench profile --device host "
            f"--arch examples/zoo/mobilenet_v2_x0.35.json"
        )
        return
    head = (
        "FILE",
        "KIND",
        "DEVICE",
        "SPACE",
        "PREC",
        "ROWS",
        "FAILED",
        "LAST MEASURED",
        "IDENTITY",
    )
    rows = [head] + [
        (
            e.file,
            e.kind,
            e.device or "-",
            e.space or "-",
            e.precision or "-",
            str(e.rows),
            str(e.failed) if e.kind != "predictor" else "-",
            (e.last_measured or e.created or "-")[:19],
            e.identity or "-",
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    for e in entries:
        if e.note:
            click.echo(f"{e.file}: {e.note}")
    note(
        "ROWS: layers (lut), operators (oplut), networks (networks), Keras networks (refs), "
        "sentinel readings (sentinel), training networks (predictor). Runtime and converter: --json."
    )


def _register_subsystem_commands() -> None:
    """Commands that live beside their subsystem."""
    from latbench.commands.compare import compare_command
    from latbench.commands.devices import devices_command
    from latbench.commands.predict import calibrate_command, predict_command, validate_command
    from latbench.commands.proxy import proxy_validity_command
    from latbench.commands.search import search_command
    from latbench.commands.tuning import netadapt_command, scale_command

    cli.add_command(predict_command, "predict")
    cli.add_command(calibrate_command, "calibrate")
    cli.add_command(validate_command, "validate")
    cli.add_command(devices_command, "devices")
    cli.add_command(search_command, "search")
    cli.add_command(compare_command, "compare")
    cli.add_command(netadapt_command, "netadapt")
    cli.add_command(scale_command, "scale")
    cli.add_command(proxy_validity_command, "proxy-validity")


_register_subsystem_commands()


def main() -> None:
    """Entry point: quiet TensorFlow, then map latbench errors to exit codes and one message.

    A reader that goes away (`latbench zoo | head -1`) ends the command quietly with exit 0,
    as `ls | head` does; Ctrl-C ends it with exit 130 and, under --json, one JSON object.
    """
    from latbench.quiet import quiet_tensorflow

    quiet_tensorflow()  # before anything imports TensorFlow (here and in worker processes)
    from latbench.commands.console import error_json, error_text

    as_json = "--json" in sys.argv[1:]

    def fail(exc: BaseException, code: int) -> None:
        try:
            if as_json:
                click.echo(error_json(exc, code))
            else:
                click.echo(error_text(exc), err=True)
        except BrokenPipeError:  # nobody left to tell
            _stdout_gone()
        sys.exit(code)

    stdout = sys.stdout
    try:
        cli.main(standalone_mode=False)
    except BrokenPipeError:
        _stdout_gone()
    except SystemExit:
        # click met EPIPE on stdout or stderr, swapped both and exits 1: a closed stdout is
        # not a failure (exit 0); a closed stderr alone stays one
        if sys.stdout is not stdout and _broken(1):
            _stdout_gone()
        raise
    except (click.exceptions.Abort, KeyboardInterrupt):
        fail(
            Interrupted(
                "interrupted; what was measured is kept: run the same command again to resume"
            ),
            130,
        )
    except click.ClickException as exc:
        if as_json:
            fail(exc, exc.exit_code)
        exc.show()
        sys.exit(exc.exit_code)
    except LatbenchError as exc:  # InputError (2), device and job failures (1)
        fail(exc, exc.exit_code)
    except OSError as exc:  # a full disk or a read-only folder under a writer of its own
        from latbench.fileio import write_failure

        if (refused := write_failure(exc)) is None:
            raise
        fail(refused, refused.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def _broken(fd: int) -> bool:
    """Whether the pipe behind `fd` has lost its reader."""
    import select

    try:
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (OSError, ValueError):
        return False


def _stdout_gone() -> None:
    """The reader of stdout went away: point stdout at /dev/null so the interpreter's final
    flush cannot fail again, and exit 0 without a word."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
