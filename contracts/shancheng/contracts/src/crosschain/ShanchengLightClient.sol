// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GmCrypto} from "../lib/GmCrypto.sol";
import {AnchorReceipt} from "../lib/AnchorReceipt.sol";
import {InclusionProof} from "../lib/InclusionProof.sol";
import {MptProof} from "../lib/MptProof.sol";
import {RlpReader} from "../lib/RlpReader.sol";

/// @title ShanchengLightClient — a light client of one Shancheng network, run inside a contract on another chain.
/// @notice Trust root: the source chain's genesis validator set, chain id and genesis fingerprint (its identity),
///   given at deployment. From there it follows validator-set changes in sequence and verifies certified block
///   headers exactly as the SDK's offline verifier does (docs/cross-chain.md, docs/chain-formats.md):
///   - a commit certificate signs M = SM3("shancheng/precommit/v2" || identity || u64 chainId || u64 height ||
///     u32 round || blockHash || u64 timestampMs) per signer with SM2 (default user ID), checked by the GM
///     precompile at 0x100a; distinct, known signers whose power is more than 2/3 of the set's
///     (3 * signed > 2 * total) must sign keccak256(header);
///   - every header h >= 1 carries extra_data = SM3("shancheng/validators/v1" || hash(set(h)) || hash(set(h+2)))
///     with hash(set) = SM3("shancheng/validator-set/v1" || u32 n || per validator x || y || consensusKey ||
///     u64 power); a change made by block h takes effect at h + 2 (CometBFT's rule).
///   There is no trusting period: the client never expires. The only way around the proofs is `recover`, callable
///   by the recovery authority (the target chain's Governance) alone.
contract ShanchengLightClient {
    /// @notice One validator: SM2 key x || y, CometBFT ed25519 consensus key, voting power (1 .. 2^40).
    struct Validator {
        bytes32 x;
        bytes32 y;
        bytes32 consensusKey;
        uint64 power;
    }

    /// @notice A validator as kept here: its SM2 key and power (the consensus key is covered by the set hash only).
    struct Member {
        bytes32 x;
        bytes32 y;
        uint64 power;
    }

    /// @notice One precommit: the signer's index in the set of the height, its timestamp and SM2 (r, s).
    struct Precommit {
        uint32 validatorIndex;
        uint64 timestampMs;
        bytes32 r;
        bytes32 s;
    }

    /// @notice A commit certificate (format v2), signatures as raw (r, s) rather than DER.
    struct Certificate {
        bytes32 chainIdentity;
        uint64 chainId;
        uint64 height;
        uint32 round;
        bytes32 blockHash;
        Precommit[] signatures;
    }

    /// @notice What a certified header proves.
    struct Header {
        uint64 height;
        bytes32 blockHash;
        bytes32 stateRoot;
        bytes32 receiptsRoot;
        uint64 timestamp;
        bytes32 extraData;
    }

    /// @notice A stored checkpoint of a certified block.
    struct Checkpoint {
        bytes32 blockHash;
        bytes32 stateRoot;
        bytes32 receiptsRoot;
        uint64 timestamp;
    }

    /// @notice A checkpoint anchored on the source chain, proven by its receipt under a certified block.
    struct Anchor {
        uint64 orgId;
        bytes32 source;
        uint64 sequence;
        bytes32 root;
        uint64 treeSize;
        uint64 height;
        bytes32 blockHash;
    }

    /// @notice Where an anchoring transaction is: its index in the block, its receipt proof (the `proof` list of
    ///   shancheng_getReceiptProof) and the (source, sequence) of the BatchAnchored log it must hold.
    struct AnchorProof {
        uint256 transactionIndex;
        bytes[] receiptProof;
        bytes32 source;
        uint64 sequence;
    }

    /// @notice A record's RFC 9162 inclusion proof in its organisation's log: the leaf hash (SM3(0x00 || leaf data),
    ///   `recordLeafHash`), the leaf's index, the tree size and the audit path (SM3 node hashes).
    struct Inclusion {
        bytes32 leafHash;
        uint64 leafIndex;
        uint64 treeSize;
        bytes32[] path;
    }

    /// @notice What verified evidence proves: the anchor (which organisation's log, which tree, which block) and the
    ///   leaf of that tree.
    struct Evidence {
        Anchor anchor;
        uint64 leafIndex;
        bytes32 leafHash;
    }

    /// @notice The validator set that certifies the blocks from `fromHeight` on (until the next epoch's).
    struct Epoch {
        uint64 fromHeight;
        uint64 changeHeight; // the block that made the change (0 for genesis and recoveries)
        uint128 totalPower;
        bytes32 setHash;
    }

    bytes22 private constant PRECOMMIT_DOMAIN = "shancheng/precommit/v2";
    bytes26 private constant VALIDATOR_SET_DOMAIN = "shancheng/validator-set/v1";
    bytes23 private constant HEADER_COMMITMENT_DOMAIN = "shancheng/validators/v1";
    uint256 public constant MAX_VALIDATORS = 1024;
    uint256 public constant MAX_POWER = 1 << 40;
    uint256 private constant MAX_HEADER_SIZE = 4096;
    uint256 private constant MAX_LEAF_SIZE = 4096;

    // The precompile's known-answer vector: a signature over M = SM3("abc") under a fixed key.
    bytes32 private constant PROBE_X = 0xbdb076b05d037ca8eaf6f3ae64798b9606c3b6792256340d03e7472b7cdcf2c6;
    bytes32 private constant PROBE_Y = 0x1d53729da28c0e462b5d7fddba729789a4d53f0f5c0a2ed3f73187e65d0c25f9;
    bytes32 private constant PROBE_R = 0x391da3486134081d4eda6d531a59f6bf79a8403ceeea685d8c1b17fdb8d2cef8;
    bytes32 private constant PROBE_S = 0xa22b18e070968fc9a4b0f54ec2eeb9e34b99bee49fdb2cc34ee9afff93e57f13;

    /// @notice The source chain's identity: its genesis fingerprint.
    bytes32 public immutable chainIdentity;
    /// @notice The source chain's chain id.
    uint64 public immutable sourceChainId;
    /// @notice The source chain's EvidenceRegistry (its genesis file's system contract).
    address public immutable sourceRegistry;
    /// @notice The only account that may call `recover`: the target chain's Governance (zero: no recovery).
    address public immutable recoveryAuthority;

    Epoch[] private _epochs;
    mapping(uint256 epoch => Member[]) private _members;
    mapping(uint64 height => Checkpoint) private _checkpoints;
    /// @notice The height of the last validator-set change followed (0: none yet).
    uint64 public lastChangeHeight;
    /// @notice The highest height of a header this client has verified and kept (a change or a checkpoint).
    uint64 public followedHeight;

    error GmPrecompileMissing();
    error HeaderTooLarge(uint256 size);
    error MalformedHeader(string reason);
    error CertificateForAnotherChain(bytes32 chainIdentity, uint64 chainId);
    error CertificateForAnotherBlock(uint64 certifiedHeight, bytes32 certifiedHash, uint64 height, bytes32 blockHash);
    error UnknownSigner(uint256 validatorIndex, uint256 setSize);
    error DuplicateSigner(uint256 validatorIndex);
    error InvalidSignature(uint256 validatorIndex);
    error InsufficientPower(uint256 signedPower, uint256 totalPower);
    error HeaderCommitmentMismatch(uint64 height, bytes32 extraData, bytes32 expected);
    error ChangeOutOfOrder(uint64 height, uint64 lastChangeHeight);
    error PreviousHeaderNotProven(uint64 height);
    error InvalidValidatorSet(string reason);
    error ConflictingCheckpoint(uint64 height, bytes32 storedHash, bytes32 offeredHash);
    error HeightNotFollowed(uint64 height, uint64 followedHeight);
    error NoCheckpoint(uint64 height);
    error NotRecoveryAuthority(address caller);
    error RecoveryHeightTooLow(uint64 fromHeight, uint64 minimum);
    error InclusionTreeSizeMismatch(uint64 proofTreeSize, uint64 anchoredTreeSize);
    error InclusionRootMismatch(bytes32 computedRoot, bytes32 anchoredRoot);
    error LeafTooLarge(uint256 size);

    event ValidatorSetChanged(
        uint64 indexed changeHeight, uint64 fromHeight, bytes32 setHash, uint256 size, uint256 totalPower
    );
    event CheckpointStored(
        uint64 indexed height, bytes32 blockHash, bytes32 stateRoot, bytes32 receiptsRoot, uint64 timestamp
    );
    event Recovered(uint64 indexed fromHeight, bytes32 setHash, uint256 size, uint256 totalPower);

    /// @param identity the source chain's genesis fingerprint (GenesisFile.fingerprint)
    /// @param chainId the source chain's chain id
    /// @param genesisSet the genesis file's validators, in its order
    /// @param registry the source chain's EvidenceRegistry address (genesis system_contracts)
    /// @param authority the target chain's Governance, the only account that may call `recover` (zero: none)
    constructor(bytes32 identity, uint64 chainId, Validator[] memory genesisSet, address registry, address authority) {
        if (!_precompileAnswers()) revert GmPrecompileMissing();
        chainIdentity = identity;
        sourceChainId = chainId;
        sourceRegistry = registry;
        recoveryAuthority = authority;
        _pushEpoch(0, 0, genesisSet);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Reads

    /// @notice Verifies that `header` (RLP) is certified by `certificate` under the validator set this client
    ///   followed for its height and commits to that set and the set of height + 2; reverts with the reason.
    function verifyCertifiedHeader(bytes calldata header, Certificate calldata certificate)
        public
        view
        returns (Header memory h)
    {
        h = decodeHeader(header);
        if (h.height == 0) revert MalformedHeader("the genesis block carries no certificate");
        if (certificate.blockHash != h.blockHash || certificate.height != h.height) {
            revert CertificateForAnotherBlock(certificate.height, certificate.blockHash, h.height, h.blockHash);
        }
        uint256 epoch = _epochAt(h.height);
        _verifyCertificate(certificate, epoch);
        bytes32 expected = _headerCommitment(_epochs[epoch].setHash, _epochs[_epochAt(h.height + 2)].setHash);
        if (h.extraData != expected) revert HeaderCommitmentMismatch(h.height, h.extraData, expected);
    }

    /// @notice The fields of an RLP block header this client uses, and its hash; reverts on a malformed header.
    function decodeHeader(bytes calldata header) public pure returns (Header memory h) {
        if (header.length > MAX_HEADER_SIZE) revert HeaderTooLarge(header.length);
        (bool isList, uint256 at, uint256 end) = RlpReader.read(header, 0);
        if (!isList || end != header.length) revert MalformedHeader("not one RLP list");
        uint256 count;
        while (at < end) {
            (bool nested, uint256 start, uint256 stop) = RlpReader.read(header, at);
            if (nested || stop > end) revert MalformedHeader("a field is a list or overruns");
            if (count == 3) {
                h.stateRoot = RlpReader.toBytes32(header, start, stop);
            } else if (count == 5) {
                h.receiptsRoot = RlpReader.toBytes32(header, start, stop);
            } else if (count == 8 || count == 11) {
                uint256 value = RlpReader.toUint(header, start, stop);
                if (value >= 1 << 63) revert MalformedHeader("number or timestamp out of range");
                if (count == 8) h.height = uint64(value);
                else h.timestamp = uint64(value);
            } else if (count == 12) {
                if (stop - start != 32) revert MalformedHeader("extra_data is not 32 bytes");
                h.extraData = RlpReader.toBytes32(header, start, stop);
            }
            at = stop;
            if (++count > 21) revert MalformedHeader("more than 21 fields");
        }
        if (count < 15) revert MalformedHeader("fewer than 15 fields");
        h.blockHash = keccak256(header);
    }

    /// @notice The validator set that certifies block `height` (SM2 keys and powers in set order, its hash as
    ///   validators.py computes it, total power), for heights this client has followed (up to followedHeight + 2).
    function validatorSetAt(uint64 height)
        external
        view
        returns (Member[] memory validators, bytes32 setHash, uint256 totalPower)
    {
        if (height > uint256(followedHeight) + 2) revert HeightNotFollowed(height, followedHeight);
        uint256 epoch = _epochAt(height);
        return (_members[epoch], _epochs[epoch].setHash, _epochs[epoch].totalPower);
    }

    /// @notice The epochs followed: (first height, change height, set hash, total power) each, ascending.
    function epochs() external view returns (Epoch[] memory) {
        return _epochs;
    }

    /// @notice The checkpoint stored for `height`; reverts NoCheckpoint when there is none.
    function checkpoint(uint64 height) external view returns (Checkpoint memory c) {
        c = _checkpoints[height];
        if (c.blockHash == bytes32(0)) revert NoCheckpoint(height);
    }

    /// @notice Which organisation's log anchored which checkpoint in the stored checkpoint of `height`: the receipt
    ///   of the transaction at `transactionIndex` (the value `receiptProof` proves under the checkpoint's receipts
    ///   root) succeeded and holds the one BatchAnchored log of the source EvidenceRegistry for (source, sequence).
    function verifyAnchor(
        uint64 height,
        uint256 transactionIndex,
        bytes[] calldata receiptProof,
        bytes32 source,
        uint64 sequence
    ) external view returns (Anchor memory) {
        Checkpoint storage c = _checkpoints[height];
        if (c.blockHash == bytes32(0)) revert NoCheckpoint(height);
        return _anchor(height, c.blockHash, c.receiptsRoot, transactionIndex, receiptProof, source, sequence);
    }

    /// @notice As `verifyAnchor`, under a certified header given with its certificate instead of a stored checkpoint.
    function verifyAnchorInHeader(
        bytes calldata header,
        Certificate calldata certificate,
        uint256 transactionIndex,
        bytes[] calldata receiptProof,
        bytes32 source,
        uint64 sequence
    ) external view returns (Anchor memory) {
        Header memory h = verifyCertifiedHeader(header, certificate);
        return _anchor(h.height, h.blockHash, h.receiptsRoot, transactionIndex, receiptProof, source, sequence);
    }

    /// @notice Which organisation's log (source) anchored which leaf at which height, under the stored checkpoint of
    ///   `height`: the anchor as `verifyAnchor` proves it, then the record's inclusion proof against the tree that
    ///   BatchAnchored log anchored: its size must be the anchored size (InclusionTreeSizeMismatch) and the root
    ///   its audit path implies the anchored root (InclusionRootMismatch), as the SDK's verify_package checks them.
    function verifyEvidence(uint64 height, AnchorProof calldata proof, Inclusion calldata inclusion)
        external
        view
        returns (Evidence memory)
    {
        Checkpoint storage c = _checkpoints[height];
        if (c.blockHash == bytes32(0)) revert NoCheckpoint(height);
        Anchor memory a = _anchor(
            height, c.blockHash, c.receiptsRoot, proof.transactionIndex, proof.receiptProof, proof.source,
            proof.sequence
        );
        return _evidence(a, inclusion);
    }

    /// @notice As `verifyEvidence`, under a certified header given with its certificate instead of a stored checkpoint.
    function verifyEvidenceInHeader(
        bytes calldata header,
        Certificate calldata certificate,
        AnchorProof calldata proof,
        Inclusion calldata inclusion
    ) external view returns (Evidence memory) {
        Header memory h = verifyCertifiedHeader(header, certificate);
        Anchor memory a = _anchor(
            h.height, h.blockHash, h.receiptsRoot, proof.transactionIndex, proof.receiptProof, proof.source,
            proof.sequence
        );
        return _evidence(a, inclusion);
    }

    /// @notice The root an RFC 9162 inclusion proof implies for the leaf hash `leafHash` at `leafIndex` in a tree of
    ///   `treeSize` leaves (SM3, as verifyEvidence computes it); reverts InclusionProofInvalid / InclusionProofLength.
    function inclusionRoot(bytes32 leafHash, uint64 leafIndex, uint64 treeSize, bytes32[] calldata path)
        external
        view
        returns (bytes32)
    {
        return InclusionProof.rootOf(leafHash, leafIndex, treeSize, path);
    }

    /// @notice The RFC 9162 leaf hash SM3(0x00 || leaf) of a record's leaf data (the SDK's evidence.leaf_data: the
    ///   author's key and ID and the signed statement), for a contract that holds the record itself.
    function recordLeafHash(bytes calldata leaf) external view returns (bytes32) {
        if (leaf.length > MAX_LEAF_SIZE) revert LeafTooLarge(leaf.length);
        return InclusionProof.leafHash(leaf);
    }

    /// @notice The validator-set hash as validators.py's ValidatorSet.hash computes it.
    function validatorSetHash(Validator[] memory set) public view returns (bytes32) {
        uint256 n = set.length;
        bytes memory encoded = new bytes(30 + 104 * n);
        bytes26 domain = VALIDATOR_SET_DOMAIN;
        assembly ("memory-safe") {
            let p := add(encoded, 32)
            mstore(p, domain)
            mstore8(add(p, 26), shr(24, n))
            mstore8(add(p, 27), shr(16, n))
            mstore8(add(p, 28), shr(8, n))
            mstore8(add(p, 29), n)
        }
        for (uint256 i; i < n; i++) {
            Validator memory v = set[i];
            bytes32 x = v.x;
            bytes32 y = v.y;
            bytes32 consensusKey = v.consensusKey;
            bytes8 power = bytes8(v.power);
            uint256 offset = 30 + 104 * i;
            assembly ("memory-safe") {
                let p := add(add(encoded, 32), offset)
                mstore(p, x)
                mstore(add(p, 32), y)
                mstore(add(p, 64), consensusKey)
                // the last 8 bytes, written byte-wise so nothing beyond the array is touched
                for { let k := 0 } lt(k, 8) { k := add(k, 1) } { mstore8(add(p, add(96, k)), byte(k, power)) }
            }
        }
        return GmCrypto.sm3(encoded);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Updates (anyone may submit: the proofs, not the sender, are trusted)

    /// @notice Keeps (block hash, state root, receipts root, time) of a certified header. Idempotent: the same
    ///   header again changes nothing; another certified header at a stored height reverts (ConflictingCheckpoint).
    function storeCheckpoint(bytes calldata header, Certificate calldata certificate)
        external
        returns (Header memory h)
    {
        h = verifyCertifiedHeader(header, certificate);
        Checkpoint storage stored = _checkpoints[h.height];
        if (stored.blockHash == h.blockHash) return h;
        if (stored.blockHash != bytes32(0)) revert ConflictingCheckpoint(h.height, stored.blockHash, h.blockHash);
        _checkpoints[h.height] = Checkpoint(h.blockHash, h.stateRoot, h.receiptsRoot, h.timestamp);
        _followed(h.height);
        emit CheckpointStored(h.height, h.blockHash, h.stateRoot, h.receiptsRoot, h.timestamp);
    }

    /// @notice Follows the validator-set change made by block `header` (height h): the header must be certified by
    ///   the set of h and commit to that set and `newSet`, which certifies the blocks from h + 2 on. Changes are
    ///   accepted in ascending height only, and only once header h - 1 is proven (the change of block h - 1 was
    ///   followed, or a checkpoint of h - 1 is stored), which pins set(h + 1): so no change is ever skipped, even
    ///   one of the block just before. A skipped change fails a header commitment.
    function submitValidatorSetChange(
        bytes calldata header,
        Certificate calldata certificate,
        Validator[] calldata newSet
    ) external returns (Header memory h) {
        h = decodeHeader(header);
        if (h.height <= lastChangeHeight) revert ChangeOutOfOrder(h.height, lastChangeHeight);
        if (h.height == 0) revert MalformedHeader("the genesis block makes no validator change");
        if (h.height > 1 && lastChangeHeight != h.height - 1 && _checkpoints[h.height - 1].blockHash == bytes32(0)) {
            revert PreviousHeaderNotProven(h.height - 1);
        }
        if (certificate.blockHash != h.blockHash || certificate.height != h.height) {
            revert CertificateForAnotherBlock(certificate.height, certificate.blockHash, h.height, h.blockHash);
        }
        uint256 epoch = _epochAt(h.height);
        _verifyCertificate(certificate, epoch);
        Validator[] memory set = newSet;
        bytes32 newHash = _checkSet(set);
        bytes32 expected = _headerCommitment(_epochs[epoch].setHash, newHash);
        if (h.extraData != expected) revert HeaderCommitmentMismatch(h.height, h.extraData, expected);
        lastChangeHeight = h.height;
        _followed(h.height);
        if (newHash != _epochs[_epochs.length - 1].setHash) {
            _pushEpoch(h.height + 2, h.height, set);
        }
    }

    /// @notice The recovery path, for the target chain's Governance alone: the source chain was re-founded (its
    ///   validators lost quorum or keys) and governance decided, out of band, the set that certifies its blocks
    ///   from `fromHeight` on. Heights already followed are never rewritten.
    function recover(uint64 fromHeight, Validator[] calldata set) external {
        if (msg.sender != recoveryAuthority || recoveryAuthority == address(0)) {
            revert NotRecoveryAuthority(msg.sender);
        }
        uint64 minimum = followedHeight + 3;
        if (_epochs[_epochs.length - 1].fromHeight >= minimum) minimum = _epochs[_epochs.length - 1].fromHeight + 1;
        if (fromHeight < minimum) revert RecoveryHeightTooLow(fromHeight, minimum);
        _pushEpoch(fromHeight, 0, set);
        lastChangeHeight = fromHeight - 1;
        Epoch storage e = _epochs[_epochs.length - 1];
        emit Recovered(fromHeight, e.setHash, set.length, e.totalPower);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Internals

    function _anchor(
        uint64 height,
        bytes32 blockHash,
        bytes32 receiptsRoot,
        uint256 transactionIndex,
        bytes[] calldata receiptProof,
        bytes32 source,
        uint64 sequence
    ) private view returns (Anchor memory) {
        bytes calldata receipt = MptProof.value(receiptsRoot, MptProof.indexKey(transactionIndex), receiptProof);
        AnchorReceipt.Anchored memory a = AnchorReceipt.find(receipt, sourceRegistry, source, sequence);
        return Anchor(a.orgId, source, sequence, a.root, a.treeSize, height, blockHash);
    }

    function _evidence(Anchor memory a, Inclusion calldata inclusion) private view returns (Evidence memory) {
        if (inclusion.treeSize != a.treeSize) revert InclusionTreeSizeMismatch(inclusion.treeSize, a.treeSize);
        bytes32 root =
            InclusionProof.rootOf(inclusion.leafHash, inclusion.leafIndex, inclusion.treeSize, inclusion.path);
        if (root != a.root) revert InclusionRootMismatch(root, a.root);
        return Evidence(a, inclusion.leafIndex, inclusion.leafHash);
    }

    function _followed(uint64 height) private {
        if (height > followedHeight) followedHeight = height;
    }

    function _verifyCertificate(Certificate calldata certificate, uint256 epoch) private view {
        if (certificate.chainIdentity != chainIdentity || certificate.chainId != sourceChainId) {
            revert CertificateForAnotherChain(certificate.chainIdentity, certificate.chainId);
        }
        Member[] storage members = _members[epoch];
        uint256 n = members.length;
        uint256[] memory seen = new uint256[]((n + 255) / 256);
        uint256 signed;
        for (uint256 i; i < certificate.signatures.length; i++) {
            Precommit calldata sig = certificate.signatures[i];
            uint256 index = sig.validatorIndex;
            if (index >= n) revert UnknownSigner(index, n);
            uint256 bit = 1 << (index & 255);
            if (seen[index >> 8] & bit != 0) revert DuplicateSigner(index);
            seen[index >> 8] |= bit;
            signed += _verifyPrecommit(certificate, sig, members[index]);
        }
        uint256 total = _epochs[epoch].totalPower;
        if (3 * signed <= 2 * total) revert InsufficientPower(signed, total);
    }

    /// @dev Checks one precommit signature (reverts InvalidSignature) and returns the signer's power.
    function _verifyPrecommit(Certificate calldata certificate, Precommit calldata sig, Member storage v)
        private
        view
        returns (uint256)
    {
        bytes32 message = GmCrypto.sm3(
            abi.encodePacked(
                PRECOMMIT_DOMAIN, chainIdentity, sourceChainId, certificate.height, certificate.round,
                certificate.blockHash, sig.timestampMs
            )
        );
        (bool ok,) = GmCrypto.sm2Verify(message, abi.encodePacked(v.x, v.y), sig.r, sig.s);
        if (!ok) revert InvalidSignature(sig.validatorIndex);
        return v.power;
    }

    function _headerCommitment(bytes32 current, bytes32 afterNext) private view returns (bytes32) {
        return GmCrypto.sm3(abi.encodePacked(HEADER_COMMITMENT_DOMAIN, current, afterNext));
    }

    /// @dev Index of the epoch that certifies `height`: the last one whose fromHeight <= height.
    function _epochAt(uint64 height) private view returns (uint256) {
        uint256 lo;
        uint256 hi = _epochs.length; // invariant: _epochs[lo].fromHeight <= height, answer in [lo, hi)
        while (hi - lo > 1) {
            uint256 mid = (lo + hi) / 2;
            if (_epochs[mid].fromHeight <= height) lo = mid;
            else hi = mid;
        }
        return lo;
    }

    /// @dev Checks a set as validators.py's ValidatorSet does and returns its hash.
    function _checkSet(Validator[] memory set) private view returns (bytes32) {
        uint256 n = set.length;
        if (n == 0 || n > MAX_VALIDATORS) revert InvalidValidatorSet("a set needs 1 .. 1024 validators");
        for (uint256 i; i < n; i++) {
            Validator memory v = set[i];
            if (v.power == 0 || v.power > MAX_POWER) revert InvalidValidatorSet("power must be 1 .. 2^40");
            if (v.consensusKey == bytes32(0)) revert InvalidValidatorSet("a consensus key is zero");
            for (uint256 j; j < i; j++) {
                if (set[j].x == v.x && set[j].y == v.y) revert InvalidValidatorSet("an SM2 key is listed twice");
                if (set[j].consensusKey == v.consensusKey) {
                    revert InvalidValidatorSet("a consensus key is listed twice");
                }
            }
        }
        return validatorSetHash(set);
    }

    function _pushEpoch(uint64 fromHeight, uint64 changeHeight, Validator[] memory set) private {
        bytes32 setHash = _checkSet(set);
        uint256 total;
        Member[] storage members = _members[_epochs.length];
        for (uint256 i; i < set.length; i++) {
            members.push(Member(set[i].x, set[i].y, set[i].power));
            total += set[i].power;
        }
        _epochs.push(Epoch(fromHeight, changeHeight, uint128(total), setHash));
        if (changeHeight != 0 || fromHeight == 0) {
            emit ValidatorSetChanged(changeHeight, fromHeight, setHash, set.length, total);
        }
    }

    function _precompileAnswers() private view returns (bool) {
        if (!GmCrypto.available()) return false;
        (bool ok,) = GmCrypto.sm2Verify(GmCrypto.SM3_ABC, abi.encodePacked(PROBE_X, PROBE_Y), PROBE_R, PROBE_S);
        return ok;
    }
}
