"""ABI copies of the system contracts the SDK binds, generated from the committed build artifacts by
``tests/sdk/client/abi_copies.py`` (a test fails while they are stale)."""
