"""Mutation testing of the kernels and the case lifecycle with cosmic-ray (not part of the test run).

Each target is a module and the tests that guard it; cosmic-ray changes one operator, number or
comparison at a time in the module (a mutant), runs the tests, and a mutant the tests still pass
*survives*: a bug of that shape would go unnoticed. Run it from the repository root, on a clean tree
(cosmic-ray edits the module in place and puts it back after each mutant; this driver refuses a
module with uncommitted changes and checks it is unchanged at the end)::

    .venv/bin/pip install cosmic-ray
    .venv/bin/python mutation/run.py                      # every target, every mutant (hours: ~6,000 mutants)
    .venv/bin/python mutation/run.py lifecycle            # one target
    .venv/bin/python mutation/run.py dispatch --sample 60 # a seeded random sample of a target's mutants

Sessions are kept in ``mutation/sessions/<target>.sqlite`` (git-ignored); running again resumes a
session (``--fresh`` starts over). The report lists each survivor: the module, line, operator and
the diff of the mutant. Numba compiles the mutated kernel module again for each mutant, so a kernel
mutant costs its tests' time plus a compilation; the tests run with ``NUMBA_BOUNDSCHECK=1``, so a
mutant that indexes past an array fails loudly instead of writing past it unseen. Mutants inside
type annotations are skipped (never evaluated). What a run found: ``mutation/FINDINGS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = ROOT / "mutation" / "sessions"

#: Target -> (module, the tests that guard it).
TARGETS = {
    "lifecycle": ("engine/cases/lifecycle.py", ["tests/engine/cases/test_lifecycle.py"]),
    "dispatch": ("kernels/dispatch.py", ["tests/kernels/test_dispatch_kernel.py"]),
    "predicates": ("kernels/predicates.py", ["tests/kernels/test_predicates.py"]),
    "transform": ("kernels/transform.py", ["tests/kernels/test_transform.py"]),
    "locate": ("kernels/locate.py", ["tests/kernels/test_locate.py"]),
    "indexing": ("kernels/indexing.py", ["tests/kernels/test_locate.py", "tests/engine/layers/test_index.py"]),
}

CONFIG = """[cosmic-ray]
module-path = "{module}"
timeout = {timeout}
excluded-modules = []
test-command = "env NUMBA_BOUNDSCHECK=1 {python} -m pytest -x -q -p no:cacheprovider {tests}"

[cosmic-ray.distributor]
name = "local"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"of {', '.join(TARGETS)}; default: all of them")
    parser.add_argument("--sample", type=int, help="run only this many mutants of each target (seeded)")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant before it counts as killed")
    parser.add_argument("--fresh", action="store_true", help="start the sessions over")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; the targets are {', '.join(TARGETS)}")
    SESSIONS.mkdir(parents=True, exist_ok=True)
    survivors = 0
    for name in args.targets or list(TARGETS):
        survivors += run_target(name, args)
    return 1 if survivors else 0


def cosmic_ray(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("cosmic-ray")
    return subprocess.run([str(exe), *args], cwd=ROOT, check=True, capture_output=True, text=True)


def run_target(name: str, args) -> int:
    module, tests = TARGETS[name]
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", module], cwd=ROOT).returncode:
        sys.exit(f"mutation: {module} has uncommitted changes; commit or stash them first")
    config = SESSIONS / f"{name}.toml"
    session = SESSIONS / f"{name}.sqlite"
    config.write_text(CONFIG.format(module=module, timeout=args.timeout, python=sys.executable, tests=" ".join(tests)))
    if args.fresh or not session.exists():
        session.unlink(missing_ok=True)
        cosmic_ray("init", str(config), str(session))
        skip_annotations(session, ROOT / module)
        if args.sample:
            sample(session, args.sample, args.seed)
    print(f"mutation: {name}: {module} against {' '.join(tests)}", flush=True)
    baseline = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=ROOT, env={**os.environ, "NUMBA_BOUNDSCHECK": "1"})
    if baseline.returncode:
        sys.exit(f"mutation: the tests of {name} fail without any mutant; fix them first")
    try:
        subprocess.run([str(Path(sys.executable).with_name("cosmic-ray")), "exec", str(config), str(session)],
                       cwd=ROOT, check=True)
    finally:
        if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", module], cwd=ROOT).returncode:
            subprocess.run(["git", "checkout", "--", module], cwd=ROOT, check=True)
            print(f"mutation: {module} was left mutated (interrupted run); restored from git", file=sys.stderr)
    return report(name, session)


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions (line, column) of the type annotations of a module: with ``from
    __future__ import annotations`` they are never evaluated, so a mutant inside one is equivalent."""
    import ast

    spans = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        notes = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            notes.append(node.returns)
            arguments = node.args
            notes += [a.annotation for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                                             arguments.vararg, arguments.kwarg) if a is not None]
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        spans += [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in notes if n is not None]
    return spans


def skip_annotations(session: Path, module: Path) -> None:
    """Mark the mutants inside type annotations as skipped (equivalent mutants)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans = annotation_spans(module)
    with use_db(str(session), WorkDB.Mode.open) as db:
        inside = [item.job_id for item in db.pending_work_items
                  if all(any(a <= tuple(m.start_pos) and tuple(m.end_pos) <= b for a, b in spans) for m in item.mutations)]
        db.set_multiple_results(inside, WorkResult(output="inside a type annotation (never evaluated)",
                                                   worker_outcome=WorkerOutcome.SKIPPED))


def sample(session: Path, n: int, seed: int) -> None:
    """Mark all but ``n`` randomly chosen mutants of a fresh session as skipped."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        jobs = sorted(item.job_id for item in db.pending_work_items)
        keep = set(random.Random(seed).sample(jobs, min(n, len(jobs))))
        skipped = [job for job in jobs if job not in keep]
        db.set_multiple_results(skipped, WorkResult(output="not in the sample", worker_outcome=WorkerOutcome.SKIPPED))


def report(name: str, session: Path) -> int:
    """Print the counts and every surviving mutant; returns how many survived."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "incompetent": 0, "skipped": 0, "pending": 0}
    survived = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["skipped"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                survived.append((item, result))
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1
            else:
                counts["killed"] += 1
        counts["pending"] = db.num_work_items - db.num_results
    print(f"mutation: {name}: {json.dumps(counts)}")
    for item, result in survived:
        for m in item.mutations:
            print(f"  SURVIVED {m.module_path}:{m.start_pos[0]} {m.operator_name} #{m.occurrence}")
        print("    " + (result.diff or "").strip().replace("\n", "\n    "))
    return len(survived)


if __name__ == "__main__":
    sys.exit(main())
