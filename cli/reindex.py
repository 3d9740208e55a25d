"""``citygrid reindex``: assign a Parquet dataset to a layer version on a Ray cluster.

    citygrid reindex buildings.parquet --layer 2026 -o buildings-2026/
    citygrid reindex points/ --layer 2026 --previous 2025 -o points-2026/ --address ray://head:10001 \\
        --events open-events.parquet --grid-workers workers.parquet
    citygrid reindex --resume reindex-4f2a9c0d1e2b

Without ``--address`` a local Ray of ``--workers`` CPUs is started for the run and shut down after it.
The job is recorded in the data directory's database: Ctrl-C cancels it (the partitions written are
kept), and ``--resume JOB_ID`` finishes a cancelled, failed or interrupted one.

Exit status: 0 the job succeeded, 1 it failed or was cancelled, 2 the request was refused.
"""

from __future__ import annotations

import argparse
import json
import sys

from citygrid.cli.common import add_crs_argument, add_field_arguments, field_map
from citygrid.cluster.reindex import DEFAULT_TASK_ROWS, PARTITION_LEVELS, ReindexRequest
from citygrid.engine.errors import InvalidInput
from citygrid.cluster.jobs import Job, JobState


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reindex",
        help="assign a Parquet dataset to a layer version on Ray (partitioned output, change report)",
        description="Assign every row of INPUT to the grids of --layer on a Ray cluster and write the rows "
        "with grid code, status and parent codes as a Parquet dataset partitioned by street (or "
        "--partition-by). With --previous, also write a change report under OUTPUT/_changes/.",
    )
    parser.add_argument("input", nargs="?", metavar="INPUT", help="a Parquet file or a directory of them")
    parser.add_argument("--layer", metavar="PATH|ID", help="layer version: saved version id, version directory or grid file")
    parser.add_argument("--previous", metavar="PATH|ID", help="the version it replaces: adds the change report")
    parser.add_argument("-o", "--output", metavar="OUTPUT", help="output directory (new or empty)")
    parser.add_argument("--address", metavar="RAY_ADDRESS",
                        help="Ray cluster to run on (e.g. ray://head:10001 or auto); default: start a local one")
    parser.add_argument("--workers", type=int, metavar="N", help="CPUs of the local Ray (default: all); not with --address")
    parser.add_argument("--lng-col", default="lng", metavar="COLUMN", help="longitude column (default: lng)")
    parser.add_argument("--lat-col", default="lat", metavar="COLUMN", help="latitude column (default: lat)")
    parser.add_argument("--row-id-col", default="row_id", metavar="COLUMN",
                        help="id column of INPUT, kept in the output; created from row positions when absent (default: row_id)")
    parser.add_argument("--partition-by", choices=sorted(PARTITION_LEVELS), default="street",
                        help="level the output is partitioned by (default: street)")
    add_crs_argument(parser, of="INPUT's points")
    parser.add_argument("--fallback-m", type=float, default=0.0, metavar="METRES",
                        help="give points this close outside every grid the nearest grid (default: 0, off)")
    parser.add_argument("--task-rows", type=int, default=DEFAULT_TASK_ROWS, metavar="N",
                        help=f"target points per task (default: {DEFAULT_TASK_ROWS:,})")
    parser.add_argument("--events", metavar="PARQUET",
                        help="open events (event_id, lng, lat[, grid_code]) to check for a changed grid; needs --previous")
    parser.add_argument("--grid-workers", metavar="PARQUET",
                        help="grid workers (worker_id, grid_code) to check for split or merged grids; needs --previous")
    parser.add_argument("--resume", metavar="JOB_ID", help="finish an interrupted, failed or cancelled job instead")
    parser.add_argument("--json", action="store_true", help="print the final job record as JSON (no progress bar)")
    add_field_arguments(parser)
    parser.set_defaults(func=run_reindex)


def run_reindex(args: argparse.Namespace) -> int:
    from citygrid.cluster.runner import JobRunner

    if args.workers is not None and args.address:
        raise InvalidInput("--workers sizes a local Ray; a cluster given by --address has its own workers")
    request = None if args.resume else _request(args)
    with JobRunner(args.data_dir, address=args.address, num_cpus=args.workers) as runner:
        job_id = runner.resume(args.resume).job_id if args.resume else runner.submit_reindex(request)
        try:
            job = _follow(runner, job_id, bar=not args.json and sys.stderr.isatty())
        except KeyboardInterrupt:
            runner.cancel(job_id)
            job = runner.wait(job_id)
    _print(job, as_json=args.json)
    return 0 if job.state is JobState.SUCCEEDED else 1


def _request(args: argparse.Namespace) -> ReindexRequest:
    missing = [flag for flag, value in (("INPUT", args.input), ("--layer", args.layer), ("-o", args.output)) if not value]
    if missing:
        raise InvalidInput(f"give {', '.join(missing)} (or --resume JOB_ID)")
    fields = field_map(args)
    return ReindexRequest(
        input=args.input, layer=args.layer, output=args.output, previous=args.previous,
        lng_col=args.lng_col, lat_col=args.lat_col, row_id_col=args.row_id_col,
        partition_by=args.partition_by, crs=args.crs, fallback_m=args.fallback_m, task_rows=args.task_rows,
        events=args.events, grid_workers=args.grid_workers,
        fields={name: getattr(fields, name) for name in fields.__dataclass_fields__},
    )


def _follow(runner, job_id: str, *, bar: bool) -> Job:
    """Watch the job to its end, with a tqdm bar of points on stderr."""
    from tqdm import tqdm

    job = runner.get(job_id)
    print(f"citygrid reindex: job {job_id}", file=sys.stderr)
    with tqdm(total=0, unit="pt", unit_scale=True, file=sys.stderr, disable=not bar, dynamic_ncols=True) as progress:
        for job in runner.watch(job_id):
            progress.total = job.rows_total
            progress.set_description(job.phase or job.state.value, refresh=False)
            progress.set_postfix_str(f"tasks {job.tasks_done}/{job.tasks_total}", refresh=False)
            progress.update(job.rows_done - progress.n)  # tqdm keeps the rate; a resume may step back
    return job


def _print(job: Job, *, as_json: bool) -> None:
    if as_json:
        record = {
            "job_id": job.job_id, "state": job.state.value, "rows_total": job.rows_total,
            "rows_done": job.rows_done, "tasks_done": job.tasks_done, "tasks_total": job.tasks_total,
            "partitions_written": job.partitions_written, "error": job.error, "result": job.result,
        }
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return
    if job.state is JobState.SUCCEEDED:
        r = job.result
        print(f"job {job.job_id} succeeded: {r['rows']:,} rows in {r['tasks']} tasks, "
              f"{r['partitions_written']} files under {r['output']}")
        print("status: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["status_counts"].items())))
        if "changes" in r:
            c = r["changes"]
            print(f"changes from {c['previous_version']}: {c['rows_moved']:,} rows moved "
                  f"({c['moved_share']:.2%}), {c['grids_split']} grids split, {c['grids_merged']} merged, "
                  f"{c['events_changed']} open events changed grid, {c['workers_to_confirm']} workers to confirm "
                  f"(see {r['output']}/_changes/)")
    else:
        print(f"job {job.job_id} {job.state.value}: {job.error or ''}".rstrip())
        if job.state.resumable:
            fix = "once the cause above is fixed, " if job.state is JobState.FAILED else ""
            print(f"{job.partitions_written} partition files kept; {fix}finish it with: "
                  f"citygrid reindex --resume {job.job_id}")
