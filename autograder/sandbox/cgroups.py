"""Memory and CPU control groups: the container's own memory, read from the kernel, and limits the kernel enforces.

Gradescope's container is a memory cgroup (768 MB). Whatever the notebook's processes hold, and however (processes,
shared memory, tmpfs files, memfd, System V segments, socket buffers), the kernel charges it to that cgroup, whose
usage is readable inside the container even where it cannot be changed. Where a cgroup can be created (root, a
writable controller: this machine's cgroup v1, a delegated cgroup v2), the supervisor puts the notebook's processes in
a child cgroup of its own with a hard limit, so that an allocation burst is stopped by the kernel (its OOM killer,
inside that child only) instead of by a watch that samples; and `autograder.container` runs each grading in a cgroup
shaped like Gradescope's container.

cgroup v1 and v2 both: `own(controller)` finds the cgroup this process is in from /proc/self/cgroup and
/proc/self/mountinfo (inside Docker without a cgroup namespace the container's cgroup is the mount's root).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

UNLIMITED = 2**60  # cgroup v1 writes "no limit" as a huge number (9223372036854771712)


@dataclasses.dataclass
class Cgroup:
    path: Path
    version: int  # 1 or 2
    controller: str  # "memory" or "cpu" (v2: the same folder holds both)

    # ---- reading ----
    def _read(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text()
        except OSError:
            return None

    def _number(self, name: str) -> int | None:
        text = self._read(name)
        if text is None:
            return None
        text = text.strip()
        if text == "max":
            return None
        try:
            value = int(text)
        except ValueError:
            return None
        return None if value >= UNLIMITED else value

    def _keyed(self, name: str) -> dict[str, int]:
        found = {}
        for line in (self._read(name) or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                found[parts[0]] = int(parts[1])
        return found

    def usage(self) -> int:
        """Bytes charged to the cgroup (its processes' memory, tmpfs and shared memory they wrote, page cache)."""
        return self._number("memory.usage_in_bytes" if self.version == 1 else "memory.current") or 0

    def working_set(self) -> int:
        """`usage` less the page cache the kernel would drop first (inactive files): what `docker stats` shows, and
        what decides whether the container's OOM killer runs."""
        stat = self._keyed("memory.stat")
        inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
        return max(self.usage() - inactive, 0)

    def limit(self) -> int | None:
        """The hard memory limit in bytes; None when there is none."""
        return self._number("memory.limit_in_bytes" if self.version == 1 else "memory.max")

    def peak(self) -> int | None:
        """The most ever charged (v1 max_usage_in_bytes, v2 memory.peak where the kernel has it)."""
        return self._number("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak")

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer ended in this cgroup (and below it)."""
        return self._keyed("memory.oom_control" if self.version == 1 else "memory.events").get("oom_kill", 0)

    def processes(self) -> set[int]:
        return {int(pid) for pid in (self._read("cgroup.procs") or "").split()}

    def cpu_quota(self) -> float | None:
        """CPUs the cgroup may use (quota / period); None when unlimited."""
        if self.version == 1:
            quota, period = self._number("cpu.cfs_quota_us"), self._number("cpu.cfs_period_us")
            return None if quota is None or quota < 0 or not period else quota / period
        parts = (self._read("cpu.max") or "max").split()
        return None if parts[0] == "max" else int(parts[0]) / int(parts[1] if len(parts) > 1 else 100000)

    # ---- changing ----
    def writable(self) -> bool:
        return os.access(self.path, os.W_OK) and os.access(self.path / "cgroup.procs", os.W_OK)

    def child(self, name: str) -> "Cgroup":
        """A new cgroup below this one (OSError when it cannot be made)."""
        if self.version == 2:  # the controller must be handed down (it is, where the cgroup was delegated)
            wanted = self.controller
            if wanted not in (self._read("cgroup.subtree_control") or "").split():
                (self.path / "cgroup.subtree_control").write_text(f"+{wanted}")
        path = self.path / name
        path.mkdir()
        return Cgroup(path, self.version, self.controller)

    def set_memory_limit(self, limit: int) -> None:
        """A hard limit of `limit` bytes, swap included (v1: memory and memory+swap; v2: memory.max, no swap)."""
        if self.version == 1:
            # memory+swap can never be below memory: raise it first when raising, lower it last when lowering
            memsw = self.path / "memory.memsw.limit_in_bytes"
            has_swap_limit = memsw.exists()
            current = self._number("memory.limit_in_bytes") or UNLIMITED
            if has_swap_limit and limit > current:
                memsw.write_text(str(limit))
            (self.path / "memory.limit_in_bytes").write_text(str(limit))
            if has_swap_limit and limit <= current:
                memsw.write_text(str(limit))
        else:
            (self.path / "memory.max").write_text(str(limit))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")

    def set_cpu_quota(self, cpus: float, period_us: int = 100_000) -> None:
        if self.version == 1:
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(int(cpus * period_us)))
        else:
            (self.path / "cpu.max").write_text(f"{int(cpus * period_us)} {period_us}")

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self, wait_s: float = 5.0) -> bool:
        """Remove this cgroup once its processes are gone (killed by the caller); False if it is still there."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:  # busy: a process that is still exiting
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root inside the hierarchy, mount point, file system type, options) of every cgroup mount."""
    found = []
    try:
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                before, _, after = line.partition(" - ")
                fields, rest = before.split(), after.split()
                if len(fields) >= 5 and rest and rest[0] in ("cgroup", "cgroup2"):
                    options = set(rest[2].split(",")) if len(rest) > 2 else set()
                    found.append((fields[3], fields[4].replace("\\040", " "), rest[0], options))
    except OSError:
        pass
    return found


def own(controller: str = "memory", pid: str | int = "self") -> Cgroup | None:
    """The cgroup of `pid` for `controller` ("memory" or "cpu"), v1 where that controller is mounted as v1, else v2
    where the unified hierarchy has it; None when neither (no cgroups, or not readable)."""
    try:
        with open(f"/proc/{pid}/cgroup") as lines:
            memberships = [line.rstrip("\n").split(":", 2) for line in lines]
    except OSError:
        return None
    mounts = _mounts()
    for hierarchy, controllers, path in memberships:
        if controller in controllers.split(","):
            for root, point, kind, options in mounts:
                if kind == "cgroup" and controller in options:
                    return _located(point, root, path, 1, controller)
    for hierarchy, controllers, path in memberships:
        if hierarchy == "0" and controllers == "":
            for root, point, kind, _ in mounts:
                if kind == "cgroup2":
                    group = _located(point, root, path, 2, controller)
                    if group is not None and controller in (group._read("cgroup.controllers") or "").split():
                        return group
    return None


def _located(mount_point: str, mount_root: str, path: str, version: int, controller: str) -> Cgroup | None:
    relative = os.path.relpath(path, mount_root) if path.startswith(mount_root) else None
    candidates = [Path(mount_point) / relative] if relative not in (None, ".") else []
    candidates.append(Path(mount_point))  # a container's own cgroup, mounted as the root of the hierarchy
    for candidate in candidates:
        if (candidate / "cgroup.procs").exists():
            return Cgroup(candidate.resolve(), version, controller)
    return None
