"""`safe_handler`: what a stream handler raises never escapes, and routine ends are one line."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from meshtalk.net.host import safe_handler
from meshtalk.protocol.errors import NotAuthorized

pytestmark = pytest.mark.timeout(10)


class _Stream:
    def __init__(self) -> None:
        self.resets = 0

    async def reset(self) -> None:
        self.resets += 1


async def _run(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    async def handler(stream: Any) -> None:
        raise exc

    stream = _Stream()
    with caplog.at_level(logging.DEBUG, logger="meshtalk"):
        await safe_handler("test", handler)(stream)  # type: ignore[arg-type]
    assert stream.resets == 1
    return [r for r in caplog.records if r.name.startswith("meshtalk")]


async def test_a_handshake_timeout_is_one_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = await _run(trio.TooSlowError(), caplog)
    assert [r.levelno for r in records] == [logging.INFO]
    assert records[0].exc_info is None
    assert "did not answer in time" in records[0].getMessage()


async def test_a_refusal_is_one_line_and_a_bug_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = await _run(NotAuthorized("not a contact"), caplog)
    assert refused[-1].exc_info is None
    assert refused[-1].levelno == logging.INFO
    caplog.clear()
    bug = await _run(KeyError("oops"), caplog)
    assert bug[-1].levelno == logging.ERROR
    assert bug[-1].exc_info is not None
