"""The user the notebook runs as, and everything that is done as that user.

Gradescope grades as root. The notebook gets a user id of its own, one nothing else on the machine uses (no
account, no process, no file), so that "every process of that user" and "every file of that user" are exactly what
the notebook started and wrote: the supervisor kills the first (`kill_all`, from a process of that user, which can
signal nothing else) and removes the second (`remove_files`, as that user, who can remove nothing else). Its limits
(processes, file size, open files) are set while the process is still root and can no longer be raised.

The notebook's processes are the kernel's first choice when memory runs out (oom_score_adj 1000, set while root, so
that they cannot lower it), and they have no network (sandbox.network: a seccomp filter, which needs no root).
After grading, `remove_all` removes every object of the user: files in every place any user may write, System V
shared memory, semaphores and message queues, and POSIX message queues where they can be listed.

Without root there is no second user: the notebook runs as the grader's own user, which is weaker (README, Known
limits). COURSE_KERNEL_USER names a user to run as instead (`""`: the grader's own user, for tests).
"""
from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import os
import resource
import signal
import stat
import subprocess
import time
from pathlib import Path

from . import network
from .limits import Limits, processes_of_user

FIRST_DEDICATED_UID = 3_100_000
LOCK_FOLDER = "/tmp"  # one lock file per user id in use, so that gradings side by side take different ids
TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")  # where any user may write, at least
WELL_KNOWN_WRITABLE = (*TEMPORARY_FOLDERS, "/run/lock", "/var/lock", "/run/shm", "/dev/mqueue", "/var/crash")
NOTEBOOK_OOM_SCORE_ADJ = 1000  # the notebook's processes: the OOM killer's first choice
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38


@dataclasses.dataclass
class KernelUser:
    uid: int
    gid: int
    name: str
    lock: int | None = None  # the open lock file that reserves the id

    def release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)
            try:
                os.remove(_lock_path(self.uid))
            except OSError:
                pass
            self.lock = None


def clean_up_after(uid: int) -> None:
    """What a supervisor ended before its own clean-up leaves of the user `uid` (make grade, after Gradescope's limit):
    its processes, its files, its IPC objects and the id's reservation."""
    user = KernelUser(uid, uid, "")
    kill_all(user)
    remove_all(user)
    try:
        os.remove(_lock_path(uid))
    except OSError:
        pass


def choose(environ=os.environ) -> KernelUser | None:
    """The user the notebook will run as; None when it has to run as the grader's own user (not root)."""
    if os.geteuid() != 0:
        return None
    requested = environ.get("COURSE_KERNEL_USER")
    if requested == "":
        return None
    if requested:
        import pwd

        entry = pwd.getpwnam(requested)
        return KernelUser(entry.pw_uid, entry.pw_gid, requested)
    for uid in range(FIRST_DEDICATED_UID + os.getpid() % 1000, FIRST_DEDICATED_UID + 100_000):
        if not _mapped(uid) or _has_account(uid) or processes_of_user(uid):
            continue
        lock = _reserve(uid)
        if lock is not None:
            return KernelUser(uid, uid, f"uid {uid}", lock)
    raise RuntimeError("no free user id for the notebook")


def _lock_path(uid: int) -> str:
    return os.path.join(LOCK_FOLDER, f".course-grading-uid-{uid}.lock")


