"""Measure what grading one reference submission costs, per assignment, as Gradescope would run it.

    python -m autograder.bench [--python PATH] [NAME ...]

For each assignment whose reference submission exists (built by `make release`), `autograder.grade` grades it
in a child process the way Gradescope does (the zip's run_autograder: the supervisor, the test process, the
notebook's process), with the interpreter given by --python (`make bench-grading` uses the environment built by
`make gradescope-env` from the zip's requirements only). CPU seconds are the user+system time of the whole process
tree; peak memory is the largest sum, sampled every 50 ms, of the proportional set size (PSS) of the processes
Gradescope would run (this repository's small wrapper process is left out). Each grading runs in the emulation of
Gradescope's container where this machine allows it (768 MB, 0.5 CPU: autograder/container.py), so wall seconds
are Gradescope's; `cgroup_mb` is the kernel's own high-water mark of that container (everything charged to it, page
cache it read for the first time included), and the last column says which limits were enforced.
Budget per submission: 120 CPU-seconds and 600 MB.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import psutil

from autograder.assignments import ASSIGNMENTS, BUILD

CPU_BUDGET_S, MEMORY_BUDGET_MB = 120, 600


def _pss(process: psutil.Process) -> int:
    """Proportional set size: shared pages are split between the processes that map them, so the
    sum over a process tree is what a container's memory limit sees (RSS would count them twice)."""
    try:
        return process.memory_full_info().pss
    except (psutil.Error, AttributeError):
        return process.memory_info().rss


def measure(command: list[str], env: dict | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, sum(_pss(p) for p in root.children(recursive=True)))
        except psutil.Error:
            pass
        time.sleep(0.05)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "wall_s": round(time.time() - start, 1), "peak_mb": round(peak / 2**20), "rc": proc.returncode}


def _enforced(container: dict) -> str:
    if not container.get("enforced"):
        return f"not emulated ({container.get('why', '?')})"
    return " and ".join(part for part in (f"{container['memory_mb']} MB" if container.get("memory_mb") else "",
                                          f"{container['cpus']} CPU" if container.get("cpus") else "") if part)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--python", default=sys.executable, help="interpreter that grades (default: this one)")
    args = parser.parse_args(argv)
    print(f"grading with {args.python}")
    print(f"{'assignment':<20} {'score':>9} {'cpu_s':>7} {'wall_s':>7} {'peak_mb':>8} {'cgroup_mb':>9}  within budget "
          f"({CPU_BUDGET_S} CPU-s, {MEMORY_BUDGET_MB} MB)  container")
    ok = True
    for name in args.names or list(ASSIGNMENTS):
        submission = BUILD / name / "reference" / f"{name}-reference.zip"
        if not submission.exists():
            print(f"{name:<20} no reference submission: run `make release` first")
            ok = False
            continue
        with tempfile.TemporaryDirectory() as out:
            row = measure([sys.executable, "-m", "autograder.grade", str(submission), "--assignment", name, "--out", out,
                           "--python", args.python])
            score = open(f"{out}/summary.txt").read().strip().splitlines()[-1].removeprefix("total: ")
            container = json.loads(open(f"{out}/run.json").read()).get("container", {})
        within = row["cpu_s"] <= CPU_BUDGET_S and row["peak_mb"] <= MEMORY_BUDGET_MB
        ok &= within
        print(f"{name:<20} {score:>9} {row['cpu_s']:>7} {row['wall_s']:>7} {row['peak_mb']:>8} "
              f"{container.get('peak_mb') if container.get('peak_mb') is not None else '-':>9}  "
              f"{'yes' if within else 'NO':<42} {_enforced(container)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
