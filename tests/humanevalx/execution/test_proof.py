"""The proof-of-completion channel on its own: the secret, the verdict on what comes back, and the
sandbox passing the report descriptor through bwrap, prlimit and setpriv."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from geex.humanevalx.execution.proof import ENV_FD, Proof, ProofChannel
from geex.humanevalx.execution.runners import get_runner
from geex.humanevalx.execution.sandbox import Limits, Sandbox
from geex.humanevalx.execution.uids import UidLease


def _stdin(channel: ProofChannel) -> bytes:
    data = b""
    while chunk := os.read(channel.stdin, 4096):
        data += chunk
    return data


@pytest.mark.parametrize("proofs", [1, 3])
def test_the_secret_comes_once_per_proof_and_only_the_exact_report_passes(proofs):
    with ProofChannel(proofs) as channel:
        secret = channel.secret
        assert len(secret) == 32 and int(secret, 16) >= 0
        assert _stdin(channel) == (secret + b"\n") * proofs  # then end of file: the write end is closed
        assert channel.env == {ENV_FD: str(channel.report_w)} and channel.pass_fds == (channel.report_w,)
        assert channel.collect() is Proof.MISSING
        os.write(channel.report_w, secret * proofs)
        assert channel.collect() is Proof.SHOWN
    for report in [secret * (proofs + 1), secret[:-1] * proofs, b"x", (secret + b"\n") * proofs]:
        with ProofChannel(proofs) as channel:
            os.write(channel.report_w, report.replace(secret, channel.secret))
            assert channel.collect() is Proof.WRONG, report


def test_every_channel_has_its_own_secret():
    secrets = set()
    for _ in range(20):
        with ProofChannel() as channel:
            secrets.add(channel.secret)
    assert len(secrets) == 20


def test_channel_closes_its_descriptors():
    channel = ProofChannel()
    fds = [channel.stdin, channel.report_r, channel.report_w]
    channel.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    with pytest.raises(ValueError):
        ProofChannel(0)


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) missing")
@pytest.mark.skipif(str(Path.home()) in sys.executable, reason="the interpreter lies under the home, hidden")
def test_the_sandboxed_program_gets_stdin_and_the_report_descriptor(tmp_path):
    """Through the machine's strongest sandbox: the program reads the secret from stdin and writes it
    to $GEEX_PROOF_FD; a descriptor the harness did not pass is not there."""
    sandbox = Sandbox()
    lease = UidLease() if sandbox.isolation.drops_uid else None
    uid = lease.uid if lease else os.getuid()
    with ProofChannel(owner=uid if lease else None) as channel, ProofChannel() as other:
        script = (f"import os, sys\nline = sys.stdin.buffer.readline().strip()\n"
                  f"os.write(int(os.environ['{ENV_FD}']), line)\n"
                  f"try:\n    os.fstat({other.report_w})\n    sys.exit('leaked')\nexcept OSError:\n    pass\n")
        result = sandbox.run([sys.executable, "-I", "-c", script], cwd=tmp_path, limits=Limits(wall_s=20), uid=uid,
                             env=channel.env, stdin=channel.stdin, pass_fds=channel.pass_fds,
                             ro_binds=get_runner("python").run_ro_binds())  # the interpreter: allow-listed
        assert result.returncode == 0, result.stderr + result.stdout
        assert channel.collect() is Proof.SHOWN
        assert other.collect() is Proof.MISSING
    if lease:
        lease.release()
