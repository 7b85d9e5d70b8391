"""The user the notebook runs as, and everything that is done as that user.

Gradescope grades as root. The notebook gets a user id of its own, one nothing else on the machine uses (no
account, no process, no file), so that "every process of that user" and "every file of that user" are exactly what
the notebook started and wrote: the supervisor kills the first (`kill_all`, from a process of that user, which can
signal nothing else) and removes the second (`remove_files`, as that user, who can remove nothing else). Its limits
(processes, file size, open files) are set while the process is still root and can no longer be raised.

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

from .limits import Limits, processes_of_user

FIRST_DEDICATED_UID = 3_100_000
LOCK_FOLDER = "/tmp"  # one lock file per user id in use, so that gradings side by side take different ids
TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")  # where any user may write
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
    its processes, its files and the id's reservation."""
    user = KernelUser(uid, uid, "")
    kill_all(user)
    remove_files(user)
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
def confine(user: KernelUser | None, limits: Limits) -> None:
    """Limits that cannot be raised again, then the user's identity for good (real, effective and saved ids)."""
    libc = ctypes.CDLL(None, use_errno=True)
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
