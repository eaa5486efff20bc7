"""`meshtalk demo`."""

from __future__ import annotations

import argparse

__all__ = ["demo"]


def demo(args: argparse.Namespace) -> int:
    """Run the built-in demo on loopback."""
    from ..demo import run_demo

    run_demo(lambda line: print(line, flush=True))
    return 0
