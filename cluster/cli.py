"""`quantum submit` and `quantum jobs`: run and manage `quantum` commands on a Ray cluster."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
jobs_app = typer.Typer(help="Jobs on a Ray cluster: list, logs, stop.", no_args_is_help=True)

AddressOption = Annotated[
    str | None,
    typer.Option(help="The cluster's dashboard, e.g. http://HEAD:8265 (default: RAY_ADDRESS, "
                 "then http://127.0.0.1:8265)."),
]


def _write(text: str) -> None:
    """Job output goes to stdout unchanged (no rich markup), as it arrives."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _fail(err: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {err}", soft_wrap=True)
    return typer.Exit(2)


def submit_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="train, tune or backtest; its options follow.")],
    address: AddressOption = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Stream the logs until the job ends.")
    ] = True,
    pip: Annotated[
        bool, typer.Option(help="Install the pinned dependencies per job (runtime_env pip).")
    ] = False,
    env: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE for the job's environment (no secrets).")
    ] = None,
    job_id: Annotated[str | None, typer.Option(help="Submission id (default: Ray's).")] = None,
    entrypoint_cpus: Annotated[
        float | None, typer.Option(help="CPUs reserved for the driver process.")
    ] = None,
) -> None:
    """Submit `quantum KIND [options]` to a Ray cluster and stream its logs.

    Example: quantum submit train --steps 1000000 --env-runners auto --out /mnt/runs/a
    --storage-path s3://bucket/quantum --address http://HEAD:8265
    """
    from cluster.jobs import JobSpec, follow, parse_env, submit

    try:
        spec = JobSpec(kind, tuple(ctx.args), pip=pip, env=parse_env(env or []),
                       entrypoint_num_cpus=entrypoint_cpus, submission_id=job_id)
    except ValueError as err:
        raise _fail(err) from err
    try:
        submitted = submit(spec, address)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise _fail(err) from err
    console.print(f"submitted {submitted}: {spec.entrypoint}")
    if not wait:
        return
    try:
        status = follow(submitted, address, _write)
    except KeyboardInterrupt:
        console.print(f"\nstopped following; the job goes on (quantum jobs stop {submitted})")
        raise typer.Exit(130) from None
    console.print(f"job {submitted}: {status}")
    if status != "SUCCEEDED":
        raise typer.Exit(1)


@jobs_app.command("list")
def list_command(address: AddressOption = None) -> None:
    """Every job on the cluster, newest first."""
    from cluster.jobs import job_rows

    table = Table(title="jobs")
    for column in ("id", "status", "start", "end", "entrypoint"):
        table.add_column(column)
    for row in job_rows(address):
        table.add_row(row["id"], row["status"], row["start"], row["end"], row["entrypoint"])
    console.print(table)


@jobs_app.command("logs")
def logs_command(
    job_id: Annotated[str, typer.Argument(help="Submission id.")],
    address: AddressOption = None,
    follow: Annotated[bool, typer.Option(help="Keep streaming until the job ends.")] = False,
) -> None:
    """A job's logs so far (or streamed with --follow)."""
    from cluster import jobs

    if follow:
        jobs.follow(job_id, address, _write)
    else:
        sys.stdout.write(jobs.client(address).get_job_logs(job_id))


@jobs_app.command("stop")
def stop_command(
    job_id: Annotated[str, typer.Argument(help="Submission id.")],
    address: AddressOption = None,
) -> None:
    """Stop a running job."""
    from cluster import jobs

    stopped = jobs.client(address).stop_job(job_id)
    console.print(f"job {job_id}: {'stop requested' if stopped else 'was not running'}")
