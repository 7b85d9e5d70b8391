"""What a graded submission may use, and the watch that holds it to that from outside the notebook's processes.

The limits are written into every autograder zip (grading.json, by autograder/build.py), so the zip states what it
enforces; an environment variable COURSE_<NAME> (upper case) overrides one for a run (the repository's tests use
short limits). Times are wall-clock seconds, as Gradescope's ten minutes are.

`TreeMemory` measures the memory of every process grading started (the supervisor's whole process tree: its
proportional set size, PSS, which splits shared pages between the processes that map them, so the sum is what a
container's memory limit sees) plus what was written into memory-backed file systems meanwhile (tmpfs: /dev/shm,
a tmpfs /tmp, /run/lock), into memory files and deleted tmpfs files the notebook's processes hold open (memfd), and
into System V shared memory no process maps. The supervisor samples it while the notebook runs and kills the
notebook's processes once it passes `tree_memory_mb`.

That sum is by kind, and the kernel holds memory of other kinds (socket buffers, page tables, ...). So the watch
also reads what the kernel charges, where it can (sandbox.cgroups): the container's own memory cgroup, when it has
a limit (Gradescope's 768 MB container; `make grade`'s emulation of it), whose usage must stay `container_margin_mb`
below that limit, and the notebook's own child cgroup, where the supervisor could make one: the kernel holds it to
its hard limit, and an OOM kill there counts as going over.
"""
from __future__ import annotations

import dataclasses
import os
import time


@dataclasses.dataclass(frozen=True)
class Limits:
    # time
    cell_timeout_s: float = 120  # one cell of the notebook
    notebook_timeout_s: float = 270  # all its cells together
    call_timeout_s: float = 60  # one call from a test into the notebook's code
    tests_timeout_s: float = 90  # all those calls together
    tests_own_s: float = 40  # the tests' own code, beyond their calls (the notebook cannot make it longer)
    file_tests_timeout_s: float = 75  # the tests of the exported files (weights), on their own: a5's ~30 s at 0.5 vCPU
    interrupt_grace_s: float = 5  # an interrupted cell or call that does not stop by then has its process killed
    deadline_s: float = 540  # results.json is final by then: Gradescope ends everything at 600 s
    # memory and processes
    kernel_memory_mb: int = 192  # data the notebook's process may allocate beyond its libraries (RLIMIT_DATA)
    tree_memory_mb: int = 600  # everything grading runs, together (PSS + tmpfs + memfd): over it, the notebook is killed
    kernel_processes: int = 64  # processes and threads of the notebook's user (RLIMIT_NPROC)
    kernel_file_mb: int = 256  # the largest file the notebook may write (RLIMIT_FSIZE)
    kernel_open_files: int = 256  # RLIMIT_NOFILE
    threads: int = 1  # torch/OpenMP threads: Gradescope gives 0.5 vCPU but shows the host's cores
    # the submission
    notebook_mb: float = 32  # the notebook file
    notebook_cells: int = 2000  # cells of any kind
    cell_kb: int = 256  # one code cell's source
    code_kb: int = 4096  # all graded code cells together
    student_file_mb: float = 64  # each declared student file (the weights' own cap is checked by their test)
    output_kb: int = 256  # what the notebook prints that the grading log keeps

    @classmethod
    def from_config(cls, values: dict | None = None, environ=os.environ) -> "Limits":
        """The zip's values, then any COURSE_<NAME> from the environment."""
        kwargs = {}
        for field in dataclasses.fields(cls):
            value = (values or {}).get(field.name, field.default)
            override = environ.get(f"COURSE_{field.name.upper()}")
            if override not in (None, ""):
                value = override
            kwargs[field.name] = int(float(value)) if field.type == "int" else float(value)
        return cls(**kwargs)

    def as_config(self) -> dict:
        return dataclasses.asdict(self)

    def after_cells_s(self) -> float:
        """What grading needs after the notebook's cells, which they may never take from it: the notebook's tests,
        the tests of its files, and ending everything."""
        return self.tests_timeout_s + self.tests_own_s + self.file_tests_timeout_s + 15


