// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GmCrypto} from "./lib/GmCrypto.sol";

/// @title GmProbe — exposes GmCrypto so tools and tests can ask a chain whether it has the GM precompile.
contract GmProbe {
    function available() external view returns (bool) {
        return GmCrypto.available();
    }

    function sm3(bytes calldata data) external view returns (bytes32) {
        return GmCrypto.sm3(data);
    }

    function sm2Verify(bytes32 message, bytes calldata publicKey, bytes32 r, bytes32 s)
        external
        view
        returns (bool ok, address signer)
    {
        return GmCrypto.sm2Verify(message, publicKey, r, s);
    }
}
