"""Commands that work on the profile itself: init, id, up, down, config, rendezvous, selfcheck."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..profile.identity import load_identity, load_or_create_identity
from ..profile.lock import profile_in_use
from ..profile.paths import key_path
from ..profile.settings import (
    SETTINGS,
    check_key,
    config_path,
    load_settings,
    parse_value,
    save_setting,
)
from ..protocol.errors import ConfigError
from .output import command_hint, emit_json, profile_of, status_line, wants_json
from .parser import DEFAULT_RENDEZVOUS_LISTEN

if TYPE_CHECKING:
    from ..net.relay import RelayLimits

__all__ = ["init", "id", "up", "down", "config", "rendezvous", "selfcheck"]


def init(args: argparse.Namespace) -> int:
    """Create the profile and its identity (never replacing an existing key).

    With `--name` on a profile that exists, the node is renamed, and the command says so.
    """
    profile = profile_of(args)
    existed = key_path(profile).exists()
    old_name = load_settings(profile)["name"] if existed and args.name is not None else None
    key, _ = load_or_create_identity(profile)
    renamed = existed and args.name is not None and args.name != old_name
    if args.name is not None:
        save_setting(profile, "name", args.name)
    if wants_json(args):
        emit_json(
            {
                "peer_id": str(key.peer_id),
                "profile": profile.name,
                "created": not existed,
                "path": str(profile),
                "renamed": renamed,
            }
        )
        return 0
    verb = "already had" if existed else "created"
    print(f"{verb} profile {profile.name!r} in {profile}")
    print(f"peer ID: {key.peer_id}")
    if renamed:
        before = f"from {old_name!r} " if old_name is not None else ""
        print(f"renamed this node {before}to {args.name!r} (the name it gives when pairing)")
        if profile_in_use(profile):
            status_line(
                "the running node still uses the old name; restart it to apply: "
                f"{command_hint(args, 'down')} && {command_hint(args, 'up --detach')}"
            )
    if not existed:
        print(
            f"next: `{command_hint(args, 'up --detach')}` to start the node, "
            f"then `{command_hint(args, 'pair')}`"
        )
    return 0


def id(args: argparse.Namespace) -> int:
    """Print the profile's peer ID."""
    profile = profile_of(args)
    key = load_identity(profile)
    if wants_json(args):
        emit_json({"peer_id": str(key.peer_id), "profile": profile.name})
    else:
        print(key.peer_id)
    return 0


def up(args: argparse.Namespace) -> int:
    """Run the node: in the foreground, or detached once it is ready (a running one is left)."""
    from ..facade.daemon import http_line, run_foreground, start_detached

    profile = profile_of(args)
    verbosity = int(getattr(args, "verbose", 0) or 0)
    if not args.detach:
        run_foreground(profile, lambda line: print(line, flush=True), verbosity)
        return 0
    hello, started = start_detached(profile, status_line, verbosity)
    if wants_json(args):
        emit_json({**hello, "already_running": not started})
    else:
        state = "is running" if started else "is already running"
        print(f"node {hello['peer_id']} {state} (profile {hello['profile']}, pid {hello['pid']})")
        if hello.get("http"):
            print(f"  http  {http_line(hello['http'])}")
    return 0


def down(args: argparse.Namespace) -> int:
    """Stop the background node."""
    from ..facade.daemon import stop_node

    profile = profile_of(args)
    stopped = stop_node(profile)
    if wants_json(args):
        emit_json({"stopped": stopped})
    else:
        print("node stopped" if stopped else f"no node was running for profile {profile.name!r}")
    return 0


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def config(args: argparse.Namespace) -> int:
    """config get|set|unset|path."""
    profile = profile_of(args)
    if args.action == "path":
        if wants_json(args):
            emit_json({"path": str(config_path(profile))})
        else:
            print(config_path(profile))
        return 0
    if args.key is not None:
        check_key(args.key)
    if args.action == "set":
        save_setting(profile, args.key, parse_value(args.key, args.value))
    elif args.action == "unset":
        save_setting(profile, args.key, None)
    settings = load_settings(profile)
    if args.key is not None:
        if wants_json(args):
            emit_json({args.key: settings[args.key]})
        else:
            print(f"{args.key} = {_show(settings[args.key])}")
        if args.action != "get" and profile_in_use(profile):
            status_line(
                "the running node still uses the old value; restart it to apply: "
                f"{command_hint(args, 'down')} && {command_hint(args, 'up --detach')}"
            )
        return 0
    if wants_json(args):
        emit_json(settings)
        return 0
    for key, setting in SETTINGS.items():
        print(f"{key} = {_show(settings[key])}".ljust(44) + f"# {setting.help}")
    return 0