# ---------------------------------------------------------------------------------------------------------------
# measuring a process tree
# ---------------------------------------------------------------------------------------------------------------
PAGE = os.sysconf("SC_PAGE_SIZE")
_PROC_LISTS_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def descendants(root: int) -> set[int]:
    """Process ids below `root` (children, their children, ...), read from /proc."""
    found: set[int] = set()
    if _PROC_LISTS_CHILDREN:
        frontier = [root]
        while frontier:
            pid = frontier.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:  # ended meanwhile
                continue
            for task in tasks:
                try:
                    with open(f"/proc/{pid}/task/{task}/children") as children:
                        for child in map(int, children.read().split()):
                            if child not in found:
                                found.add(child)
                                frontier.append(child)
                except OSError:  # the thread ended meanwhile
                    pass
        return found
    parents = {}
    for entry in os.listdir("/proc"):  # no children files in this kernel: every process's parent
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    changed = True
    while changed:
        new = {pid for pid, parent in parents.items() if (parent == root or parent in found) and pid not in found}
        changed = bool(new)
        found |= new
    return found


def processes_of_user(uid: int) -> set[int]:
    """Every process whose real, effective or saved user id is `uid`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                for line in status:
                    if line.startswith("Uid:"):
                        if uid in map(int, line.split()[1:4]):
                            found.add(int(entry))
                        break
        except (OSError, ValueError):
            pass
    return found


def resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def proportional_bytes(pid: int) -> int:
    """PSS; RSS where the kernel has no smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resident_bytes(pid)


def memory_files_bytes(pid: int, memory_devices: set[int] = frozenset()) -> int:
    """Bytes held in memory files that `pid` has open: memfds, and deleted files of memory-backed file systems
    (devices `memory_devices`): memory no mapping or file system shows."""
    total = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(path)
            if target.startswith("/memfd:"):
                total += os.stat(path).st_blocks * 512
            elif target.endswith(" (deleted)") and memory_devices:
                info = os.stat(path)
                if info.st_dev in memory_devices and info.st_nlink == 0:
                    total += info.st_blocks * 512
        except OSError:
            pass
    return total


def unmapped_shared_memory_bytes(uid: int) -> int:
    """Resident bytes of the System V shared memory segments `uid` owns or created that no process maps (a mapped
    one is in its processes' PSS already)."""
    total = 0
    try:
        with open("/proc/sysvipc/shm") as table:
            header = table.readline().split()
            for line in table:
                row = dict(zip(header, line.split()))
                if uid in (int(row["uid"]), int(row["cuid"])) and int(row["nattch"]) == 0:
                    total += int(row.get("rss", row["size"]))
    except (OSError, ValueError, KeyError):
        pass
    return total


def memory_file_systems() -> list[str]:
    """Mount points of writable memory-backed file systems (tmpfs, ramfs) outside /sys and /proc."""
    found = []
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) > 3 and parts[2] in ("tmpfs", "ramfs") and "rw" in parts[3].split(",") and \
                        not parts[1].startswith(("/sys", "/proc")):
                    found.append(parts[1].replace("\\040", " "))
    except OSError:
        pass
    return found


def files_of_user(uid: int, folders, max_entries: int = 50_000) -> int:
    """Bytes of the regular files user `uid` owns below `folders` (not following links; at most `max_entries` looked
    at, so that a folder of millions of files costs a bounded time: past it, what was found so far)."""
    total, seen, stack = 0, 0, list(folders)
    while stack and seen < max_entries:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif info.st_uid == uid:
                        total += info.st_blocks * 512
        except OSError:
            pass
    return total


def _used_bytes(mount: str) -> int:
    try:
        stats = os.statvfs(mount)
    except OSError:
        return 0
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def _keep_oom_score_adj(pids: set[int], value: int) -> None:
    for pid in pids:
        try:
            with open(f"/proc/{pid}/oom_score_adj", "r+") as adj:
                if int(adj.read()) != value:
                    adj.seek(0)
                    adj.write(str(value))
        except (OSError, ValueError):
            pass


