"""Which control calls SocketTransport may run again after their answer was lost."""

from __future__ import annotations

from meshtalk.facade.transport import _repeatable


def test_a_receive_that_moves_a_consumer_is_not_run_again() -> None:
    # the node moved the consumer past the lost answer's messages: a rerun would skip them
    assert not _repeatable("receive", {"consumer": "mcp", "wait": 5})
    assert _repeatable("receive", {"after": 10})
    assert _repeatable("status", {})
    assert not _repeatable("send", {"to": "bob", "text": "hi"})
    assert not _repeatable("inbox", {})  # marks messages read
