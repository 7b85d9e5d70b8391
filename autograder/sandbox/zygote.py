"""The zygote: started by the supervisor, it imports the libraries, forks the notebook's process, and stays on as
the test process.

torch alone is about 150 MB of private memory a process. Imported once here and shared after the fork (copy on
write), the notebook's process and the test process cost it once. Nothing of the submission is read before the
fork (the notebook's process reads it only once it has given up root), and the tests are read only after it, so
the notebook's process holds no copy of them.

Nothing of the grading configuration is on its command line, which every process can read in /proc: its settings
come on its standard input, as two frames. The first (descriptors, folders, limits, the notebook's user) is read
before the fork; the second (where the tests are, the questions and their points) is read only by the test process,
after the fork, so that the notebook's process never holds it (its standard input is /dev/null from its start).
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
from pathlib import Path

_LENGTH = struct.Struct("!I")
TEST_PROCESS_OOM_SCORE_ADJ = -900  # after the supervisor (-1000), the last the OOM killer would take


def frame(settings: dict) -> bytes:
    data = json.dumps(settings).encode()
    return _LENGTH.pack(len(data)) + data


def read_frame(fd: int = 0) -> dict:
    """One frame from `fd`, read to its last byte and no further (what follows is not read into this process)."""
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = os.read(fd, count - len(data))
            if not chunk:
                raise EOFError("the supervisor's settings ended early")
            data += chunk
        return data
    (length,) = _LENGTH.unpack(exactly(_LENGTH.size))
    return json.loads(exactly(length))


def main() -> None:
    settings = read_frame(0)
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: ends with the supervisor, and so does
    # the notebook's process, which ends with this one
    from .limits import Limits
    from .users import KernelUser, set_oom_score_adj

    set_oom_score_adj(TEST_PROCESS_OOM_SCORE_ADJ)
    limits = Limits(**settings["limits"])
    import numpy  # noqa: F401 - imported here to be shared
    import torch

    torch.set_num_threads(limits.threads)
    import safetensors.torch  # noqa: F401 - what the weights tests load
    import dill  # noqa: F401 - what a test's model is sent with
    from IPython.core import interactiveshell  # noqa: F401 - the notebook's shell

    from . import kernel, test_runner

    supervisor_tests = socket.socket(fileno=settings["tests_fd"])
    supervisor_kernel = socket.socket(fileno=settings["kernel_fd"])
    output_fd = settings["output_fd"]
    tests_end, kernel_end, pid = None, None, None
    if settings["notebook"]:
        tests_end, kernel_end = socket.socketpair()
        user = KernelUser(**settings["user"]) if settings["user"] else None
        pid = os.fork()
        if pid == 0:
            supervisor_tests.close()
            tests_end.close()
            kernel.main(supervisor_kernel, kernel_end, output_fd, settings["folders"], user, limits)
        kernel_end.close()
    supervisor_kernel.close()
    os.close(output_fd)
    grading = read_frame(0)  # after the fork: the notebook's process never holds the questions
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    test_runner.serve(supervisor_tests, tests_end, pid, Path(grading["tests"]), grading["questions"])


if __name__ == "__main__":
    main()
