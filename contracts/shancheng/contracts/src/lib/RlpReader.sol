// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title RlpReader — strict reading of RLP (Ethereum's Recursive Length Prefix) items in calldata.
/// @notice Items are addressed by offsets into one `bytes calldata` buffer, nothing is copied. Only canonical
///   encodings are accepted (as the Python verifier's decoder accepts them): a single byte below 0x80 is never
///   wrapped, long forms are used only from 56 bytes on, lengths have no leading zero, integers no leading zero.
library RlpReader {
    /// @notice The RLP input is malformed or not canonical; `at` is the offset of the offending item.
    error RlpMalformed(uint256 at);

    /// @notice The item whose prefix is at `at`: whether it is a list, its payload [start, end).
    /// @dev Reads the prefix and up to 4 length bytes from one calldata word (a call of about 100 gas, not 350).
    function read(bytes calldata data, uint256 at) internal pure returns (bool isList, uint256 start, uint256 end) {
        uint256 size = data.length;
        if (at >= size) revert RlpMalformed(at);
        uint256 word;
        assembly ("memory-safe") {
            word := calldataload(add(data.offset, at))
        }
        uint256 b = word >> 248;
        // unchecked: at < size (calldata, far below 2^64) and a length has at most 4 bytes
        unchecked {
            if (b < 0x80) return (false, at, at + 1);
            uint256 length;
            if (b < 0xb8) {
                start = at + 1;
                length = b - 0x80;
                if (length == 1 && (start >= size || (word >> 240) & 0xff < 0x80)) revert RlpMalformed(at);
            } else if (b >= 0xc0 && b < 0xf8) {
                isList = true;
                start = at + 1;
                length = b - 0xc0;
            } else {
                isList = b >= 0xf8;
                uint256 lengthOfLength = b - (isList ? 0xf7 : 0xb7);
                start = at + 1 + lengthOfLength;
                if (lengthOfLength > 4 || start > size || (word >> 240) & 0xff == 0) revert RlpMalformed(at);
                length = (word << 8) >> (256 - 8 * lengthOfLength);
                if (length < 56) revert RlpMalformed(at);
            }
            end = start + length;
        }
        if (end > size) revert RlpMalformed(at);
    }

    /// @notice The payload [start, end) of a string item as an unsigned integer (at most 32 bytes, no leading zero).
    function toUint(bytes calldata data, uint256 start, uint256 end) internal pure returns (uint256 value) {
        if (end - start > 32 || (end > start && uint8(data[start]) == 0)) revert RlpMalformed(start);
        for (uint256 i = start; i < end; i++) {
            value = (value << 8) | uint8(data[i]);
        }
    }

    /// @notice The payload [start, end) of a 32-byte string item.
    function toBytes32(bytes calldata data, uint256 start, uint256 end) internal pure returns (bytes32) {
        if (end - start != 32) revert RlpMalformed(start);
        return bytes32(data[start:end]);
    }
}
