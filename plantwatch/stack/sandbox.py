"""A seccomp filter for the local ClickHouse: the server process may not start programs or open connections.

The chdb-served engine is clickhouse-local, which trusts whoever sends it SQL: a user allowed ``CREATE DICTIONARY``
(dbt's transform user needs it for the project's dictionaries) could create a dictionary whose source is a command
(``SOURCE(EXECUTABLE(...))``, refused by a real server for DDL but allowed by clickhouse-local) or an HTTP URL on
loopback, and the server would run it with its own rights (root on some machines). The server needs neither: it
only answers on its listeners and reads its own files. So before the engine starts, this process forbids itself
(and every thread it starts later) ``execve``/``execveat`` and ``connect``: those calls fail with EPERM.

Linux x86-64 and aarch64; elsewhere :func:`forbid_exec_and_connect` returns False and the server runs without it.
"""

from __future__ import annotations

import ctypes
import platform
import struct
import sys

# (AUDIT_ARCH_*, (execve, execveat, connect)) by machine
_ARCHES = {
    "x86_64": (0xC000003E, (59, 322, 42)),
    "aarch64": (0xC00000B7, (221, 281, 203)),
}
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO, _EPERM = 0x7FFF0000, 0x00050000, 1
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _instruction(code: int, jump_true: int, jump_false: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jump_true, jump_false, k)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def forbid_exec_and_connect(connect: bool = True) -> bool:
    """Install the filter on this process (call it before any other thread starts); False where unsupported.

    ``connect = False`` forbids starting programs only: a shard of the local cluster must connect to the other
    shards (its Distributed tables), so there a dictionary may reach loopback services.
    """
    if not sys.platform.startswith("linux") or platform.machine() not in _ARCHES:
        return False
    arch, calls = _ARCHES[platform.machine()]
    calls = calls if connect else calls[:2]
    refuse = _SECCOMP_RET_ERRNO | _EPERM
    program = [
        _instruction(_BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _instruction(_BPF_JEQ_K, 1, 0, arch),
        _instruction(_BPF_RET_K, 0, 0, refuse),  # a call through another ABI (ia32, x32): refused outright
        _instruction(_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        *(_instruction(_BPF_JEQ_K, len(calls) - i, 0, nr) for i, nr in enumerate(calls)),
        _instruction(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
        _instruction(_BPF_RET_K, 0, 0, refuse),
    ]
    code = b"".join(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
    return True
