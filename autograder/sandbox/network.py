"""No network for the notebook's processes: a seccomp filter that makes socket() fail.

Grading needs no network (the data ships in the zip), and whatever the notebook can read (its own inputs, the tests'
arguments) must not leave. The filter is installed in the notebook's process once it has given up root and before
anything of the submission runs (sandbox.users.confine); every process it starts inherits it and none can remove it.
It needs no privilege, only `no_new_privs` (set first), so it works unprivileged in Gradescope's container.

What it refuses:
- socket(), for every family (IPv4, IPv6, Unix, netlink, packet, ...): EACCES. socketpair() is another system
  call and keeps working, as does every descriptor already open (the notebook talks to the grader over a socketpair
  it inherited): a new connection is what cannot be made.
- mq_open(): EACCES. A POSIX message queue outlives its processes, and where /dev/mqueue is not mounted (Gradescope's
  image) the grader could not even list what to remove.
- io_uring (setup, enter, register): ENOSYS, as if the kernel had none; its IORING_OP_SOCKET would create a socket
  the filter never sees.
- on x86_64, the x32 system calls (numbers with bit 30 set), which are another way into socket(): EACCES.
- a program of another architecture (a 32-bit binary, whose socketcall() would go around the filter): killed at its
  first system call.
"""
from __future__ import annotations

import ctypes
import errno
import platform
import struct

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_SECCOMP_RET_KILL_PROCESS, _SECCOMP_RET_ERRNO, _SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, ...
_NR_OFFSET, _ARCH_OFFSET = 0, 4  # struct seccomp_data: int nr; __u32 arch; ...
_X32_SYSCALL_BIT = 0x40000000

# audit architecture, (socket(), mq_open()), (io_uring_setup, io_uring_enter, io_uring_register)
ARCHITECTURES = {
    "x86_64": (0xC000003E, (41, 240), (425, 426, 427)),
    "aarch64": (0xC00000B7, (198, 180), (425, 426, 427)),
}


class Unsupported(Exception):
    """The filter cannot be installed here (another architecture, or a kernel without seccomp filters)."""


def _instruction(code: int, jump_true: int, jump_false: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jump_true, jump_false, k)


def filter_program(machine: str | None = None) -> bytes:
    """The BPF program, as the kernel reads it (struct sock_filter[]), for `machine` (default: this one's)."""
    machine = machine or platform.machine()
    if machine not in ARCHITECTURES:
        raise Unsupported(f"no system call numbers for {machine}")
    arch, refused, io_uring = ARCHITECTURES[machine]
    refuse_socket = _SECCOMP_RET_ERRNO | errno.EACCES
    refuse_io_uring = _SECCOMP_RET_ERRNO | errno.ENOSYS
    # each check jumps to one of the returns at the end: [allow, refuse socket, refuse io_uring, kill]
    checks = [("ld", _ARCH_OFFSET), ("ne", arch, "kill"), ("ld", _NR_OFFSET)]
    if machine == "x86_64":
        checks.append(("ge", _X32_SYSCALL_BIT, "socket"))
    checks += [("eq", nr, "socket") for nr in refused]
    checks += [("eq", nr, "io_uring") for nr in io_uring]
    returns = {"allow": _SECCOMP_RET_ALLOW, "socket": refuse_socket, "io_uring": refuse_io_uring,
               "kill": _SECCOMP_RET_KILL_PROCESS}
    order = list(returns)
    program = []
    for index, check in enumerate(checks):
        if check[0] == "ld":
            program.append(_instruction(_LD_W_ABS, 0, 0, check[1]))
            continue
        # the returns follow the checks: the first (allow) is right after the last check
        distance = len(checks) - index - 1 + order.index(check[2])
        if check[0] == "ne":
            program.append(_instruction(_JEQ_K, 0, distance, check[1]))
        else:
            program.append(_instruction(_JEQ_K if check[0] == "eq" else _JGE_K, distance, 0, check[1]))
    program += [_instruction(_RET_K, 0, 0, returns[name]) for name in order]
    return b"".join(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def close_the_network() -> None:
    """Install the filter in this process (and so in every process it starts); Unsupported if it cannot be."""
    program = filter_program()
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        raise Unsupported(f"no_new_privs: {errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise Unsupported(f"seccomp: {errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}")


def is_closed() -> bool:
    """Whether this process runs under a seccomp filter (Seccomp: 2 in /proc/self/status)."""
    try:
        with open("/proc/self/status") as status:
            return any(line.split() == ["Seccomp:", "2"] for line in status)
    except OSError:
        return False