def _reserve(uid: int) -> int | None:
    fd = os.open(_lock_path(uid), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _mapped(uid: int) -> bool:
    """Whether `uid` exists in this user namespace (a container may map only some ids)."""
    try:
        with open("/proc/self/uid_map") as ranges:
            for line in ranges:
                inside, _, count = map(int, line.split())
                if inside <= uid < inside + count:
                    return True
        return False
    except OSError:
        return True


def _has_account(uid: int) -> bool:
    import pwd

    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# becoming the user (in the notebook's process, before it runs anything of the submission)
# ---------------------------------------------------------------------------------------------------------------
def confine(user: KernelUser | None, limits: Limits) -> dict:
    """Limits that cannot be raised again, then the user's identity for good (real, effective and saved ids), then no
    network. Returns what was enforced: {"oom_score_adj": ..., "network": "closed" or why it is open}."""
    libc = ctypes.CDLL(None, use_errno=True)
    enforced = {"oom_score_adj": set_oom_score_adj(NOTEBOOK_OOM_SCORE_ADJ)}  # while root: it cannot be lowered later
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no set-user-id program can give root back
    # processes are counted per user: only a user of its own can have a limit that means the notebook's processes
    processes = [(resource.RLIMIT_NPROC, limits.kernel_processes)] if user is not None else []
    for which, value in (*processes,
                         (resource.RLIMIT_FSIZE, limits.kernel_file_mb * 2**20),
                         (resource.RLIMIT_NOFILE, limits.kernel_open_files),
                         (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_CPU, int(limits.deadline_s) + 60)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # a hard limit already lower
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the file limit fails with an error instead
    os.setpriority(os.PRIO_PROCESS, 0, 10)  # the supervisor, which watches the notebook, gets the CPU first
    if user is not None:
        _become(user)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # ends with its parent (set after the switch, which clears it)
    try:
        network.close_the_network()
        enforced["network"] = "closed"
    except network.Unsupported as why:
        enforced["network"] = f"open ({why})"
    return enforced


def set_oom_score_adj(value: int, pid: str | int = "self") -> int | None:
    """Set the OOM killer's preference for `pid` (-1000: never, 1000: first); the value it has now, None if unknown.
    Lowering it needs root (CAP_SYS_RESOURCE), and a value set by root is the least its process may set later."""
    path = f"/proc/{pid}/oom_score_adj"
    try:
        with open(path, "w") as adj:
            adj.write(str(value))
    except OSError:
        pass
    try:
        with open(path) as adj:
            return int(adj.read())
    except (OSError, ValueError):
        return None


def _become(user: KernelUser) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    os.setgroups([])
    os.setgid(user.gid)
    os.setuid(user.uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("the notebook's process could not give up root")
    libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc entries are its own again


def _as_user(user: KernelUser, action, timeout_s: float = 20) -> int:
    """Run `action()` in a child process that has become `user` (no groups); its exit status."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            set_oom_score_adj(NOTEBOOK_OOM_SCORE_ADJ)  # it reads what the submission wrote: the OOM killer's first
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
            status = action() or 0
        finally:
            os._exit(status)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def kill_all(user: KernelUser) -> None:
    """Kill every process of `user`: from a process of that user, kill(-1) reaches exactly those (and not itself);
    repeated, it also ends processes that were being created meanwhile."""
    def kill_them():
        for _ in range(200):
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                return 0
            time.sleep(0.005)
        return 1
    if processes_of_user(user.uid):
        _as_user(user, kill_them)


def remove_all(user: KernelUser) -> None:
    """Every object of `user` that outlives its processes: its files in every place any user may write, its System V
    IPC objects, its POSIX message queues (where /dev/mqueue is mounted: the notebook cannot create one anyway)."""
    remove_files(user, writable_places())
    remove_ipc(user)


def remove_files(user: KernelUser, folders=TEMPORARY_FOLDERS) -> None:
    """Remove what `user` created at the top of the shared temporary folders (as that user: rm cannot follow a link
    out, and can remove nothing of anyone else's)."""
    owned = []
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.stat(follow_symlinks=False).st_uid == user.uid:
                            owned.append(entry.path)
                    except OSError:
                        pass
        except OSError:
            pass
    if owned:
        _as_user(user, lambda: subprocess.run(["rm", "-rf", "--one-file-system", "--", *owned],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode)


_WRITABLE: list[str] = []


def writable_places(depth: int = 4) -> list[str]:
    """Folders any user may write to: the well-known ones, every world-writable folder down to `depth` levels (a
    walk that takes a tenth of a second; the file system's own walk takes tens of seconds in a large image), and the
    memory-backed file systems. Computed once a process (they are the image's, not the submission's)."""
    if _WRITABLE:
        return list(_WRITABLE)
    from .limits import memory_file_systems

    found = {path for path in WELL_KNOWN_WRITABLE if os.path.isdir(path)}
    found.update(memory_file_systems())
    frontier = ["/"]
    for _ in range(depth):
        deeper = []
        for folder in frontier:
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.path in ("/proc", "/sys") or not entry.is_dir(follow_symlinks=False):
                            continue
                        try:
                            if entry.stat(follow_symlinks=False).st_mode & stat.S_IWOTH:
                                found.add(entry.path)
                        except OSError:
                            continue
                        deeper.append(entry.path)
            except OSError:
                pass
        frontier = deeper
    _WRITABLE[:] = sorted(os.path.realpath(path) for path in found)
    _WRITABLE[:] = sorted(set(_WRITABLE))
    return list(_WRITABLE)


_IPC_KINDS = {"shm": "shmctl", "sem": "semctl", "msg": "msgctl"}
_IPC_RMID = 0


def ipc_objects(uid: int) -> dict[str, list[int]]:
    """The System V IPC objects (shared memory, semaphore sets, message queues) that `uid` owns or created."""
    found: dict[str, list[int]] = {}
    for kind in _IPC_KINDS:
        try:
            with open(f"/proc/sysvipc/{kind}") as table:
                header = table.readline().split()
                for line in table:
                    row = dict(zip(header, line.split()))
                    if uid in (int(row.get("uid", -1)), int(row.get("cuid", -1))):
                        found.setdefault(kind, []).append(int(row[_ID_COLUMN[kind]]))
        except (OSError, ValueError, KeyError):
            pass
    return found


_ID_COLUMN = {"shm": "shmid", "sem": "semid", "msg": "msqid"}


def remove_ipc(user: KernelUser) -> None:
    """Remove the System V IPC objects of `user` (as that user, who may remove only its own), and its POSIX message
    queues where /dev/mqueue lists them."""
    objects = ipc_objects(user.uid)
    queues = []
    try:
        with os.scandir("/dev/mqueue") as entries:
            queues = [entry.path for entry in entries if entry.stat(follow_symlinks=False).st_uid == user.uid]
    except OSError:
        pass
    if not objects and not queues:
        return

    def remove():
        libc = ctypes.CDLL(None, use_errno=True)
        for kind, ids in objects.items():
            for ipc_id in ids:
                if kind == "sem":
                    libc.semctl(ipc_id, 0, _IPC_RMID)
                else:
                    getattr(libc, _IPC_KINDS[kind])(ipc_id, _IPC_RMID, None)
        for queue in queues:
            try:
                os.unlink(queue)
            except OSError:
                pass
    _as_user(user, remove)


# ---------------------------------------------------------------------------------------------------------------
# what the user must be able to read
# ---------------------------------------------------------------------------------------------------------------
def unreadable(user: KernelUser, paths: list[str]) -> list[str]:
    """Those of `paths` that `user` cannot read (tried in a child process of that identity)."""
    read_end, write_end = os.pipe()

    def try_each():
        os.close(read_end)
        blocked = []
        for path in paths:
            try:
                os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
            except OSError:
                blocked.append(path)
        os.write(write_end, "\n".join(blocked).encode())
    _as_user(user, try_each)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        return [path for path in report.read().decode().split("\n") if path]


def open_the_way(user: KernelUser, paths: list[str], allowed: bool) -> list[str]:
    """Make the folders on the way to `paths` traversable (o+x, no listing) where `user` cannot read them and
    `allowed`; returns what it still cannot read. (otter's Gradescope image installs Python under /root, mode 700.)"""
    blocked = unreadable(user, paths)
    if blocked and allowed:
        closed = sorted({str(parent) for path in blocked for parent in _ancestors(path)
                         if not os.stat(parent).st_mode & stat.S_IXOTH})
        for folder in closed:
            os.chmod(folder, os.stat(folder).st_mode | stat.S_IXOTH)
        blocked = unreadable(user, paths)
    return blocked


def _ancestors(path: str) -> list[Path]:
    parts = Path(path).resolve().parts
    return [Path(*parts[:i]) for i in range(1, len(parts) + 1) if Path(*parts[:i]).is_dir()]
