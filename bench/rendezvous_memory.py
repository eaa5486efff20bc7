"""Memory of a rendezvous point filled to its caps by an attacker with free key pairs.

    .venv/bin/python bench/rendezvous_memory.py              # every scenario, one process each
    .venv/bin/python bench/rendezvous_memory.py --scenario old-1-address

Each scenario runs in a fresh interpreter and prints the RSS before and after filling the
point's registry. The attacker makes key pairs for free (here: random 38-byte peer IDs), opens
one connection per key pair and registers under as many namespaces as the point lets it, each
time with a record of the largest allowed size (4 KiB), from a given number of source
addresses, until every attempt is refused. `old` is the point with the caps it had before
issue 12 (per peer, per namespace and in total only: the new caps are switched off); `new` is
today's `RegistryLimits()`. The registry is filled directly (records are not signed or
verified): what it stores is the same bytes a REGISTER over the wire leaves behind.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from meshtalk.discovery.registry import Registry, RegistryLimits
from meshtalk.protocol import RendezvousError

UNCAPPED = 1 << 62
OLD = RegistryLimits(
    max_registrations_per_connection=UNCAPPED,
    max_record_bytes_per_connection=UNCAPPED,
    max_registrations_per_source=UNCAPPED,
    max_record_bytes_per_source=UNCAPPED,
    max_record_bytes=UNCAPPED,
)


@dataclass(frozen=True)
class Scenario:
    limits: RegistryLimits
    addresses: int  # source addresses the attacker registers from
    record_size: int = 4096
    key_pairs: int = 2000  # per address


SCENARIOS = {
    "old-1-address": Scenario(OLD, 1),
    "new-1-address": Scenario(RegistryLimits(), 1),
    "new-100-addresses": Scenario(RegistryLimits(), 100, key_pairs=400),
    "new-1000-addresses": Scenario(RegistryLimits(), 1000, key_pairs=100),
    "new-1000-addresses-400-byte-records": Scenario(
        RegistryLimits(), 1000, record_size=400, key_pairs=200
    ),
}


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def run(name: str) -> None:
    scenario = SCENARIOS[name]
    limits = scenario.limits
    registry = Registry(limits)
    gc.collect()
    before = rss_mib()
    started = time.perf_counter()
    attempts = refused = 0
    connection = 0
    for _ in range(scenario.key_pairs):
        for address in range(scenario.addresses):
            connection += 1
            peer = os.urandom(38)
            source = f"10.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}"
            for ns in range(limits.max_registrations_per_peer):
                attempts += 1
                try:
                    registry.register(
                        peer,
                        f"meshtalk/flood-{ns}",
                        os.urandom(scenario.record_size),
                        limits.max_ttl,
                        now=0,
                        connection=connection,
                        source=source,
                    )
                except RendezvousError:
                    refused += 1
                    break  # this key pair is done; the next one tries
        if len(registry) >= limits.max_registrations:
            break
    gc.collect()
    after = rss_mib()
    stats = registry.statistics()
    print(
        f"{name:38} {stats.registrations:>7,} registrations "
        f"{stats.record_bytes / 2**20:7.1f} MiB of records   "
        f"RSS {before:6.1f} -> {after:6.1f} MiB (+{after - before:6.1f})   "
        f"{attempts:,} attempts, {refused:,} refused, {time.perf_counter() - started:.1f} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    if args.scenario:
        run(args.scenario)
        return
    for name in SCENARIOS:  # a fresh process each, so one scenario's heap does not hide another's
        subprocess.run([sys.executable, __file__, "--scenario", name], check=True)


if __name__ == "__main__":
    main()
