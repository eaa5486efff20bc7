"""How the CLI renders what the node reports, and what it reads (issue 14, item 11)."""

from __future__ import annotations

import argparse

import pytest

from meshtalk.cli.output import clean_reason, command_hint
from meshtalk.cli.remote import without_final_newline

PEER = "12D3KooWBbErutYY2oKUzCyCvR6pW4Ad4aS9VaQRq6JN91ZYijcu"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (f"SwarmException: Peer {PEER} recently failed all addresses (negative cache)",
         "unreachable: its addresses failed a moment ago (trying again)"),
        (f"SwarmDialAllFailedError: unable to connect to {PEER}, no addresses established a "
         "successful connection (with exceptions)", "unreachable: no address of it answered"),
        (f"SwarmException: No known addresses to peer {PEER}", "no known address for it"),
        ("OSError: [Errno 111] Connect call failed ('127.0.0.1', 1)",
         "connection refused (nothing listens at its address)"),
        ("TooSlowError: ", "timed out"),
        ("OSError: [Errno 113] No route to host", "no route to host"),
        ("RendezvousError: the point refused the registration: namespace too long (status 100)",
         "the point refused the registration: namespace too long (status 100)"),
        ("StreamReset: \n\n  stream reset by the remote side\n  more detail",
         "stream reset by the remote side"),
        ("ValueError: " + "x" * 300, "x" * 99 + "…"),
        ("something without a type prefix", "something without a type prefix"),
    ],
)  # fmt: skip
def test_a_raw_network_error_becomes_one_clean_line(raw: str, reason: str) -> None:
    assert clean_reason(raw) == reason


def test_our_own_errors_keep_their_words() -> None:
    """A MeshtalkError's text is written for people: no phrase table rewrites it."""
    raw = "RendezvousError: the point timed out our registration; it will be renewed"
    assert clean_reason(raw) == "the point timed out our registration; it will be renewed"


def test_stdin_loses_exactly_one_final_newline() -> None:
    assert without_final_newline("hello\n") == "hello"
    assert without_final_newline("hello\r\n") == "hello"
    assert without_final_newline("two lines\nend\n") == "two lines\nend"
    assert without_final_newline("a blank line after\n\n") == "a blank line after\n"
    assert without_final_newline("no newline") == "no newline"


def test_hints_carry_the_profile_unless_it_is_the_default() -> None:
    assert command_hint(argparse.Namespace(profile="default"), "pair") == "meshtalk pair"
    assert command_hint(argparse.Namespace(profile="bob"), "pair") == "meshtalk --profile bob pair"


def test_history_and_inbox_lines_cannot_drive_the_terminal() -> None:
    from meshtalk.cli.output import format_message

    line = format_message(
        {
            "direction": "in",
            "author_name": "bob\x1b[31m",
            "author": "12D3KooWexample",
            "timestamp_ms": 0,
            "cursor": 7,
            "text": "hi\x1b[2J\u202eevil",
        }
    )
    assert "\x1b" not in line
    assert "\u202e" not in line
    assert "bob\\x1b[31m" in line
    assert "hi\\x1b[2J\\u202eevil" in line
