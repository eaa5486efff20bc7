"""py-libp2p loads on the protobuf runtime AutoGen pins (5.29), in this environment's protobuf 6
made to report 5.29.6 before anything loads (the real 5.29 runs in test_autogen.py's venv).
Each check runs in a fresh interpreter: py-libp2p's generated modules load once per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

AS_5_29 = textwrap.dedent(
    """
    from google.protobuf import runtime_version as rv
    rv.MAJOR, rv.MINOR, rv.PATCH = 5, 29, 6  # what autogen-core's pin installs
    """
)


def run_as_5_29(script: str) -> subprocess.CompletedProcess[str]:
    code = AS_5_29 + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_node_loads_py_libp2p_on_protobuf_5_29_and_only_it_skips_the_check() -> None:
    result = run_as_5_29(
        """
        import sys
        import meshtalk.net.host, meshtalk.peer  # py-libp2p, Noise included
        print(" ".join(sorted(m for m in sys.modules if m.endswith(("noise_pb2", "ipns_pb2")))))
        try:  # any other module's gencode 6.x is still refused
            rv.ValidateProtobufRuntimeVersion(rv.Domain.PUBLIC, 6, 31, 1, "", "other.proto")
        except rv.VersionError:
            print("other.proto refused")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]  # VersionError without the change
    assert result.stdout.splitlines() == [
        "libp2p.records.pb.ipns_pb2 libp2p.security.noise.pb.noise_pb2",
        "other.proto refused",
    ]
