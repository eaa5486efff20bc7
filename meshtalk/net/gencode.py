"""py-libp2p's protobuf modules on the protobuf runtime that AutoGen pins (5.29).

py-libp2p 0.8.1 accepts protobuf >=4.25,<7, but three of its generated modules were made by
protoc 6.x and refuse an older runtime when imported: `libp2p.security.noise.pb.noise_pb2`
(6.32.1; the Noise handshake payload, which every meshtalk connection needs),
`libp2p.records.pb.ipns_pb2` (6.31.1; loaded by `import libp2p`, unused by meshtalk) and the
WebRTC ones (6.31.1; not loaded). autogen-core 0.7 (the newest) pins protobuf ~=5.29.3, so in
an environment with `meshtalk[autogen]` importing py-libp2p raised `VersionError`.

That refusal is a version policy check (`ValidateProtobufRuntimeVersion`), not a missing
feature: these modules use only what the 5.29 runtime has (`AddSerializedFile`, the
`builder` functions, `_loaded_options`) on proto3 files, and the tests run the real Noise
handshake between nodes on 5.29. So on a 5.29 runtime, and only there, meshtalk lets
py-libp2p's own modules (by the importing module's name) skip that check for gencode 6.x;
every other module's check runs unchanged. protobuf's own escape hatch,
TEMPORARILY_DISABLE_PROTOBUF_VERSION_CHECK=true, would switch it off for the whole process.
"""

from __future__ import annotations

import sys

__all__ = ["accept_libp2p_gencode"]

# The runtime this applies to: AutoGen's pin (~=5.29.3). Other runtimes are left alone: 6.x
# accepts py-libp2p's gencode as it is, and older ones were never tried.
RUNTIME = (5, 29)
GENCODE_MAJOR = 6


def accept_libp2p_gencode() -> None:
    """On protobuf 5.29, let py-libp2p's generated modules made by protoc 6.x load.

    Cheap (imports only protobuf's small version module) and idempotent; call it before
    py-libp2p is first imported. Does nothing on any other runtime.
    """
    try:
        from google.protobuf import runtime_version
    except ImportError:  # protobuf < 5.26 has no such check (and py-libp2p needs >= 4.25)
        return
    if (runtime_version.MAJOR, runtime_version.MINOR) != RUNTIME:
        return
    original, public = runtime_version.ValidateProtobufRuntimeVersion, runtime_version.DOMAIN
    if getattr(original, "meshtalk_libp2p", False):
        return

    def validate(
        gen_domain: runtime_version.Domain,
        gen_major: int,
        gen_minor: int,
        gen_patch: int,
        gen_suffix: str,
        location: str,
    ) -> None:
        # The generated module calls this from its top level: its globals name it.
        caller = str(sys._getframe(1).f_globals.get("__name__", ""))
        if caller.startswith("libp2p.") and gen_major == GENCODE_MAJOR and gen_domain == public:
            return
        original(gen_domain, gen_major, gen_minor, gen_patch, gen_suffix, location)

    validate.meshtalk_libp2p = True  # type: ignore[attr-defined]
    runtime_version.ValidateProtobufRuntimeVersion = validate
