"""The seccomp filter, read as the kernel reads it: a classic-BPF interpreter written here from the
kernel's own headers (opcodes, return values, audit architectures, syscall numbers of x86_64 and of
the generic table aarch64 uses) runs the program ``seccomp_filter`` builds for each machine against
the policy its docstring states. Fast and exhaustive where the live test (``test_hostile.py``)
samples a few calls on this machine only; no number in the filter's tables can change unnoticed."""

from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest

from geex.humanevalx.execution import sandbox

HEADERS = Path("/usr/include")
X86_64 = HEADERS / "x86_64-linux-gnu" / "asm" / "unistd_64.h"
GENERIC = HEADERS / "asm-generic" / "unistd.h"  # the table aarch64 uses
needed = [X86_64, GENERIC, HEADERS / "linux" / "bpf_common.h", HEADERS / "linux" / "seccomp.h",
          HEADERS / "linux" / "audit.h", HEADERS / "linux" / "elf-em.h"]
pytestmark = pytest.mark.skipif(not all(p.is_file() for p in needed),
                                reason="the kernel headers (linux-libc-dev, with the C toolchain) are missing")


def _defines(path: Path) -> dict[str, int]:
    """``#define NAME <number>`` lines of a header (hex or decimal, a U suffix allowed)."""
    out = {}
    for name, value in re.findall(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)U?\b", path.read_text(), re.M):
        out[name] = int(value, 0)
    return out


BPF = _defines(HEADERS / "linux" / "bpf_common.h")
RET = _defines(HEADERS / "linux" / "seccomp.h")
ALLOW, ERRNO = RET["SECCOMP_RET_ALLOW"], RET["SECCOMP_RET_ERRNO"]
AUDIT = _defines(HEADERS / "linux" / "audit.h")
EM = _defines(HEADERS / "linux" / "elf-em.h")
ARCH_FLAGS = AUDIT["__AUDIT_ARCH_64BIT"] | AUDIT["__AUDIT_ARCH_LE"]
MACHINES = {  # machine -> (audit arch, syscall table)
    "x86_64": (EM["EM_X86_64"] | ARCH_FLAGS, _defines(X86_64)),
    "aarch64": (EM["EM_AARCH64"] | ARCH_FLAGS, _defines(GENERIC)),
}
AUDIT_ARCH_I386 = EM["EM_386"] | AUDIT["__AUDIT_ARCH_LE"]


