// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "./interfaces/IGovernance.sol";
import {Roles} from "./lib/Roles.sol";
import {GmCrypto} from "./lib/GmCrypto.sol";
import {Sm2Key} from "./lib/Sm2Key.sol";
import {OrgAccounts} from "./governance/OrgAccounts.sol";

/// @title Governance — consortium membership, staff identities, the validator set and the peer allow-list.
/// @notice Every active member organisation has one vote, cast by any of its accounts. A proposal passes
///   when the yes votes of currently active organisations reach 2/3 of the active organisations
///   (3 * yes >= 2 * active); it is executed by the vote that reaches the threshold (or by `execute` when
///   the electorate shrank), rejected once the no votes of currently active organisations exceed 1/3
///   (3 * no > active, recounted at every no vote), and expires VOTING_PERIOD seconds after it was made.
///   The proposer's vote is cast with the proposal.
///   Validators are identified by their SM2 node key (64 bytes x||y, which signs commit certificates) and carry
///   a CometBFT consensus key (32-byte ed25519 public key, used by one validator only, ever) and a voting power
///   (1 .. MAX_VALIDATOR_POWER). A change executed in block h takes effect at height h + VALIDATOR_CHANGE_DELAY
///   (CometBFT applies the validator updates of block h from h + 2); the ValidatorAdded/ValidatorRemoved events
///   are what the node turns into validator updates.
///   Staff are managed by their own organisation (no vote): the org registers a staff member's SM2 key,
///   address and roles with the staff member's SM2 proof of possession (r, s) over
///   M = SM3(abi.encode(STAFF_POP_TAG, block.chainid, address(this), orgId, staff, roles, publicKey));
///   where the GM precompile exists the contract checks address == SM3(x||y)[12:] and the proof.
///   Organisation admissions carry an SM2 proof of possession (r, s) over
///   M = SM3(abi.encode(POP_TAG, block.chainid, address(this), name, roles, publicKey, accounts)); it is
///   verified on chain where the GM precompile exists and recorded in the ProposalCreated event otherwise.
///   Every account joins by its own act: an admission or an account replacement carries each account's consent
///   (a secp256k1 signature over accountConsentDigest), and the accounts it names are reserved while it is
///   open. The consortium recovers an organisation by vote: it replaces the organisation's accounts, or rotates
///   its key with the new key's proof of possession over M = SM3(keyRotationPreimage(orgId, publicKey)).
///   Which acts need the org key rather than any account: see OrgAccounts.
///   A key belongs to one organisation: an org key or staff key already registered (as any org's key or
///   any staff member's key) is refused.
///   The peer allow-list holds the CometBFT node ids (20 bytes: the first 20 bytes of SHA-256 of the node's
///   ed25519 p2p key) of every node, validator or observer, that the nodes let connect; it changes by vote.
///   Each validator is bound to the node id it runs on, which is on the allow-list for as long as it is a
///   validator: adding the validator allows its node, removing that peer is refused (a vote cannot split the
///   network). Only a genesis without an allow-list (a network that does not filter peers) has unbound validators.
contract Governance is IGovernance, OrgAccounts {
    /// @dev a founding member in the genesis bootstrap
    struct GenesisOrg {
        string name;
        uint256 roles;
        bytes publicKey;
        address[] accounts;
    }

    /// @dev a genesis validator: SM2 node key (64 bytes x||y), ed25519 consensus key, voting power, CometBFT node
    ///   id (may be 0 only in a genesis without a peer allow-list)
    struct GenesisValidator {
        bytes nodeKey;
        bytes32 consensusKey;
        uint64 power;
        bytes20 nodeId;
    }

    // ---------------------------------------------------------------- genesis
    /// @dev founding accounts are the operators' configuration: they join without a consent signature
    constructor(GenesisOrg[] memory founders, GenesisValidator[] memory genesisValidators, bytes20[] memory peers) {
        require(founders.length > 0, "Gov: no founding members");
        require(genesisValidators.length > 0, "Gov: no validators");
        for (uint256 i = 0; i < founders.length; i++) {
            GenesisOrg memory f = founders[i];
            _checkNewOrg(f.name, f.roles, f.publicKey, f.accounts, 0);
            _admit(f.name, f.roles, f.publicKey, f.accounts);
        }
        for (uint256 i = 0; i < peers.length; i++) {
            _checkAllowPeer(peers[i]);
            _allowPeer(peers[i]);
        }
        for (uint256 i = 0; i < genesisValidators.length; i++) {
            GenesisValidator memory v = genesisValidators[i];
            _checkNewValidator(v.nodeKey, v.consensusKey, v.power);
            if (v.nodeId != bytes20(0) || peers.length != 0) {
                _checkValidatorNode(v.nodeId);
            }
            _addValidator(v.nodeKey, v.consensusKey, v.power, v.nodeId, block.number);
        }
    }

    // ---------------------------------------------------------------- IGovernance views
    function isAccountAllowed(address account) external view returns (bool) {
        uint64 id = _accountOrg[account];
        return id != 0 && _orgs[id].active;
    }

    function orgOfAccount(address account) external view returns (uint64) {
        return _accountOrg[account];
    }

    function orgActive(uint64 orgId) public view returns (bool) {
        return _orgs[orgId].active;
    }

    function orgRoles(uint64 orgId) external view returns (uint256) {
        return _orgs[orgId].roles;
    }

    function orgPublicKey(uint64 orgId) external view returns (bytes memory) {
        return _orgs[orgId].publicKey;
    }

    function staffInfo(address staff)
        external
        view
        returns (uint64 orgId, uint256 roleMask, bool active, bytes memory publicKey)
    {
        Staff storage s = _staff[staff];
        return (s.orgId, s.roles, s.active && _orgs[s.orgId].active, s.publicKey);
    }

    // ---------------------------------------------------------------- further views
    function orgName(uint64 orgId) external view returns (string memory) {
        return _orgs[orgId].name;
    }

    function orgAccounts(uint64 orgId) external view returns (address[] memory) {
        return _orgs[orgId].accounts;
    }

    /// @notice The open proposal that reserves `account` (an admission or account replacement naming it); 0 if none.
    function accountReservation(address account) external view returns (uint256) {
        uint256 id = _reservedBy[account];
        return id != 0 && _live(id) ? id : 0;
    }

    function validators() external view returns (bytes[] memory) {
        return _validators;
    }

    function isValidator(bytes calldata nodeKey) external view returns (bool) {
        return _validatorIndex[keccak256(nodeKey)] != 0;
    }

    /// @notice A current validator's consensus key and power; (0, 0) for a key that is not a validator.
    function validatorInfo(bytes calldata nodeKey) external view returns (bytes32 consensusKey, uint64 power) {
        bytes32 h = keccak256(nodeKey);
        if (_validatorIndex[h] == 0) {
            return (bytes32(0), 0);
        }
        ValidatorInfo storage info = _validatorInfo[h];
        return (info.consensusKey, info.power);
    }

    /// @notice The CometBFT node id a current validator runs on (0 for a key that is not a validator, or a genesis
    ///   validator of a network without a peer allow-list).
    function validatorNodeId(bytes calldata nodeKey) external view returns (bytes20) {
        bytes32 h = keccak256(nodeKey);
        return _validatorIndex[h] == 0 ? bytes20(0) : _validatorInfo[h].nodeId;
    }

    /// @notice True when the CometBFT node id `nodeId` is on the peer allow-list.
    function isPeerAllowed(bytes20 nodeId) external view returns (bool) {
        return _peers[nodeId];
    }

    function proposal(uint256 id)
        external
        view
        returns (Kind kind, Status status, uint64 proposerOrg, uint64 deadline, uint32 yes, uint32 no, bytes memory payload)
    {
        Proposal storage p = _proposals[id];
        return (p.kind, p.status, p.proposerOrg, p.deadline, p.yes, p.no, p.payload);
    }

    /// @notice 0 = not voted, 1 = yes, 2 = no.
    function ballot(uint256 id, uint64 orgId) external view returns (uint8) {
        return _ballots[id][orgId];
    }

    /// @notice The preimage of the message M = SM3(preimage) an org key's proof of possession signs (SM2,
    ///   default user ID): it binds the admission's name, roles and accounts, this chain and this contract.
    function possessionMessagePreimage(
        string calldata name,
        uint256 roles,
        bytes calldata publicKey,
        address[] calldata accounts
    ) external view returns (bytes memory) {
        return _possessionPreimage(name, roles, publicKey, accounts);
    }

    /// @notice The preimage of the message M = SM3(preimage) the new key signs (SM2, default user ID) to prove
    ///   its possession in a key rotation of organisation `orgId`.
    function keyRotationPreimage(uint64 orgId, bytes calldata publicKey) public view returns (bytes memory) {
        return abi.encode(KEY_ROTATION_TAG, block.chainid, address(this), orgId, publicKey);
    }

    /// @notice The organisation a key (64 bytes x||y) is registered to, as an org key or a staff key; 0 if none.
    ///   A rotated-out org key stays its organisation's: no one can register it again.
    function keyOwner(bytes calldata publicKey) external view returns (uint64) {
        return _keyOwner[keccak256(publicKey)];
    }

    // ---------------------------------------------------------------- proposals
    /// @notice Propose admitting an organisation: (r, s) is the org key's proof of possession; `consents[i]`
    ///   is accounts[i]'s consent (65 bytes r ‖ s ‖ v over accountConsentDigest(publicKey, accounts[i])).
    ///   The accounts are reserved while the proposal is open.
    function proposeAdmitOrg(
        string calldata name,
        uint256 roles,
        bytes calldata publicKey,
        address[] calldata accounts,
        bytes[] calldata consents,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 id) {
        _checkNewOrg(name, roles, publicKey, accounts, 0);
        _checkConsents(publicKey, accounts, consents);
        if (GmCrypto.available()) {
            bytes32 m = GmCrypto.sm3(_possessionPreimage(name, roles, publicKey, accounts));
            (bool ok,) = GmCrypto.sm2Verify(m, publicKey, r, s);
            require(ok, "Gov: bad proof of possession");
        }
        id = _propose(Kind.AdmitOrg, abi.encode(name, roles, publicKey, accounts), r, s);
        _reserve(accounts, id);
    }

    function proposeSuspendOrg(uint64 orgId) external returns (uint256) {
        _checkSuspend(orgId);
        return _propose(Kind.SuspendOrg, abi.encode(orgId), 0, 0);
    }

    function proposeReinstateOrg(uint64 orgId) external returns (uint256) {
        _checkReinstate(orgId);
        return _propose(Kind.ReinstateOrg, abi.encode(orgId), 0, 0);
    }

    function proposeChangeRoles(uint64 orgId, uint256 roles) external returns (uint256) {
        _checkChangeRoles(orgId, roles);
        return _propose(Kind.ChangeRoles, abi.encode(orgId, roles), 0, 0);
    }

    /// @notice Propose replacing every account of organisation `orgId` (active or suspended) by `accounts`, each
    ///   with its consent over accountConsentDigest(the org's key, account): how the consortium recovers an
    ///   organisation whose account leaked. The new accounts are reserved while the proposal is open.
    function proposeReplaceAccounts(uint64 orgId, address[] calldata accounts, bytes[] calldata consents)
        external
        returns (uint256 id)
    {
        _checkKnownOrg(orgId);
        _checkFreeAccounts(accounts, 0);
        _checkConsents(_orgs[orgId].publicKey, accounts, consents);
        id = _propose(Kind.ReplaceAccounts, abi.encode(orgId, accounts), 0, 0);
        _reserve(accounts, id);
    }

    /// @notice Propose rotating organisation `orgId`'s SM2 key to `publicKey` (on the curve, never registered),
    ///   with the new key's proof of possession (r, s) over M = SM3(keyRotationPreimage(orgId, publicKey)):
    ///   verified where the GM precompile exists, recorded in ProposalCreated otherwise.
    function proposeRotateOrgKey(uint64 orgId, bytes calldata publicKey, bytes32 r, bytes32 s)
        external
        returns (uint256)
    {
        _checkRotateKey(orgId, publicKey);
        if (GmCrypto.available()) {
            (bool ok,) = GmCrypto.sm2Verify(GmCrypto.sm3(keyRotationPreimage(orgId, publicKey)), publicKey, r, s);
            require(ok, "Gov: bad proof of possession");
        }
        return _propose(Kind.RotateOrgKey, abi.encode(orgId, publicKey), r, s);
    }

    /// @notice Propose a validator: its SM2 node key (64 bytes x||y), its CometBFT ed25519 consensus key (never
    ///   used by another validator before), its voting power (1 .. MAX_VALIDATOR_POWER) and the CometBFT node id
    ///   it runs on (non-zero, no current validator's): the node joins the peer allow-list with it, if not on it.
    function proposeAddValidator(bytes calldata nodeKey, bytes32 consensusKey, uint64 power, bytes20 nodeId)
        external
        returns (uint256)
    {
        _checkNewValidator(nodeKey, consensusKey, power);
        _checkValidatorNode(nodeId);
        return _propose(Kind.AddValidator, abi.encode(nodeKey, consensusKey, power, nodeId), 0, 0);
    }

    function proposeRemoveValidator(bytes calldata nodeKey) external returns (uint256) {
        _checkRemoveValidator(nodeKey);
        return _propose(Kind.RemoveValidator, abi.encode(nodeKey), 0, 0);
    }

    /// @notice Propose adding the CometBFT node id `nodeId` (non-zero, not yet allowed) to the peer allow-list.
    function proposeAllowPeer(bytes20 nodeId) external returns (uint256) {
        _checkAllowPeer(nodeId);
        return _propose(Kind.AllowPeer, abi.encode(nodeId), 0, 0);
    }

    /// @notice Propose removing the CometBFT node id `nodeId` from the peer allow-list; refused while a current
    ///   validator runs on it (remove the validator first), so no vote can cut a validator off the network.
    function proposeRemovePeer(bytes20 nodeId) external returns (uint256) {
        _checkRemovePeer(nodeId);
        return _propose(Kind.RemovePeer, abi.encode(nodeId), 0, 0);
    }

    function vote(uint256 id, bool support) external {
        uint64 voter = _memberOrg(msg.sender);
        Proposal storage p = _openProposal(id);
        require(_ballots[id][voter] == 0, "Gov: already voted");
        _ballots[id][voter] = support ? 1 : 2;
        emit Voted(id, voter, support);
        if (support) {
            p.yes += 1;
            _tryExecute(id, p);
        } else {
            p.no += 1;
            // the counter may include orgs suspended since they voted; only active orgs' no votes reject
            uint256 active = activeOrgCount;
            if (3 * uint256(p.no) > active && 3 * _activeBallots(id, 2) > active) {
                p.status = Status.Rejected;
                emit ProposalRejected(id);
            }
        }
    }

    /// @notice Execute a proposal that reached the threshold without a new vote (the electorate shrank).
    function execute(uint256 id) external {
        _memberOrg(msg.sender);
        Proposal storage p = _openProposal(id);
        require(_activeBallots(id, 1) * 3 >= 2 * uint256(activeOrgCount), "Gov: threshold not met");
        _execute(id, p);
    }

    // ---------------------------------------------------------------- internals
    function _possessionPreimage(
        string calldata name,
        uint256 roles,
        bytes calldata publicKey,
        address[] calldata accounts
    ) private view returns (bytes memory) {
        return abi.encode(POP_TAG, block.chainid, address(this), name, roles, publicKey, accounts);
    }

    function _openProposal(uint256 id) private view returns (Proposal storage p) {
        p = _proposals[id];
        require(p.status != Status.None, "Gov: unknown proposal");
        require(p.status == Status.Open, "Gov: proposal closed");
        require(block.timestamp <= p.deadline, "Gov: proposal expired");
    }

    function _propose(Kind kind, bytes memory payload, bytes32 r, bytes32 s) private returns (uint256 id) {
        uint64 proposer = _memberOrg(msg.sender);
        id = ++proposalCount;
        Proposal storage p = _proposals[id];
        p.kind = kind;
        p.status = Status.Open;
        p.proposerOrg = proposer;
        p.deadline = uint64(block.timestamp + VOTING_PERIOD);
        p.payload = payload;
        p.yes = 1;
        _ballots[id][proposer] = 1;
        emit ProposalCreated(id, kind, proposer, p.deadline, payload, r, s);
        emit Voted(id, proposer, true);
        if (3 >= 2 * uint256(activeOrgCount)) {
            _tryExecute(id, p);
        }
    }

    /// @dev the ballots `value` (1 yes, 2 no) of proposal `id` cast by organisations active now
    function _activeBallots(uint256 id, uint8 value) private view returns (uint256 count) {
        uint64 n = orgCount;
        for (uint64 orgId = 1; orgId <= n; orgId++) {
            if (_ballots[id][orgId] == value && _orgs[orgId].active) {
                count++;
            }
        }
    }

    function _tryExecute(uint256 id, Proposal storage p) private {
        // the counter may include orgs suspended since they voted; recount before acting
        uint256 active = activeOrgCount;
        if (3 * uint256(p.yes) >= 2 * active && 3 * _activeBallots(id, 1) >= 2 * active) {
            _execute(id, p);
        }
    }

    function _execute(uint256 id, Proposal storage p) private {
        p.status = Status.Executed;
        Kind kind = p.kind;
        bytes memory payload = p.payload;
        if (kind == Kind.AdmitOrg) {
            (string memory name, uint256 roles, bytes memory key, address[] memory accounts) =
                abi.decode(payload, (string, uint256, bytes, address[]));
            _checkNewOrg(name, roles, key, accounts, id);
            _admit(name, roles, key, accounts);
        } else if (kind == Kind.SuspendOrg) {
            uint64 orgId = abi.decode(payload, (uint64));
            _checkSuspend(orgId);
            _orgs[orgId].active = false;
            activeOrgCount -= 1;
            emit OrgSuspended(orgId);
        } else if (kind == Kind.ReinstateOrg) {
            uint64 orgId = abi.decode(payload, (uint64));
            _checkReinstate(orgId);
            _orgs[orgId].active = true;
            activeOrgCount += 1;
            emit OrgReinstated(orgId);
        } else if (kind == Kind.ChangeRoles) {
            (uint64 orgId, uint256 roles) = abi.decode(payload, (uint64, uint256));
            _checkChangeRoles(orgId, roles);
            _orgs[orgId].roles = roles;
            emit OrgRolesChanged(orgId, roles);
        } else if (kind == Kind.AddValidator) {
            (bytes memory key, bytes32 consensusKey, uint64 power, bytes20 nodeId) =
                abi.decode(payload, (bytes, bytes32, uint64, bytes20));
            _checkNewValidator(key, consensusKey, power);
            _checkValidatorNode(nodeId);
            _addValidator(key, consensusKey, power, nodeId, block.number + VALIDATOR_CHANGE_DELAY);
        } else if (kind == Kind.RemoveValidator) {
            bytes memory key = abi.decode(payload, (bytes));
            _checkRemoveValidator(key);
            _removeValidator(key);
        } else if (kind == Kind.AllowPeer) {
            bytes20 nodeId = abi.decode(payload, (bytes20));
            _checkAllowPeer(nodeId);
            _allowPeer(nodeId);
        } else if (kind == Kind.RemovePeer) {
            bytes20 nodeId = abi.decode(payload, (bytes20));
            _checkRemovePeer(nodeId);
            _peers[nodeId] = false;
            peerCount -= 1;
            emit PeerRemoved(nodeId);
        } else if (kind == Kind.ReplaceAccounts) {
            (uint64 orgId, address[] memory accounts) = abi.decode(payload, (uint64, address[]));
            _checkFreeAccounts(accounts, id);
            _replaceAccounts(orgId, accounts);
        } else {
            (uint64 orgId, bytes memory key) = abi.decode(payload, (uint64, bytes));
            _checkRotateKey(orgId, key);
            _keyOwner[keccak256(key)] = orgId; // the old key stays this org's: it can never be registered again
            _orgs[orgId].publicKey = key;
            emit OrgKeyRotated(orgId, key);
        }
        emit ProposalExecuted(id);
    }

    function _checkNewOrg(
        string memory name,
        uint256 roles,
        bytes memory key,
        address[] memory accounts,
        uint256 proposalId
    ) private view {
        require(bytes(name).length != 0, "Gov: empty name");
        require(roles != 0 && roles & ~Roles.ORG_ALL == 0, "Gov: invalid org roles");
        require(Sm2Key.isValid(key), "Gov: invalid SM2 key");
        require(_keyOwner[keccak256(key)] == 0, "Gov: key already registered");
        _checkFreeAccounts(accounts, proposalId);
    }

    function _admit(string memory name, uint256 roles, bytes memory key, address[] memory accounts) private {
        uint64 orgId = ++orgCount;
        Org storage o = _orgs[orgId];
        o.name = name;
        o.roles = roles;
        o.publicKey = key;
        o.active = true;
        _keyOwner[keccak256(key)] = orgId;
        for (uint256 i = 0; i < accounts.length; i++) {
            _joinAccount(orgId, accounts[i]);
        }
        activeOrgCount += 1;
        emit OrgAdmitted(orgId, name, roles, key, accounts);
    }

    function _replaceAccounts(uint64 orgId, address[] memory accounts) private {
        address[] storage old = _orgs[orgId].accounts;
        for (uint256 i = 0; i < old.length; i++) {
            delete _accountOrg[old[i]];
            emit AccountRemoved(orgId, old[i]);
        }
        delete _orgs[orgId].accounts;
        for (uint256 i = 0; i < accounts.length; i++) {
            _joinAccount(orgId, accounts[i]);
            emit AccountAdded(orgId, accounts[i]);
        }
    }

    function _checkSuspend(uint64 orgId) private view {
        _checkKnownOrg(orgId);
        require(_orgs[orgId].active, "Gov: org already suspended");
        require(activeOrgCount > 1, "Gov: last active org");
    }

    function _checkReinstate(uint64 orgId) private view {
        _checkKnownOrg(orgId);
        require(!_orgs[orgId].active, "Gov: org already active");
    }

    function _checkChangeRoles(uint64 orgId, uint256 roles) private view {
        _checkKnownOrg(orgId);
        require(roles != 0 && roles & ~Roles.ORG_ALL == 0, "Gov: invalid org roles");
    }

    function _checkRotateKey(uint64 orgId, bytes memory key) private view {
        _checkKnownOrg(orgId);
        require(Sm2Key.isValid(key), "Gov: invalid SM2 key");
        require(_keyOwner[keccak256(key)] == 0, "Gov: key already registered");
    }

    function _checkNewValidator(bytes memory key, bytes32 consensusKey, uint64 power) private view {
        require(Sm2Key.isValid(key), "Gov: invalid SM2 key");
        bytes32 h = keccak256(key);
        require(_validatorIndex[h] == 0, "Gov: validator exists");
        require(consensusKey != bytes32(0), "Gov: zero consensus key");
        bytes32 owner = _consensusKeyOwner[consensusKey];
        require(owner == 0 || owner == h, "Gov: consensus key already used");
        require(power != 0 && power <= MAX_VALIDATOR_POWER, "Gov: invalid validator power");
    }

    function _checkRemoveValidator(bytes memory key) private view {
        require(_validatorIndex[keccak256(key)] != 0, "Gov: unknown validator");
        require(_validators.length > 1, "Gov: last validator");
    }

    function _checkAllowPeer(bytes20 nodeId) private view {
        require(nodeId != bytes20(0), "Gov: zero node id");
        require(!_peers[nodeId], "Gov: peer already allowed");
    }

    function _checkRemovePeer(bytes20 nodeId) private view {
        require(_peers[nodeId], "Gov: unknown peer");
        require(_validatorNodes[nodeId] == 0, "Gov: peer runs a validator");
    }

    function _checkValidatorNode(bytes20 nodeId) private view {
        require(nodeId != bytes20(0), "Gov: zero node id");
        require(_validatorNodes[nodeId] == 0, "Gov: node runs a validator");
    }

    function _allowPeer(bytes20 nodeId) private {
        _peers[nodeId] = true;
        peerCount += 1;
        emit PeerAllowed(nodeId);
    }

    /// @dev a validator's node (if bound) is on the allow-list for as long as it is a validator
    function _addValidator(bytes memory key, bytes32 consensusKey, uint64 power, bytes20 nodeId, uint256 effectiveHeight)
        private
    {
        bytes32 h = keccak256(key);
        _validators.push(key);
        _validatorIndex[h] = _validators.length;
        _validatorInfo[h] = ValidatorInfo({consensusKey: consensusKey, power: power, nodeId: nodeId});
        _consensusKeyOwner[consensusKey] = h;
        if (nodeId != bytes20(0)) {
            _validatorNodes[nodeId] += 1;
            if (!_peers[nodeId]) {
                _allowPeer(nodeId);
            }
        }
        emit ValidatorAdded(key, consensusKey, power, effectiveHeight);
    }

    function _removeValidator(bytes memory key) private {
        bytes32 h = keccak256(key);
        uint256 index = _validatorIndex[h] - 1;
        uint256 last = _validators.length - 1;
        if (index != last) {
            bytes memory moved = _validators[last];
            _validators[index] = moved;
            _validatorIndex[keccak256(moved)] = index + 1;
        }
        _validators.pop();
        delete _validatorIndex[h];
        bytes32 consensusKey = _validatorInfo[h].consensusKey;
        bytes20 nodeId = _validatorInfo[h].nodeId;
        if (nodeId != bytes20(0)) {
            _validatorNodes[nodeId] -= 1;
        }
        delete _validatorInfo[h];
        emit ValidatorRemoved(key, consensusKey, block.number + VALIDATOR_CHANGE_DELAY);
    }
}
