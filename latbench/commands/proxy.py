"""`latbench proxy-validity`: is the proxy accuracy worth ranking networks by? Wiring only.

The study itself (training, Kendall tau, seed spread, the PNG) is `proxy.validity.study`.
"""

from __future__ import annotations

from pathlib import Path

import click

from latbench.commands.options import echo_json, no_progress_option, space_option


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Study folder (results.jsonl, summary.json, validity.png); re-run to resume.",
)
@click.option(
    "--networks",
    type=int,
    default=20,
    show_default=True,
    help="Networks drawn from the space (plus two zoo references).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which networks are drawn.")
@click.option(
    "--factor",
    type=int,
    default=5,
    show_default=True,
    help="The reference trains on factor x as many images (same epochs).",
)
@click.option(
    "--seeds", type=int, default=3, show_default=True, help="Recipe seeds for the spread."
)
@click.option(
    "--spread-networks",
    type=int,
    default=5,
    show_default=True,
    help="How many networks are trained with every recipe seed.",
)
@space_option()
@no_progress_option
def proxy_validity_command(
    out_dir: Path,
    networks: int,
    seed: int,
    factor: int,
    seeds: int,
    spread_networks: int,
    space_name: str,
    no_progress: bool,
) -> None:
    """Proxy accuracy against a reference trained longer: Kendall tau, seed spread, PNG."""
    from latbench.commands.console import progress_wanted
    from latbench.proxy.validity import study

    summary = study(
        out_dir,
        networks,
        seed,
        factor,
        seeds,
        spread_networks,
        space_name,
        progress=progress_wanted(no_progress),
    )
    echo_json({k: v for k, v in summary.items() if k != "seed_spread"})
