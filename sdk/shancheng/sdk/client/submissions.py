"""Which transactions a piece of work submitted: a caller that must know whether a failed request already sent a
transaction (a server deciding whether a retry may run the request again) records the submissions made in its
context.

:meth:`~shancheng.sdk.client.chain_client.ChainClient.submit` notes the hash of every transaction it hands to a
node (also when the node's answer was lost: it may have arrived) into the list of the innermost
:func:`recording_submissions` of the current context (a :mod:`contextvars` variable, so threads and tasks that copy
the context — Starlette's thread pool, ``asyncio`` tasks — report to the request that started them).

>>> with recording_submissions() as sent:
...     note_submitted(b"\\x01" * 32)
>>> [h.hex()[:4] for h in sent]
['0101']
>>> note_submitted(b"\\x02" * 32)  # outside any recording: nothing to do
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["note_submitted", "recording_submissions"]

_RECORDING: ContextVar[list[bytes] | None] = ContextVar("shancheng_submissions", default=None)


@contextmanager
def recording_submissions() -> Iterator[list[bytes]]:
    """The hashes of the transactions submitted in this context until the block ends, in order."""
    sent: list[bytes] = []
    token = _RECORDING.set(sent)
    try:
        yield sent
    finally:
        _RECORDING.reset(token)


def note_submitted(tx_hash: bytes) -> None:
    """Record that the transaction ``tx_hash`` was handed to a node (no effect outside a recording)."""
    sent = _RECORDING.get()
    if sent is not None:
        sent.append(bytes(tx_hash))
