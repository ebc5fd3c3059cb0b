"""A tiny EVM assembler for the native engine's tests: mnemonics and push values to bytecode."""

from __future__ import annotations

OPCODES = {
    "STOP": 0x00, "ADD": 0x01, "SUB": 0x03, "LT": 0x10, "ISZERO": 0x15, "SHL": 0x1B, "SHA3": 0x20,
    "ADDRESS": 0x30, "BALANCE": 0x31, "CALLER": 0x33, "CALLVALUE": 0x34, "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36,
    "CALLDATACOPY": 0x37, "CODECOPY": 0x39, "RETURNDATASIZE": 0x3D, "BLOCKHASH": 0x40, "COINBASE": 0x41,
    "TIMESTAMP": 0x42, "NUMBER": 0x43, "PREVRANDAO": 0x44, "GASLIMIT": 0x45, "CHAINID": 0x46, "SELFBALANCE": 0x47,
    "BASEFEE": 0x48, "BLOBBASEFEE": 0x4A, "POP": 0x50, "MLOAD": 0x51, "MSTORE": 0x52, "MSTORE8": 0x53,
    "SLOAD": 0x54, "SSTORE": 0x55, "JUMP": 0x56, "JUMPI": 0x57, "GAS": 0x5A, "JUMPDEST": 0x5B, "TLOAD": 0x5C,
    "TSTORE": 0x5D, "MCOPY": 0x5E, "DUP1": 0x80, "DUP2": 0x81, "SWAP1": 0x90, "LOG0": 0xA0, "LOG2": 0xA2,
    "CREATE": 0xF0, "CALL": 0xF1, "RETURN": 0xF3, "DELEGATECALL": 0xF4, "CREATE2": 0xF5, "STATICCALL": 0xFA,
    "REVERT": 0xFD, "INVALID": 0xFE, "SELFDESTRUCT": 0xFF,
}


def asm(*program: str | int | bytes) -> bytes:
    """Mnemonics as strings, ints and bytes as the smallest PUSH of them (PUSH0 for 0)."""
    out = bytearray()
    for item in program:
        if isinstance(item, str):
            out.append(OPCODES[item])
            continue
        data = item if isinstance(item, bytes) else item.to_bytes(max(1, (item.bit_length() + 7) // 8), "big")
        if data == b"\x00" and isinstance(item, int):
            out.append(0x5F)  # PUSH0
            continue
        assert 1 <= len(data) <= 32
        out += bytes([0x5F + len(data)]) + data
    return bytes(out)


def deployer(runtime: bytes) -> bytes:
    """Init code returning ``runtime``: CODECOPY(0, 12, n); RETURN(0, n) (12 bytes long)."""
    n = len(runtime).to_bytes(2, "big")
    return bytes([0x61]) + n + bytes.fromhex("80600c6000396000f3") + runtime
