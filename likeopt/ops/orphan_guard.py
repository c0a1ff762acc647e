"""``python -m likeopt.ops.orphan_guard PARENT_PID PROGRAM [ARG…]``: run PROGRAM so that it gets SIGTERM when its
parent dies.

The launcher spawns every child through this wrapper instead of a ``preexec_fn``: a ``preexec_fn`` forces
a plain ``fork()`` in a process whose gRPC threads can deadlock grpcio's fork handlers, while this wrapper
sets the parent-death signal in a fresh process and then execs the real program (the signal survives exec).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m likeopt.ops.orphan_guard PARENT_PID PROGRAM [ARG…]", file=sys.stderr)
        return 2
    parent, program = int(argv[0]), argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        print(f"orphan_guard: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    if os.getppid() != parent:  # the parent died before the signal was armed: nobody is left to stop us
        return 1
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        print(f"orphan_guard: cannot run {program[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