def run_filter(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """What the kernel's classic-BPF interpreter returns for ``struct seccomp_data`` {nr, arch,
    instruction_pointer, args[6]}: only the instructions a seccomp filter of this kind may use."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    code = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    assert len(program) % 8 == 0 and code
    ld_abs, and_k, ret_k = (BPF["BPF_LD"] | BPF["BPF_W"] | BPF["BPF_ABS"], BPF["BPF_ALU"] | BPF["BPF_AND"] | BPF["BPF_K"],
                            BPF["BPF_RET"] | BPF["BPF_K"])
    jumps = {BPF["BPF_JMP"] | BPF[f"BPF_{op}"] | BPF["BPF_K"]: test for op, test in
             (("JEQ", lambda a, k: a == k), ("JGE", lambda a, k: a >= k), ("JGT", lambda a, k: a > k))}
    acc, pc = 0, 0
    for _ in range(len(code)):  # jumps only go forward: each instruction runs at most once
        op, jt, jf, k = code[pc]
        if op == ld_abs:
            assert k % 4 == 0 and k + 4 <= len(data), f"load outside seccomp_data at {pc}"
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif op == and_k:
            acc &= k
            pc += 1
        elif op in jumps:
            pc += 1 + (jt if jumps[op](acc, k) else jf)
        elif op == ret_k:
            return k
        else:
            raise AssertionError(f"opcode {op:#x} at {pc} is not one this filter should use")
        assert pc < len(code), "a jump past the end of the program"
    raise AssertionError("the program ran past its end")


def _program(machine: str, monkeypatch) -> bytes:
    fresh = "".join(list(machine))  # a new string, as os.uname() gives (not the interned literal)
    monkeypatch.setattr(sandbox.platform, "machine", lambda: fresh)
    program = sandbox.seccomp_filter.__wrapped__()  # the cached one is this machine's
    assert program is not None
    return program


AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_VSOCK = 1, 2, 10, 16, 17, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_NONBLOCK, SOCK_CLOEXEC = 1, 2, 5, 0o4000, 0o2000000
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17


@pytest.mark.parametrize("machine", list(MACHINES))
def test_the_filter_does_what_its_docstring_says(machine, monkeypatch):
    program = _program(machine, monkeypatch)
    arch, nr = MACHINES[machine]

    def verdict(name_or_nr, *args, audit=arch) -> str:
        n = nr[f"__NR_{name_or_nr}"] if isinstance(name_or_nr, str) else name_or_nr
        k = run_filter(program, n, audit, args)
        if k == ALLOW:
            return "allow"
        assert k & 0xFFFF0000 == ERRNO, hex(k)
        return errno.errorcode[k & 0xFFFF]

    # socket: IPv4, IPv6 and netlink only (each with the type bits a program may pass)
    for family in (AF_INET, AF_INET6, AF_NETLINK):
        assert verdict("socket", family, SOCK_STREAM | SOCK_CLOEXEC) == "allow"
    for family in (AF_UNIX, AF_PACKET, AF_VSOCK, 0, 3, 0xFFFF):
        assert verdict("socket", family, SOCK_STREAM) == "EACCES"
    # socketpair: Unix stream and seqpacket pairs; datagram pairs refused, whatever flags ride along
    for kind in (SOCK_STREAM, SOCK_SEQPACKET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC):
        assert verdict("socketpair", AF_UNIX, kind) == "allow"
    for kind in (SOCK_DGRAM, SOCK_DGRAM | SOCK_NONBLOCK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK):
        assert verdict("socketpair", AF_UNIX, kind) == "EACCES"
    # the type is the low four bits: raw (3) and reliable-datagram (4) pairs are the kernel's to refuse
    for kind in (3, 4, 3 | SOCK_NONBLOCK):
        assert verdict("socketpair", AF_UNIX, kind) == "allow", kind
    assert verdict("socketpair", AF_INET, SOCK_STREAM) == "EACCES"
    # clone and unshare: anything but a new user namespace
    for call in ("clone", "unshare"):
        assert verdict(call, SIGCHLD) == "allow" and verdict(call, CLONE_NEWNS) == "allow"
        assert verdict(call, CLONE_NEWUSER) == "EPERM" and verdict(call, CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD) == "EPERM"
        assert verdict(call, 0xFFFFFFFF & ~CLONE_NEWUSER) == "allow"
    # ENOSYS: io_uring, the keyring, clone3 — and their neighbours are not caught by the ranges
    nosys = ["io_uring_setup", "io_uring_enter", "io_uring_register", "add_key", "request_key", "keyctl", "clone3"]
    for call in nosys:
        assert verdict(call) == "ENOSYS", call
    special = {nr[f"__NR_{c}"] for c in (*nosys, "socket", "socketpair", "clone", "unshare")}
    for n in sorted({nr[f"__NR_{c}"] + d for c in nosys for d in (-1, 1)} - special):
        assert verdict(n, CLONE_NEWUSER) == "allow", n  # flags in args[0] matter only to clone/unshare
    # everything else passes; a foreign ABI does not
    for call in ("read", "write", "openat", "execve", "munmap", "exit_group"):
        assert verdict(call) == "allow", call
    assert verdict("read", audit=AUDIT_ARCH_I386) == "EPERM"
    assert verdict("read", audit=arch ^ AUDIT["__AUDIT_ARCH_64BIT"]) == "EPERM"
    if machine == "x86_64":  # x32: the same numbers with bit 30 set
        assert verdict(nr["__NR_read"] | 0x40000000) == "EPERM"
        assert verdict(nr["__NR_socket"] | 0x40000000, AF_INET) == "EPERM"
        assert verdict(0x3FFFFFFF) == "allow"  # the highest native number: unknown, the kernel's ENOSYS
    else:  # no x32 on aarch64: a high number is just an unknown syscall (the kernel says ENOSYS)
        assert verdict(0x40000000) == "allow"


def test_other_machines_get_no_filter(monkeypatch):
    monkeypatch.setattr(sandbox.platform, "machine", lambda: "riscv64")
    assert sandbox.seccomp_filter.__wrapped__() is None


def test_the_interpreter_catches_a_wrong_program():
    """The positive control: a filter that allows everything fails the policy, and a jump past the
    end is caught."""
    allow_all = struct.pack("<HBBI", BPF["BPF_RET"] | BPF["BPF_K"], 0, 0, ALLOW)
    arch, nr = MACHINES["x86_64"]
    assert run_filter(allow_all, nr["__NR_socket"], arch, (AF_UNIX,)) == ALLOW
    jump_out = struct.pack("<HBBI", BPF["BPF_JMP"] | BPF["BPF_JEQ"] | BPF["BPF_K"], 5, 5, 0)
    with pytest.raises(AssertionError, match="past the end"):
        run_filter(jump_out, 0, arch)
