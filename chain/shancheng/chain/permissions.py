"""Governance permission views: whether an account may send transactions, whether a peer may connect.

Both are answers of Governance views (``isAccountAllowed(address)``, ``isPeerAllowed(bytes20)``) executed as
EVM calls. Admission and the peer filter ask for every transaction and every connection, so answers on the
committed state are remembered while Governance's storage root is the same (the answer is a function of that
storage alone). Block execution asks on the state inside the block (:meth:`GovernanceViews.allowed_in`).

>>> views = GovernanceViews(store, governance=genesis.system_contracts["Governance"])   # doctest: +SKIP
>>> views.is_account_allowed(member_address)                                              # doctest: +SKIP
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from eth.abc import BlockHeaderAPI
from eth.exceptions import Revert
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode, encode
from eth_typing import Address
from eth_utils.abi import function_signature_to_4byte_selector

from shancheng.sdk.errors import InvalidInput

from .committed import CommittedChain

__all__ = ["GovernanceViews"]

_ALLOWED_SELECTOR = function_signature_to_4byte_selector("isAccountAllowed(address)")
_PEER_SELECTOR = function_signature_to_4byte_selector("isPeerAllowed(bytes20)")
_CALL_GAS = 50_000_000
_ALLOWED_CACHE = 10_000  # answers remembered; non-members can make up any number of senders


class GovernanceViews:
    """Governance's permission views on ``store``'s chains, with their memo."""

    def __init__(self, store: CommittedChain, *, governance: bytes) -> None:
        self._store = store
        self._governance = governance
        self._answers: dict[bytes, bool] = {}  # view answers (by call data) while Governance's storage
        self._answers_root: bytes | None = None  # root is this one (see _memoised)
        self._lock = threading.Lock()  # admission and the block builder ask from two threads

    def is_account_allowed(self, address: bytes, header: BlockHeaderAPI | None = None, *, state: Any = None) -> bool:
        """Governance.isAccountAllowed(address) at ``header`` (default: the head); ``state`` is the state at
        ``header`` when the caller already holds it (admission asks for every transaction)."""
        chain = self._store.chain
        if state is None:
            header = header or self._store.head
            state = self._store.state_at(header)
        # the head is read only when the memo has no answer (reading it for every transaction was most of this
        # view's cost in CheckTx)
        return self.allowed_at(chain, state, address,
                               lambda: chain.create_header_from_parent(header or self._store.head))

    def is_peer_allowed(self, node_id: bytes) -> bool:
        """Governance.isPeerAllowed(node_id) at the committed head: whether the CometBFT node id (20 bytes) is on
        the peer allow-list. Memoised while Governance's storage root is the same."""
        if len(node_id) != 20:
            raise InvalidInput("a CometBFT node id is 20 bytes")
        chain = self._store.chain
        header = self._store.head
        return self._memoised(self._store.state_at(header), _PEER_SELECTOR + encode(["bytes20"], [node_id]),
                              lambda data: self._governance_says(chain, data, chain.create_header_from_parent(header)))

    def allowed_at(self, chain: Any, state: Any, sender: bytes, at_header: Callable[[], BlockHeaderAPI]) -> bool:
        """:meth:`allowed_in` for a committed ``state``, memoised (:meth:`_memoised`)."""
        return self._memoised(state, _allowed_call(sender),
                              lambda data: self._governance_says(chain, data, at_header()))

    def allowed_in(self, chain: Any, sender: bytes, at_header: BlockHeaderAPI) -> bool:
        """Governance.isAccountAllowed(sender), executed on py-evm ``chain`` as of ``at_header`` (not memoised:
        the state may be one inside a block)."""
        return self._governance_says(chain, _allowed_call(sender), at_header)

    def _memoised(self, state: Any, data: bytes, ask: Callable[[bytes], bool]) -> bool:
        """The answer of a Governance view for call ``data`` on a committed ``state``, remembered while
        Governance's storage root is the same: the answer is a function of that storage alone, and asking is an
        EVM call (admission and the peer filter ask for every transaction and every connection)."""
        root = state.storage_root(self._governance)
        with self._lock:
            if root != self._answers_root or len(self._answers) >= _ALLOWED_CACHE:
                self._answers.clear()
                self._answers_root = root
            if data not in self._answers:
                self._answers[data] = ask(data)
            return self._answers[data]

    def _governance_says(self, chain: Any, data: bytes, at_header: BlockHeaderAPI) -> bool:
        """The bool a Governance view returns for the call ``data``, executed on ``chain`` as of ``at_header``
        (False when it reverts)."""
        probe = CancunTransactionBuilder.create_unsigned_transaction(
            nonce=0, gas_price=0, gas=_CALL_GAS, to=Address(self._governance), value=0, data=data
        )
        try:
            out = chain.get_transaction_result(SpoofTransaction(probe, from_=b"\0" * 20), at_header)
        except Revert:
            return False
        return len(out) == 32 and bool(decode(["bool"], out)[0])


def _allowed_call(sender: bytes) -> bytes:
    """The call data of Governance.isAccountAllowed(sender): the address as its ABI word (eth_abi's encoder took
    a tenth of an admission, and admission asks for every transaction)."""
    if len(sender) != 20:
        raise InvalidInput("an account address is 20 bytes")
    return _ALLOWED_SELECTOR + bytes(12) + bytes(sender)