class TreeMemory:
    """Memory of the process tree below `root` (the supervisor, itself included), plus what memory-backed file
    systems and the notebook's memory files gained since the watch began.

    `sample()` is cheap while the tree is well below the limit (resident sizes, which overcount shared pages, are
    summed first) and exact (PSS) near it."""

    def __init__(self, root: int, limit_mb: float, watched_uid: int | None = None, slow_every_s: float = 0.5,
                 container=None, container_margin_mb: float = 96):
        self.root, self.limit = root, limit_mb * 2**20
        self.watched_uid = watched_uid
        self._mounts = {mount: _used_bytes(mount) for mount in set(memory_file_systems())}
        self._devices = set()
        for mount in self._mounts:
            try:
                self._devices.add(os.stat(mount).st_dev)
            except OSError:
                pass
        self._slow_every_s, self._slow_at, self._strays, self._owned = slow_every_s, 0.0, set(), 0
        self.peak = self.last = 0
        # the kernel's count: the container's cgroup (when it has a limit), and the notebook's own (set_notebook_group)
        self.container = container if container is not None and container.limit() is not None else None
        self.container_limit = (self.container.limit() - container_margin_mb * 2**20) if self.container else None
        self.container_peak = 0
        self.notebook_group, self._oom_kills_before = None, 0
        # where the kernel lets a process lower its own oom_score_adj back to 0 (no CAP_SYS_RESOURCE, as in Docker),
        # the watch sets the notebook's processes back to `oom_score_adj` (as root it may)
        self.oom_score_adj: int | None = None

    def set_notebook_group(self, group) -> None:
        """The notebook's child cgroup: an OOM kill in it from now on is the notebook going over its limit."""
        self.notebook_group, self._oom_kills_before = group, group.oom_kills() if group is not None else 0

    def killed_by_kernel(self) -> bool:
        """The kernel's OOM killer ended a process of the notebook's cgroup (it went over its hard limit)."""
        return self.notebook_group is not None and self.notebook_group.oom_kills() > self._oom_kills_before

    def sample(self) -> int:
        pids = {self.root} | descendants(self.root)
        now = time.monotonic()
        if self.watched_uid is not None and now - self._slow_at >= self._slow_every_s:
            # twice a second, the costly scans: a process of the notebook's user outside the tree (there should be
            # none: the supervisor adopts orphans), and the files it owns in memory-backed file systems
            theirs = processes_of_user(self.watched_uid)
            self._slow_at, self._strays = now, theirs - pids
            if self.oom_score_adj is not None:
                _keep_oom_score_adj(theirs, self.oom_score_adj)
            self._owned = files_of_user(self.watched_uid, self._mounts) + unmapped_shared_memory_bytes(self.watched_uid)
        pids |= self._strays
        if self.watched_uid is not None:  # only the notebook's own files: other gradings beside it count for nothing
            in_file_systems = self._owned
        else:  # no user of its own: what the file systems gained, whoever wrote it
            in_file_systems = sum(max(_used_bytes(mount) - before, 0) for mount, before in self._mounts.items())
        files = sum(memory_files_bytes(pid, self._devices) for pid in pids if pid != self.root) + in_file_systems
        total = sum(resident_bytes(pid) for pid in pids) + files
        if total > 0.8 * self.limit:  # near the limit: shared pages counted once
            total = sum(proportional_bytes(pid) for pid in pids) + files
        self.peak, self.last = max(self.peak, total), total
        return total

    def every_s(self) -> float:
        """How often to sample: more often near the limit, where memory can outgrow it between two samples."""
        return 0.01 if self.last > 0.6 * self.limit else 0.05

    def charged(self) -> int:
        """What the kernel charges the container now, less the page cache it would drop first (0 without one)."""
        if self.container is None:
            return 0
        charged = self.container.working_set()
        self.container_peak = max(self.container_peak, charged)
        return charged

    def over(self) -> bool:
        return self.sample() > self.limit or (self.container is not None and self.charged() > self.container_limit) \
            or self.killed_by_kernel()
