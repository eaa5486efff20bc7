"""The sans-I/O boundary and the public API surface."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import meshtalk
import meshtalk.protocol

FORBIDDEN = ["trio", "socket", "sqlite3", "libp2p", "asyncio", "multiaddr", "ssl"]


def loaded_modules(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    "module",
    [
        "meshtalk.protocol",
        "meshtalk.protocol.pairing",
        "meshtalk.protocol.control",
        "meshtalk.protocol.rooms",
        "meshtalk.protocol.room_state",
    ],
)
def test_protocol_imports_no_io_modules(module: str) -> None:
    modules = loaded_modules(f"import {module}")
    assert "meshtalk.protocol" in modules
    leaked = {m for m in modules if m.split(".")[0] in FORBIDDEN}
    assert not leaked, f"meshtalk.protocol pulled in {sorted(leaked)}"


def test_importing_meshtalk_stays_light() -> None:
    modules = loaded_modules("import meshtalk")
    heavy = {m for m in modules if m.split(".")[0] in {"trio", "libp2p", "sqlite3"}}
    assert not heavy, f"import meshtalk pulled in {sorted(heavy)}"


@pytest.mark.parametrize("package", [meshtalk, meshtalk.protocol])
def test_exported_names_exist(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(package, name), name


@pytest.mark.parametrize(
    "module",
    [
        "meshtalk.profile.identity",
        "meshtalk.control.client",
        "meshtalk.discovery.point",
        "meshtalk.discovery.records",
        "meshtalk.discovery.registry",
        "meshtalk.discovery.rendezvous",
        "meshtalk.peer.store.addressbook",
        "meshtalk.peer.models",
        "meshtalk.peer.node",
        "meshtalk.peer.pairing",
        "meshtalk.protocol.codec",
        "meshtalk.protocol.envelope",
        "meshtalk.protocol.errors",
        "meshtalk.protocol.frames",
        "meshtalk.protocol.keys",
        "meshtalk.protocol.connection",
        "meshtalk.protocol.sealing",
        "meshtalk.protocol.forwarding",
    ],
)
def test_private_modules_declare_all_and_are_reexported(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        if not name.isupper() and module != "meshtalk.protocol.codec":
            assert name in meshtalk.__all__ or name in meshtalk.protocol.__all__, name


def test_the_control_client_starts_without_trio_or_libp2p() -> None:
    modules = loaded_modules("import meshtalk.cli.remote, meshtalk.control.client")
    heavy = {m for m in modules if m.split(".")[0] in {"trio", "libp2p", "sqlite3", "spake2"}}
    assert not heavy, f"the CLI's client side pulled in {sorted(heavy)}"
