// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "./interfaces/IGovernance.sol";
import {GmCrypto} from "./lib/GmCrypto.sol";

/// @title EvidenceRegistry — single and batch anchors of SM3 commitments (存证), append-only.
/// @notice Covers the ChainMaker CMEVI evidence interface in Solidity naming: `evidence`, `evidenceBatch`,
///   `existsOfHash`, `existsOfId`, `findByHash`, `findById` (ids and hashes are bytes32; a string id is
///   mapped to bytes32 by the SDK).
///
///   Records live in their organisation's namespace: a record is keyed by (orgId, id), orgId being the sending
///   organisation, so no organisation can take, block or answer for another's id. The same commitment may be
///   anchored by several organisations (each once): `findByHash` returns one record per organisation that
///   anchored it, in the order they first did, so proof of existence never names a front-runner as the only
///   owner. The revocation kind is reserved: only `revoke` writes a record of that kind.
///
///   Single anchors are signed by their author, an active staff member of the sending organisation:
///     M = SM3(abi.encode(EVIDENCE_TAG, chainid, this, id, commitment, kind))
///   supersede and revoke add a new record that points at the old one (the old record is never changed,
///   only linked to its successor):
///     M = SM3(abi.encode(SUPERSEDE_TAG, chainid, this, oldId, newId, commitment, kind))
///     M = SM3(abi.encode(REVOKE_TAG, chainid, this, oldId, revocationId, reasonCommitment))
///   Batch anchors are signed checkpoints of a source's RFC 9162 log, signed with the organisation's key:
///     M = SM3(abi.encode(CHECKPOINT_TAG, chainid, this, sourceId, sequence, treeSize, root, prevRoot))
///   A source is one log of one organisation: the caller passes originHash = keccak256(bytes(origin)) of the
///   checkpoint's C2SP origin line and the registry derives
///     sourceId = keccak256(abi.encode(SOURCE_TAG, orgId, originHash))
///   from the sending organisation, so no organisation can anchor into (or squat) another's source.
///   Per source: sequence starts at 1 and increases by exactly 1, prevRoot equals the previous root
///   (zero for the first) and the tree grows.
///   Where the GM precompile exists the signatures are verified; elsewhere they are only logged.
contract EvidenceRegistry {
    bytes32 public constant EVIDENCE_TAG = keccak256("shancheng.evidence.anchor.v1");
    bytes32 public constant SUPERSEDE_TAG = keccak256("shancheng.evidence.supersede.v1");
    bytes32 public constant REVOKE_TAG = keccak256("shancheng.evidence.revoke.v1");
    bytes32 public constant CHECKPOINT_TAG = keccak256("shancheng.evidence.checkpoint.v1");
    bytes32 public constant REVOCATION_KIND = keccak256("shancheng.evidence.revocation");
    bytes32 public constant SOURCE_TAG = keccak256("shancheng.evidence.source.v1");

    enum Status {
        None,
        Active,
        Superseded,
        Revoked
    }

    /// @notice A stored record, as returned by findById / findByHash.
    struct Record {
        bytes32 id;
        bytes32 commitment;
        bytes32 kind;
        address author;
        uint64 orgId;
        Status status;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 replaces; // the record this one supersedes or revokes (0 for none)
        bytes32 successor; // the record that superseded or revoked this one (0 for none)
        string metadata;
    }

    /// @notice One item of evidenceBatch.
    struct EvidenceInput {
        bytes32 id;
        bytes32 commitment;
        bytes32 kind;
        string metadata;
        address author;
        bytes32 r;
        bytes32 s;
    }

    struct Source {
        uint64 orgId;
        uint64 sequence;
        uint64 treeSize;
    }

    /// @dev the organisations that anchored a commitment: the first inline (one slot for the common case),
    ///   the later ones in _laterOwners[commitment][1 .. count - 1]
    struct Owners {
        uint64 count;
        uint64 first;
    }

    struct BatchAnchor {
        bytes32 root;
        uint64 treeSize;
        uint64 orgId;
        uint64 blockNumber;
        uint64 timestamp;
    }

    IGovernance public immutable governance;

    mapping(uint64 => mapping(bytes32 => Record)) private _records; // org => id => record
    mapping(bytes32 => mapping(uint64 => bytes32)) private _idOfCommitment; // commitment => org => id
    mapping(bytes32 => Owners) private _owners; // commitment => who anchored it, in first-anchor order
    mapping(bytes32 => mapping(uint256 => uint64)) private _laterOwners;
    mapping(bytes32 => Source) private _sources;
    mapping(bytes32 => mapping(uint64 => BatchAnchor)) private _anchors;
    uint256 public recordCount;

    event EvidenceAnchored(
        bytes32 indexed id,
        bytes32 indexed commitment,
        bytes32 kind,
        address indexed author,
        uint64 orgId,
        bytes32 replaces,
        string metadata,
        bytes32 r,
        bytes32 s
    );
    event EvidenceSuperseded(uint64 indexed orgId, bytes32 indexed oldId, bytes32 indexed newId);
    event EvidenceRevoked(uint64 indexed orgId, bytes32 indexed id, bytes32 indexed revocationId);
    event BatchAnchored(
        bytes32 indexed sourceId,
        uint64 indexed sequence,
        bytes32 root,
        uint64 treeSize,
        bytes32 prevRoot,
        uint64 orgId,
        bytes32 r,
        bytes32 s
    );

    constructor(address governance_) {
        require(governance_ != address(0), "Evidence: zero governance");
        governance = IGovernance(governance_);
    }

    // ------------------------------------------------------------------ CMEVI
    function evidence(
        bytes32 id,
        bytes32 commitment,
        bytes32 kind,
        string calldata metadata,
        address author,
        bytes32 r,
        bytes32 s
    ) external {
        uint64 orgId = _senderOrg();
        bool gm = GmCrypto.available();
        _anchor(orgId, gm, id, commitment, kind, metadata, author, r, s);
    }

    function evidenceBatch(EvidenceInput[] calldata items) external {
        require(items.length != 0, "Evidence: empty batch");
        uint64 orgId = _senderOrg();
        bool gm = GmCrypto.available();
        for (uint256 i = 0; i < items.length; i++) {
            EvidenceInput calldata e = items[i];
            _anchor(orgId, gm, e.id, e.commitment, e.kind, e.metadata, e.author, e.r, e.s);
        }
    }

    /// @notice True when any organisation anchored `commitment`.
    function existsOfHash(bytes32 commitment) external view returns (bool) {
        return _owners[commitment].count != 0;
    }

    /// @notice True when organisation `orgId` holds a record `id`.
    function existsOfId(uint64 orgId, bytes32 id) external view returns (bool) {
        return _records[orgId][id].status != Status.None;
    }

    /// @notice Record `id` of organisation `orgId`.
    function findById(uint64 orgId, bytes32 id) public view returns (Record memory) {
        Record memory rec = _records[orgId][id];
        require(rec.status != Status.None, "Evidence: unknown id");
        rec.id = id; // the key, not stored twice
        return rec;
    }

    /// @notice Every organisation's record of `commitment` (one per organisation), in the order the
    ///   organisations first anchored it.
    function findByHash(bytes32 commitment) external view returns (Record[] memory records) {
        uint64[] memory owners = ownersOfHash(commitment);
        require(owners.length != 0, "Evidence: unknown hash");
        records = new Record[](owners.length);
        for (uint256 i = 0; i < owners.length; i++) {
            records[i] = findById(owners[i], _idOfCommitment[commitment][owners[i]]);
        }
    }

    /// @notice Organisation `orgId`'s record of `commitment`.
    function findByHashOf(uint64 orgId, bytes32 commitment) external view returns (Record memory) {
        bytes32 id = _idOfCommitment[commitment][orgId];
        require(id != 0, "Evidence: unknown hash");
        return findById(orgId, id);
    }

    /// @notice The organisations that anchored `commitment`, in the order they first did (empty if none).
    function ownersOfHash(bytes32 commitment) public view returns (uint64[] memory owners) {
        Owners memory o = _owners[commitment];
        owners = new uint64[](o.count);
        if (o.count != 0) {
            owners[0] = o.first;
        }
        for (uint256 i = 1; i < o.count; i++) {
            owners[i] = _laterOwners[commitment][i];
        }
    }

    // ------------------------------------------------------------------ supersede / revoke
    /// @notice Supersede the sender organisation's record `oldId` by the new record `next` (the old record
    ///   stays, linked).
    function supersede(bytes32 oldId, EvidenceInput calldata next) external {
        uint64 orgId = _senderOrg();
        Record storage old = _replaceable(orgId, oldId);
        _checkNew(orgId, next.id, next.commitment, next.kind);
        _checkAuthor(
            GmCrypto.available(),
            orgId,
            next.author,
            abi.encode(SUPERSEDE_TAG, block.chainid, address(this), oldId, next.id, next.commitment, next.kind),
            next.r,
            next.s
        );
        old.status = Status.Superseded;
        old.successor = next.id;
        _store(orgId, next.id, next.commitment, next.kind, next.metadata, next.author, oldId, next.r, next.s);
        emit EvidenceSuperseded(orgId, oldId, next.id);
    }

    /// @notice Revoke the sender organisation's record `oldId` with a new revocation record carrying the
    ///   commitment of the reason (the only way to write a record of REVOCATION_KIND).
    function revoke(
        bytes32 oldId,
        bytes32 revocationId,
        bytes32 reasonCommitment,
        address author,
        bytes32 r,
        bytes32 s
    ) external {
        uint64 orgId = _senderOrg();
        Record storage old = _replaceable(orgId, oldId);
        _checkNewRecord(orgId, revocationId, reasonCommitment);
        _checkAuthor(
            GmCrypto.available(),
            orgId,
            author,
            abi.encode(REVOKE_TAG, block.chainid, address(this), oldId, revocationId, reasonCommitment),
            r,
            s
        );
        old.status = Status.Revoked;
        old.successor = revocationId;
        _store(orgId, revocationId, reasonCommitment, REVOCATION_KIND, "", author, oldId, r, s);
        emit EvidenceRevoked(orgId, oldId, revocationId);
    }

    // ------------------------------------------------------------------ batch anchors
    /// @notice The source id of the log with origin hash `originHash` (keccak256 of the UTF-8 origin line)
    ///   kept by organisation `orgId`.
    function sourceIdOf(uint64 orgId, bytes32 originHash) public pure returns (bytes32) {
        return keccak256(abi.encode(SOURCE_TAG, orgId, originHash));
    }

    /// @notice Anchor the next checkpoint of the sender organisation's log with origin hash `originHash`
    ///   (keccak256 of the UTF-8 origin line); the checkpoint signature covers sourceIdOf(senderOrg, originHash).
    function anchorBatch(
        bytes32 originHash,
        uint64 sequence,
        bytes32 root,
        uint64 treeSize,
        bytes32 prevRoot,
        bytes32 r,
        bytes32 s
    ) external {
        uint64 orgId = _senderOrg();
        require(originHash != 0, "Evidence: zero origin");
        require(root != 0, "Evidence: zero root");
        bytes32 sourceId = sourceIdOf(orgId, originHash);
        Source storage src = _sources[sourceId];
        if (src.sequence == 0) {
            require(sequence == 1, "Evidence: first sequence must be 1");
        } else {
            require(sequence > src.sequence, "Evidence: sequence replay");
            require(sequence == src.sequence + 1, "Evidence: sequence gap");
        }
        require(
            prevRoot == (src.sequence == 0 ? bytes32(0) : _anchors[sourceId][src.sequence].root),
            "Evidence: previous root mismatch"
        );
        require(treeSize > src.treeSize, "Evidence: tree must grow");
        if (GmCrypto.available()) {
            bytes32 m = _checkpointMessage(sourceId, sequence, treeSize, root, prevRoot);
            (bool ok,) = GmCrypto.sm2Verify(m, governance.orgPublicKey(orgId), r, s);
            require(ok, "Evidence: bad checkpoint signature");
        }
        src.orgId = orgId;
        src.sequence = sequence;
        src.treeSize = treeSize;
        _anchors[sourceId][sequence] = BatchAnchor({
            root: root,
            treeSize: treeSize,
            orgId: orgId,
            blockNumber: uint64(block.number),
            timestamp: uint64(block.timestamp)
        });
        emit BatchAnchored(sourceId, sequence, root, treeSize, prevRoot, orgId, r, s);
    }

    /// @notice The head of a source's log: owner org, last sequence, its tree size and root (zeros if unknown).
    function sourceHead(bytes32 sourceId)
        external
        view
        returns (uint64 orgId, uint64 sequence, uint64 treeSize, bytes32 root)
    {
        Source memory src = _sources[sourceId];
        return (src.orgId, src.sequence, src.treeSize, _anchors[sourceId][src.sequence].root);
    }

    /// @notice The batch anchor (source, sequence); prevRoot is the root of sequence - 1 (zero for 1).
    function batchAnchor(bytes32 sourceId, uint64 sequence)
        external
        view
        returns (bytes32 root, uint64 treeSize, bytes32 prevRoot, uint64 orgId, uint64 blockNumber, uint64 timestamp)
    {
        BatchAnchor memory a = _anchors[sourceId][sequence];
        require(a.root != 0, "Evidence: unknown batch");
        prevRoot = sequence > 1 ? _anchors[sourceId][sequence - 1].root : bytes32(0);
        return (a.root, a.treeSize, prevRoot, a.orgId, a.blockNumber, a.timestamp);
    }

    // ------------------------------------------------------------------ internals
    function _senderOrg() private view returns (uint64 orgId) {
        orgId = governance.orgOfAccount(msg.sender);
        require(orgId != 0, "Evidence: not a member account");
        require(governance.orgActive(orgId), "Evidence: org not active");
    }

    /// @dev M = SM3(abi.encode(CHECKPOINT_TAG, chainid, this, sourceId, sequence, treeSize, root, prevRoot))
    function _checkpointMessage(bytes32 sourceId, uint64 sequence, uint64 treeSize, bytes32 root, bytes32 prevRoot)
        private
        view
        returns (bytes32)
    {
        return GmCrypto.sm3(
            abi.encode(CHECKPOINT_TAG, block.chainid, address(this), sourceId, sequence, treeSize, root, prevRoot)
        );
    }

    function _anchor(
        uint64 orgId,
        bool gm,
        bytes32 id,
        bytes32 commitment,
        bytes32 kind,
        string calldata metadata,
        address author,
        bytes32 r,
        bytes32 s
    ) private {
        _checkNew(orgId, id, commitment, kind);
        _checkAuthor(gm, orgId, author, abi.encode(EVIDENCE_TAG, block.chainid, address(this), id, commitment, kind), r, s);
        _store(orgId, id, commitment, kind, metadata, author, 0, r, s);
    }

    /// @dev a record the sender anchors or supersedes with: never of the reserved revocation kind
    function _checkNew(uint64 orgId, bytes32 id, bytes32 commitment, bytes32 kind) private view {
        require(kind != REVOCATION_KIND, "Evidence: revocation kind is reserved for revoke");
        _checkNewRecord(orgId, id, commitment);
    }

    /// @dev ids and commitments are unique within the organisation's namespace only
    function _checkNewRecord(uint64 orgId, bytes32 id, bytes32 commitment) private view {
        require(id != 0, "Evidence: zero id");
        require(commitment != 0, "Evidence: zero commitment");
        require(_records[orgId][id].status == Status.None, "Evidence: id exists");
        require(_idOfCommitment[commitment][orgId] == 0, "Evidence: commitment exists");
    }

    /// @dev another organisation's ids are not in the sender's namespace: they are unknown here
    function _replaceable(uint64 orgId, bytes32 oldId) private view returns (Record storage old) {
        old = _records[orgId][oldId];
        require(old.status != Status.None, "Evidence: unknown id");
        require(old.status != Status.Superseded, "Evidence: record superseded");
        require(old.status != Status.Revoked, "Evidence: record revoked");
        require(old.kind != REVOCATION_KIND, "Evidence: revocation is final");
    }

    function _checkAuthor(bool gm, uint64 orgId, address author, bytes memory preimage, bytes32 r, bytes32 s)
        private
        view
    {
        (uint64 authorOrg,, bool active, bytes memory key) = governance.staffInfo(author);
        require(authorOrg != 0, "Evidence: unknown author");
        require(authorOrg == orgId, "Evidence: author not in sender's org");
        require(active, "Evidence: author inactive");
        if (gm) {
            (bool ok, address signer) = GmCrypto.sm2Verify(GmCrypto.sm3(preimage), key, r, s);
            require(ok && signer == author, "Evidence: bad author signature");
        }
    }

    function _store(
        uint64 orgId,
        bytes32 id,
        bytes32 commitment,
        bytes32 kind,
        string memory metadata,
        address author,
        bytes32 replaces,
        bytes32 r,
        bytes32 s
    ) private {
        Record storage rec = _records[orgId][id];
        rec.commitment = commitment;
        rec.kind = kind;
        rec.author = author;
        rec.orgId = orgId;
        rec.status = Status.Active;
        rec.blockNumber = uint64(block.number);
        rec.timestamp = uint64(block.timestamp);
        rec.replaces = replaces;
        if (bytes(metadata).length != 0) {
            rec.metadata = metadata;
        }
        _idOfCommitment[commitment][orgId] = id;
        Owners storage owners = _owners[commitment];
        if (owners.count == 0) {
            owners.first = orgId;
        } else {
            _laterOwners[commitment][owners.count] = orgId;
        }
        owners.count += 1;
        recordCount += 1;
        emit EvidenceAnchored(id, commitment, kind, author, orgId, replaces, metadata, r, s);
    }
}
