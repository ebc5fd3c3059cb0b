// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title GmCrypto — access to the GM (SM2/SM3) crypto precompile at 0x100a.
/// @notice The precompile follows FISCO BCOS v3's Crypto precompile ABI (see docs/precompiles.md):
///   sm3(bytes) returns (bytes32); keccak256Hash(bytes) returns (bytes32);
///   sm2Verify(bytes32 message, bytes publicKey, bytes32 r, bytes32 s) returns (bool, address).
///   `message` is the 32-byte message M signed with standard SM2 and the default user ID
///   1234567812345678; the precompile computes e = SM3(Z_A || M) itself.
///   On a stock EVM (anvil, ganache, Besu) 0x100a holds no code: `available()` is false, `sm3` reverts
///   and `sm2Verify` returns (false, address(0)); callers then store the signature for off-chain checks.
library GmCrypto {
    address internal constant PRECOMPILE = address(0x100a);

    /// @dev SM3("abc"), GB/T 32905 example 1
    bytes32 internal constant SM3_ABC = 0x66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0;

    /// @notice True when the GM precompile answers the SM3 known-answer test.
    function available() internal view returns (bool) {
        (bool ok, bytes memory ret) = PRECOMPILE.staticcall(abi.encodeWithSignature("sm3(bytes)", bytes("abc")));
        return ok && ret.length == 32 && abi.decode(ret, (bytes32)) == SM3_ABC;
    }

    /// @notice SM3 of `data`; reverts "GmCrypto: no precompile" on a chain without the precompile.
    function sm3(bytes memory data) internal view returns (bytes32) {
        (bool ok, bytes memory ret) = PRECOMPILE.staticcall(abi.encodeWithSignature("sm3(bytes)", data));
        require(ok && ret.length == 32, "GmCrypto: no precompile");
        return abi.decode(ret, (bytes32));
    }

    /// @notice Verifies the SM2 signature (r, s) of message M under `publicKey` (64 bytes x||y, or 65 with 04).
    /// @return ok true for a valid signature
    /// @return signer the SM2 address of the key (last 20 bytes of SM3(x||y)) when ok, else address(0)
    function sm2Verify(bytes32 message, bytes memory publicKey, bytes32 r, bytes32 s)
        internal
        view
        returns (bool ok, address signer)
    {
        (bool success, bytes memory ret) = PRECOMPILE.staticcall(
            abi.encodeWithSignature("sm2Verify(bytes32,bytes,bytes32,bytes32)", message, publicKey, r, s)
        );
        if (!success || ret.length != 64) {
            return (false, address(0));
        }
        (ok, signer) = abi.decode(ret, (bool, address));
        if (!ok) {
            signer = address(0);
        }
    }
}
