"""`meshtalk mcp`: the command that serves coding agents."""

from __future__ import annotations

import argparse

__all__ = ["mcp"]


def mcp(args: argparse.Namespace) -> int:
    """Serve MCP on stdio until the client hangs up."""
    from ..protocol.errors import ConfigError
    from .output import profile_of

    try:
        from ..integrations.mcp_server import run_mcp_server
    except ImportError as exc:
        raise ConfigError(
            f"the MCP server needs the mcp package ({exc.name} is missing): "
            "pip install 'meshtalk[mcp]'"
        ) from None
    run_mcp_server(profile_of(args))
    return 0
