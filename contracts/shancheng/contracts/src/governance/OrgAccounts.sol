// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GovernanceBase} from "./GovernanceBase.sol";
import {Roles} from "../lib/Roles.sol";
import {GmCrypto} from "../lib/GmCrypto.sol";
import {Sm2Key} from "../lib/Sm2Key.sol";

/// @title OrgAccounts — what an organisation does without a vote: its accounts and its staff.
/// @notice Accounts join only by their own act and with the organisation key's word:
///   `addAccount(account, consent, r, s)` needs the account's consent (a secp256k1 signature over
///   accountConsentDigest) and, where the GM precompile exists, the org key's SM2 signature (r, s) over
///   M = SM3(accountChangePreimage(orgId, account, true)). An account may remove itself; removing another
///   account needs the org key's signature over accountChangePreimage(orgId, account, false). So a leaked
///   account can neither lock its organisation's other accounts out nor bring in new ones; the consortium
///   replaces an organisation's accounts, or rotates its key, by vote (Governance.proposeReplaceAccounts,
///   proposeRotateOrgKey). On a stock EVM (no precompile) the org key cannot be checked on chain and any
///   account of the organisation may add (with the new account's consent) or remove accounts.
///   Staff are managed by any account of their organisation, with the staff key's proof of possession.
abstract contract OrgAccounts is GovernanceBase {
    /// @notice The preimage of the message M = SM3(preimage) the org key signs (SM2, default user ID) to add
    ///   (`add` true) or remove an account: it binds this chain and contract, the org, the account, the
    ///   direction and the account's join count (so a signed change is valid once).
    function accountChangePreimage(uint64 orgId, address account, bool add) public view returns (bytes memory) {
        return abi.encode(ACCOUNT_CHANGE_TAG, block.chainid, address(this), orgId, account, add, accountNonce[account]);
    }

    /// @notice The preimage of the message M = SM3(preimage) a staff key's proof of possession signs (SM2,
    ///   default user ID): it binds the registering org, the staff address and roles, this chain and contract.
    function staffPossessionMessagePreimage(uint64 orgId, address staff, uint256 roles, bytes calldata publicKey)
        external
        view
        returns (bytes memory)
    {
        return abi.encode(STAFF_POP_TAG, block.chainid, address(this), orgId, staff, roles, publicKey);
    }

    /// @notice Add `account` to the sender's organisation: `consent` is the account's 65-byte signature
    ///   (r ‖ s ‖ v) over accountConsentDigest(orgKey, account); (r, s) the org key's SM2 signature over
    ///   SM3(accountChangePreimage(orgId, account, true)), checked where the GM precompile exists.
    function addAccount(address account, bytes calldata consent, bytes32 r, bytes32 s) external {
        uint64 orgId = _memberOrg(msg.sender);
        _checkFreeAccount(account, 0);
        Org storage o = _orgs[orgId];
        require(o.accounts.length < MAX_ACCOUNTS, "Gov: too many accounts");
        _checkConsent(o.publicKey, account, consent);
        _checkOrgKeySignature(orgId, account, true, r, s);
        _joinAccount(orgId, account);
        emit AccountAdded(orgId, account);
    }

    /// @notice Remove `account` from the sender's organisation (never its last account): the account itself
    ///   may; any other account needs the org key's SM2 signature (r, s) over
    ///   SM3(accountChangePreimage(orgId, account, false)), checked where the GM precompile exists.
    function removeAccount(address account, bytes32 r, bytes32 s) external {
        uint64 orgId = _memberOrg(msg.sender);
        require(_accountOrg[account] == orgId, "Gov: not an account of sender's org");
        require(_orgs[orgId].accounts.length > 1, "Gov: last account");
        if (account != msg.sender) {
            _checkOrgKeySignature(orgId, account, false, r, s);
        }
        _leaveAccount(orgId, account);
    }

    /// @notice Register a staff member of the sender's org with the staff key's proof of possession (r, s)
    ///   over M = SM3(abi.encode(STAFF_POP_TAG, chainid, this, orgId, staff, roles, publicKey)). `staff` must be
    ///   SM3(x||y)[12:] of `publicKey`; both are checked where the GM precompile exists. The key must not be
    ///   registered yet (as any org's key or any staff member's key).
    function registerStaff(address staff, bytes calldata publicKey, uint256 roles, bytes32 r, bytes32 s) external {
        uint64 orgId = _memberOrg(msg.sender);
        require(staff != address(0), "Gov: zero staff address");
        require(_staff[staff].orgId == 0, "Gov: staff exists");
        require(roles != 0 && roles & ~Roles.STAFF_ALL == 0, "Gov: invalid staff roles");
        require(Sm2Key.isValid(publicKey), "Gov: invalid SM2 key");
        bytes32 keyHash = keccak256(publicKey);
        require(_keyOwner[keyHash] == 0, "Gov: key already registered");
        if (GmCrypto.available()) {
            require(address(uint160(uint256(GmCrypto.sm3(publicKey)))) == staff, "Gov: staff address mismatch");
            bytes32 m = GmCrypto.sm3(
                abi.encode(STAFF_POP_TAG, block.chainid, address(this), orgId, staff, roles, publicKey)
            );
            (bool ok,) = GmCrypto.sm2Verify(m, publicKey, r, s);
            require(ok, "Gov: bad staff proof of possession");
        }
        _keyOwner[keyHash] = orgId;
        _staff[staff] = Staff({orgId: orgId, roles: roles, active: true, publicKey: publicKey});
        emit StaffRegistered(staff, orgId, roles, publicKey);
    }

    function setStaffRoles(address staff, uint256 roles) external {
        Staff storage s = _ownStaff(staff);
        require(roles != 0 && roles & ~Roles.STAFF_ALL == 0, "Gov: invalid staff roles");
        s.roles = roles;
        emit StaffRolesChanged(staff, roles);
    }

    function deactivateStaff(address staff) external {
        Staff storage s = _ownStaff(staff);
        require(s.active, "Gov: staff inactive");
        s.active = false;
        emit StaffDeactivated(staff);
    }

    // ---------------------------------------------------------------- internals
    function _checkOrgKeySignature(uint64 orgId, address account, bool add, bytes32 r, bytes32 s) private view {
        if (GmCrypto.available()) {
            bytes32 m = GmCrypto.sm3(accountChangePreimage(orgId, account, add));
            (bool ok,) = GmCrypto.sm2Verify(m, _orgs[orgId].publicKey, r, s);
            require(ok, "Gov: bad org key signature");
        }
    }

    function _leaveAccount(uint64 orgId, address account) internal {
        address[] storage list = _orgs[orgId].accounts;
        for (uint256 i = 0; i < list.length; i++) {
            if (list[i] == account) {
                list[i] = list[list.length - 1];
                list.pop();
                break;
            }
        }
        delete _accountOrg[account];
        emit AccountRemoved(orgId, account);
    }

    function _ownStaff(address staff) private view returns (Staff storage s) {
        uint64 orgId = _memberOrg(msg.sender);
        s = _staff[staff];
        require(s.orgId != 0, "Gov: unknown staff");
        require(s.orgId == orgId, "Gov: not staff's org");
    }
}
