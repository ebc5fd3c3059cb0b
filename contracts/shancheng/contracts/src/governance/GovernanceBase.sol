// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title GovernanceBase — Governance's types, storage, events and the membership checks every part shares.
/// @notice The storage layout is frozen where offline verifiers read it (slot 2 `_orgs`, slot 4 `_staff`:
///   sdk/shancheng/sdk/evidence/governance.py); new state is appended at the end only.
abstract contract GovernanceBase {
    // ---------------------------------------------------------------- constants
    uint256 public constant VOTING_PERIOD = 7 days;
    uint256 public constant VALIDATOR_CHANGE_DELAY = 2;
    uint64 public constant MAX_VALIDATOR_POWER = 2 ** 40;
    /// @notice At most this many accounts per organisation (every loop over an org's accounts is bounded).
    uint256 public constant MAX_ACCOUNTS = 32;
    bytes32 public constant POP_TAG = keccak256("shancheng.governance.org-key-possession.v2");
    bytes32 public constant STAFF_POP_TAG = keccak256("shancheng.governance.staff-key-possession.v1");
    bytes32 public constant ACCOUNT_CONSENT_TAG = keccak256("shancheng.governance.account-consent.v1");
    bytes32 public constant ACCOUNT_CHANGE_TAG = keccak256("shancheng.governance.account-change.v1");
    bytes32 public constant KEY_ROTATION_TAG = keccak256("shancheng.governance.org-key-rotation.v1");

    /// @dev secp256k1n / 2: a consent signature with a larger s is a malleated copy and is refused
    uint256 private constant _HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    enum Kind {
        None,
        AdmitOrg,
        SuspendOrg,
        ReinstateOrg,
        ChangeRoles,
        AddValidator,
        RemoveValidator,
        AllowPeer,
        RemovePeer,
        ReplaceAccounts,
        RotateOrgKey
    }

    enum Status {
        None,
        Open,
        Executed,
        Rejected
    }

    struct Org {
        string name;
        uint256 roles;
        bytes publicKey;
        bool active;
        address[] accounts;
    }

    struct Staff {
        uint64 orgId;
        uint256 roles;
        bool active;
        bytes publicKey;
    }

    struct Proposal {
        Kind kind;
        Status status;
        uint64 proposerOrg;
        uint64 deadline;
        uint32 yes;
        uint32 no;
        bytes payload;
    }

    struct ValidatorInfo {
        bytes32 consensusKey;
        uint64 power;
        bytes20 nodeId; // the validator's CometBFT node id (0: not bound, only for a genesis without an allow-list)
    }

    // ---------------------------------------------------------------- state (order frozen, append only)
    uint64 public orgCount;
    uint64 public activeOrgCount;
    uint256 public proposalCount;

    mapping(uint64 => Org) internal _orgs;
    mapping(address => uint64) internal _accountOrg;
    mapping(address => Staff) internal _staff;
    mapping(uint256 => Proposal) internal _proposals;
    mapping(uint256 => mapping(uint64 => uint8)) internal _ballots; // 0 none, 1 yes, 2 no

    bytes[] internal _validators;
    mapping(bytes32 => uint256) internal _validatorIndex; // keccak256(key) => index + 1

    uint256 private _retiredPermissions; // slot 9: the removed, never-read contract permissions

    mapping(bytes32 => uint64) internal _keyOwner; // keccak256(org or staff key) => orgId, kept after a rotation
    mapping(bytes32 => ValidatorInfo) internal _validatorInfo; // keccak256(node key) => consensus key, power
    mapping(bytes32 => bytes32) internal _consensusKeyOwner; // consensus key => keccak256(node key), kept on removal
    mapping(bytes20 => bool) internal _peers; // CometBFT node ids allowed to connect
    uint256 public peerCount;
    /// @notice How many times an account has joined an organisation; its consents and the org key's account
    ///   changes are signed over it, so none is valid twice.
    mapping(address => uint256) public accountNonce;
    mapping(address => uint256) internal _reservedBy; // account => the proposal naming it (admission, replacement)
    mapping(bytes20 => uint256) internal _validatorNodes; // CometBFT node id => how many current validators run on it

    // ---------------------------------------------------------------- events
    event OrgAdmitted(uint64 indexed orgId, string name, uint256 roles, bytes publicKey, address[] accounts);
    event OrgSuspended(uint64 indexed orgId);
    event OrgReinstated(uint64 indexed orgId);
    event OrgRolesChanged(uint64 indexed orgId, uint256 roles);
    event OrgKeyRotated(uint64 indexed orgId, bytes publicKey);
    event AccountAdded(uint64 indexed orgId, address indexed account);
    event AccountRemoved(uint64 indexed orgId, address indexed account);
    event StaffRegistered(address indexed staff, uint64 indexed orgId, uint256 roles, bytes publicKey);
    event StaffRolesChanged(address indexed staff, uint256 roles);
    event StaffDeactivated(address indexed staff);
    event ValidatorAdded(bytes nodeKey, bytes32 consensusKey, uint64 power, uint256 effectiveHeight);
    event ValidatorRemoved(bytes nodeKey, bytes32 consensusKey, uint256 effectiveHeight);
    event PeerAllowed(bytes20 indexed nodeId);
    event PeerRemoved(bytes20 indexed nodeId);
    event ProposalCreated(
        uint256 indexed id, Kind kind, uint64 indexed proposerOrg, uint64 deadline, bytes payload, bytes32 r, bytes32 s
    );
    event Voted(uint256 indexed id, uint64 indexed orgId, bool support);
    event ProposalExecuted(uint256 indexed id);
    event ProposalRejected(uint256 indexed id);

    // ---------------------------------------------------------------- membership checks
    function _memberOrg(address account) internal view returns (uint64 orgId) {
        orgId = _accountOrg[account];
        require(orgId != 0, "Gov: not a member account");
        require(_orgs[orgId].active, "Gov: org not active");
    }

    function _checkKnownOrg(uint64 orgId) internal view {
        require(orgId != 0 && orgId <= orgCount, "Gov: unknown org");
    }

    /// @notice True while proposal `id` can still execute (open and before its deadline).
    function _live(uint256 id) internal view returns (bool) {
        Proposal storage p = _proposals[id];
        return p.status == Status.Open && block.timestamp <= p.deadline;
    }

    /// @dev `accounts` may join: non-zero, distinct, at most MAX_ACCOUNTS, in no org, and named in no live
    ///   proposal other than `proposalId` (0: none is exempt).
    function _checkFreeAccounts(address[] memory accounts, uint256 proposalId) internal view {
        require(accounts.length != 0, "Gov: no accounts");
        require(accounts.length <= MAX_ACCOUNTS, "Gov: too many accounts");
        for (uint256 i = 0; i < accounts.length; i++) {
            _checkFreeAccount(accounts[i], proposalId);
            for (uint256 j = 0; j < i; j++) {
                require(accounts[j] != accounts[i], "Gov: duplicate account");
            }
        }
    }

    function _checkFreeAccount(address account, uint256 proposalId) internal view {
        require(account != address(0), "Gov: zero account");
        require(_accountOrg[account] == 0, "Gov: account already registered");
        uint256 reserving = _reservedBy[account];
        require(reserving == 0 || reserving == proposalId || !_live(reserving), "Gov: account reserved");
    }

    /// @notice The digest an account signs (EIP-191 personal message of these 32 bytes, secp256k1) to consent
    ///   to join the organisation whose SM2 key is `orgKey`: it binds this chain and contract, the organisation,
    ///   the account and the account's join count.
    function accountConsentDigest(bytes memory orgKey, address account) public view returns (bytes32) {
        return keccak256(
            abi.encode(ACCOUNT_CONSENT_TAG, block.chainid, address(this), keccak256(orgKey), account, accountNonce[account])
        );
    }

    /// @dev `consent` is the account's 65-byte signature (r ‖ s ‖ v) over accountConsentDigest(orgKey, account)
    function _checkConsent(bytes memory orgKey, address account, bytes memory consent) internal view {
        require(consent.length == 65, "Gov: bad account consent");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(consent, 32))
            s := mload(add(consent, 64))
            v := byte(0, mload(add(consent, 96)))
        }
        require(uint256(s) <= _HALF_N && (v == 27 || v == 28), "Gov: bad account consent");
        bytes32 digest = keccak256(
            abi.encodePacked("\x19Ethereum Signed Message:\n32", accountConsentDigest(orgKey, account))
        );
        address signer = ecrecover(digest, v, r, s);
        require(signer != address(0) && signer == account, "Gov: bad account consent");
    }

    function _checkConsents(bytes memory orgKey, address[] memory accounts, bytes[] memory consents) internal view {
        require(consents.length == accounts.length, "Gov: one consent per account");
        for (uint256 i = 0; i < accounts.length; i++) {
            _checkConsent(orgKey, accounts[i], consents[i]);
        }
    }

    function _reserve(address[] memory accounts, uint256 proposalId) internal {
        for (uint256 i = 0; i < accounts.length; i++) {
            _reservedBy[accounts[i]] = proposalId;
        }
    }

    /// @dev makes `account` an account of `orgId` (checked by the caller); AccountAdded is the caller's to emit
    function _joinAccount(uint64 orgId, address account) internal {
        _accountOrg[account] = orgId;
        _orgs[orgId].accounts.push(account);
        accountNonce[account] += 1;
        delete _reservedBy[account];
    }
}