def rendezvous(args: argparse.Namespace) -> int:
    """Run a standalone rendezvous point until Ctrl-C or SIGTERM."""
    import signal

    import trio

    from ..discovery.point import open_rendezvous_point
    from ..net.host import parse_multiaddrs

    profile = profile_of(args)
    listen = args.listen or [DEFAULT_RENDEZVOUS_LISTEN]
    parse_multiaddrs(listen)
    key, _ = load_or_create_identity(profile)

    relay = relay_limits(args)

    async def serve() -> None:
        async with open_rendezvous_point(key, listen, relay=relay) as (point, addresses):
            if wants_json(args):
                emit_json(
                    {"peer_id": str(key.peer_id), "addresses": addresses, "relay": args.relay}
                )
            else:
                what = "rendezvous point and relay" if relay else "rendezvous point"
                print(f"{what} {key.peer_id} (meshtalk {__version__})")
                for address in addresses:
                    print(f"  {address}")
                print("nodes use it with: meshtalk config set rendezvous <one address above>")
                if relay is not None:
                    print(
                        f"relaying: circuits of up to {relay.circuit_seconds / 3600:g} h and "
                        f"{relay.circuit_bytes / (1024 * 1024):g} MiB, {relay.reservations} "
                        f"reservations, {relay.circuits} circuits at most"
                    )
                print("ready (Ctrl-C stops it)", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            stats = point.statistics()
            relayed = point.relay.statistics().circuits_total if point.relay else None
        if not wants_json(args):
            circuits = f", {relayed} circuits relayed" if relayed is not None else ""
            print(f"stopped ({stats.registry.registrations} registrations held{circuits})")

    trio.run(serve)
    return 0


def relay_limits(args: argparse.Namespace) -> RelayLimits | None:
    """The relay limits `rendezvous --relay [--circuit-mib M] [--circuit-hours H]` asks for."""
    from ..net.relay import RelayLimits

    mib, hours = args.circuit_mib, args.circuit_hours
    if not args.relay:
        if mib is not None or hours is not None:
            raise ConfigError("--circuit-mib and --circuit-hours need --relay")
        return None
    for name, value in (("--circuit-mib", mib), ("--circuit-hours", hours)):
        if value is not None and not 0 < value <= 1_000_000:
            raise ConfigError(f"{name} must be a positive number, not {value:g}")
    defaults = RelayLimits()
    return RelayLimits(
        circuit_bytes=int(mib * 1024 * 1024) if mib is not None else defaults.circuit_bytes,
        circuit_seconds=max(1, int(hours * 3600))
        if hours is not None
        else (defaults.circuit_seconds),
    )


def selfcheck(args: argparse.Namespace) -> int:
    """Verify the installation without any network."""
    from .selfcheck import CheckStep, run_selfcheck

    def report(step: CheckStep) -> None:
        if not wants_json(args):
            print(f"  ok  {step.name:<10} {step.detail}", flush=True)

    if not wants_json(args):
        print(f"meshtalk {__version__} self-check")
    steps = run_selfcheck(report)
    if wants_json(args):
        emit_json({"ok": True, "version": __version__, "steps": [vars(s) for s in steps]})
    else:
        print(f"all {len(steps)} checks passed")
    return 0
