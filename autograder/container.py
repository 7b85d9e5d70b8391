"""Gradescope's container, emulated: each grading in a memory cgroup with a hard limit and a CPU quota of its own.

Gradescope grades in a Docker container of 768 MB (memory and swap) and about half a CPU. Where this machine lets a
root process make cgroups (cgroup v1 controllers mounted writable, or a delegated cgroup v2), `autograder.grade`
runs the zip's run_autograder inside a fresh memory cgroup (and cpu cgroup) below its own, with those limits, so that
what fits here fits there, and times measured here are Gradescope's. The kernel enforces both: a grading that goes
over 768 MB meets the container's OOM killer, as on Gradescope; the quota slows every process of the grading.
`run.json` records what was enforced, or why nothing was.

    with Container(GRADESCOPE) as container:
        Popen(container.command([...]))  # the command joins the cgroups, then execs
        ...
        container.record()  # {"enforced": True, "cgroup": "v1", "memory_mb": 768, "cpus": 0.5, "peak_mb": ...}
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import time

from autograder.sandbox import cgroups


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_mb: int | None = 768  # memory and swap together
    cpus: float | None = 0.5  # CPU quota (cfs_quota_us / cfs_period_us)


GRADESCOPE = Limits(768, 0.5)  # make grade, grade-all, bench-grading, attack-bench, soak
MEMORY_ONLY = Limits(768, None)  # the repository's tests: the memory limit, at the machine's speed
_COUNTER = itertools.count()


class Container:
    """Context manager: the cgroups of one grading (made on entry, emptied and removed on exit)."""

    def __init__(self, limits: Limits | None):
        self.limits = limits
        self.groups: list[cgroups.Cgroup] = []
        self.why_not: list[str] = []
        self.memory: cgroups.Cgroup | None = None
        self.cpu: cgroups.Cgroup | None = None

    def __enter__(self) -> "Container":
        if self.limits is None:
            self.why_not.append("not asked for")
            return self
        if os.geteuid() != 0:
            self.why_not.append("not root: no cgroup can be made")
            return self
        name = f"course-container-{os.getpid()}-{next(_COUNTER)}"
        if self.limits.memory_mb is not None:
            self.memory = self._make("memory", name, lambda group: group.set_memory_limit(self.limits.memory_mb * 2**20))
        if self.limits.cpus is not None:
            self.cpu = self._make("cpu", name, lambda group: group.set_cpu_quota(self.limits.cpus))
        return self

    def _make(self, controller: str, name: str, configure) -> cgroups.Cgroup | None:
        parent = cgroups.own(controller)
        if parent is None:
            self.why_not.append(f"no {controller} cgroup")
            return None
        existing = next((group for group in self.groups if group.path == parent.path / name), None)
        if existing is not None:  # cgroup v2: one folder holds both controllers
            try:
                (parent.path / "cgroup.subtree_control").write_text(f"+{controller}")
                configure(cgroups.Cgroup(existing.path, 2, controller))
            except OSError as error:
                self.why_not.append(f"{controller}: the limit could not be set ({error})")
                return None
            return existing
        try:
            group = parent.child(name)
        except OSError as error:
            self.why_not.append(f"{controller}: cgroup v{parent.version} {parent.path} not writable ({error})")
            return None
        self.groups.append(group)
        try:
            configure(group)
        except OSError as error:
            self.why_not.append(f"{controller}: the limit could not be set ({error})")
            self._remove(group)
            self.groups.remove(group)
            return None
        return group

    def command(self, command: list[str]) -> list[str]:
        """`command`, run so that it first joins this container's cgroups (its children stay in them)."""
        procs = [str(group.path / "cgroup.procs") for group in self.groups]
        if not procs:
            return command
        join = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
        return ["sh", "-c", join, "sh", *procs, "--", *command]

    def record(self) -> dict:
        """What was enforced, for run.json."""
        if self.memory is None and self.cpu is None:
            return {"enforced": False, "why": "; ".join(self.why_not) or "nothing asked for"}
        record = {"enforced": True, "cgroup": f"v{(self.memory or self.cpu).version}",
                  "memory_mb": self.limits.memory_mb if self.memory else None,
                  "cpus": self.limits.cpus if self.cpu else None}
        if self.memory is not None:
            peak = self.memory.peak()
            record["peak_mb"] = round(peak / 2**20) if peak is not None else None  # what the kernel charged, at most
            record["oom_kills"] = self.memory.oom_kills()
        if self.why_not:
            record["not_enforced"] = "; ".join(self.why_not)
        return record

    def __exit__(self, *exc) -> None:
        for group in reversed(self.groups):
            self._remove(group)
        self.groups.clear()

    @staticmethod
    def _remove(group: cgroups.Cgroup) -> None:
        """Kill what is left in `group` and below it, then remove them, deepest first."""
        below = sorted((path for path, _, _ in os.walk(group.path)), key=lambda p: -p.count(os.sep))
        for _ in range(50):
            alive = set()
            for path in below:
                alive |= cgroups.Cgroup(type(group.path)(path), group.version, group.controller).processes()
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for path in below:
            cgroups.Cgroup(type(group.path)(path), group.version, group.controller).remove(wait_s=2)
