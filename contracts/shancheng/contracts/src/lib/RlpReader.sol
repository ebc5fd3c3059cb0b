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
    function read(bytes calldata data, uint256 at) internal pure returns (bool isList, uint256 start, uint256 end) {
        if (at >= data.length) revert RlpMalformed(at);
        uint256 b = uint8(data[at]);
        uint256 length;
        if (b < 0x80) {
            return (false, at, at + 1);
        }
        if (b < 0xb8) {
            start = at + 1;
            length = b - 0x80;
            if (length == 1 && (start >= data.length || uint8(data[start]) < 0x80)) revert RlpMalformed(at);
        } else if (b < 0xc0) {
            (start, length) = _long(data, at, b - 0xb7);
        } else if (b < 0xf8) {
            isList = true;
            start = at + 1;
            length = b - 0xc0;
        } else {
            isList = true;
            (start, length) = _long(data, at, b - 0xf7);
        }
        end = start + length;
        if (end > data.length) revert RlpMalformed(at);
    }

    function _long(bytes calldata data, uint256 at, uint256 lengthOfLength)
        private
        pure
        returns (uint256 start, uint256 length)
    {
        start = at + 1 + lengthOfLength;
        if (lengthOfLength > 4 || start > data.length || uint8(data[at + 1]) == 0) revert RlpMalformed(at);
        for (uint256 i = at + 1; i < start; i++) {
            length = (length << 8) | uint8(data[i]);
        }
        if (length < 56) revert RlpMalformed(at);
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
