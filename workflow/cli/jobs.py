"""`rasterflow job`: run the whole driver inside one Slurm or PBS allocation."""

from __future__ import annotations

from pathlib import Path

import click

from rasterflow.workflow.cli.common import guarded


def _walltime(ctx, param, value):
    from rasterflow.executors.job_scripts import WALLTIME_RE

    if value is not None and not WALLTIME_RE.match(value):
        raise click.BadParameter(f"expected HH:MM:SS, got {value!r}")
    return value


@click.command("job")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--site",
    required=True,
    help="A slurm or pbs site: name (site_configs/NAME.toml) or path to a TOML file.",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=None,
    help="Nodes for the job [default: the site's nodes_per_block].",
)
@click.option(
    "--walltime",
    callback=_walltime,
    default=None,
    metavar="HH:MM:SS",
    help="Walltime of each job [default: the site's walltime].",
)
@click.option(
    "--chain",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Submit K jobs, each starting after the previous one ends (afterany): "
    "for runs longer than the walltime limit.",
)
@click.option("--dry-run", is_flag=True,
              help="Print the batch script (placeholders marked); submit nothing.")  # fmt: skip
def job(config: Path, site: str, nodes, walltime, chain: int, dry_run: bool) -> None:
    """Submit CONFIG's run as a batch job: the driver runs inside the allocation."""
    from rasterflow.executors.jobs import submit_command, submit_jobs
    from rasterflow.workflow.submit import job_script

    script = guarded(lambda: job_script(config, site, nodes, walltime))
    if dry_run:
        click.echo(script.text, nl=False)
        path = script.jobs_dir / f"<script>.{'sbatch' if script.scheduler == 'slurm' else 'pbs'}"
        first = " ".join(submit_command(script.scheduler, path))
        then = " ".join(submit_command(script.scheduler, path, "<previous job>"))
        click.echo(f"dry run: nothing submitted; would run `{first}`", err=True)
        if chain > 1:
            click.echo(f"  then {chain - 1} more: `{then}`", err=True)
        return
    jobs = guarded(lambda: submit_jobs(script, chain))
    for submitted in jobs:
        after = f" after {submitted.after}" if submitted.after else ""
        click.echo(f"submitted job {submitted.job_id}{after}; log: {submitted.log}")
    click.echo(f"batch script: {jobs[0].script}")


COMMANDS: list = [job]
