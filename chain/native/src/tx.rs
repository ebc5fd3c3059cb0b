//! Raw transactions: decoding (legacy with EIP-155, EIP-2930, EIP-1559; canonical RLP only), the hash,
//! sender recovery (secp256k1 through revm's precompile crypto, low s required) and revm's `TxEnv`.

use revm::context::TxEnv;
use revm::context_interface::transaction::{AccessList, AccessListItem};
use revm::precompile::crypto;
use revm::primitives::{keccak256, Address, Bytes, TxKind, B256, U256};

use crate::rlp::{self, Item, RlpError};

/// secp256k1's group order n and n / 2.
const SECP256K1_N: U256 = U256::from_be_bytes([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc,
    0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
]);

/// The largest raw transaction accepted (`shancheng.chain.validity.MAX_TX_BYTES`).
pub const MAX_TX_BYTES: usize = 128 * 1024;
/// EIP-3860's init code limit.
const MAX_INITCODE_SIZE: usize = 2 * 24576;

/// The intrinsic gas of a transaction (Cancun: EIP-2028 calldata, EIP-2930 access list, EIP-3860 init code).
fn intrinsic_gas(to: Option<Address>, data: &[u8], access_list: &AccessList) -> u64 {
    let zeros = data.iter().filter(|&&b| b == 0).count() as u64;
    let mut gas = 21_000 + 4 * zeros + 16 * (data.len() as u64 - zeros);
    if to.is_none() {
        gas += 32_000 + 2 * (data.len() as u64).div_ceil(32);
    }
    for item in access_list.iter() {
        gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
    }
    gas
}

/// A transaction no block may include, whatever the state.
#[derive(Debug, Clone)]
pub struct TxInvalid(pub String);

impl From<RlpError> for TxInvalid {
    fn from(e: RlpError) -> Self {
        TxInvalid(format!("invalid transaction encoding: {}", e.0))
    }
}

/// A decoded, signature-checked transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub hash: B256,
    pub sender: Address,
    pub tx_type: u8,
    pub chain_id: u64,
    pub nonce: u64,
    pub gas_limit: u64,
    /// the gas price (legacy, EIP-2930) or the max fee per gas (EIP-1559); py-evm takes any 256-bit fee
    pub max_fee: U256,
    pub priority_fee: Option<U256>,
    pub to: Option<Address>,
    pub value: U256,
    pub data: Bytes,
    pub access_list: AccessList,
}

impl Transaction {
    /// The gas price py-evm charges with a zero base fee: min(max fee, priority fee) (the gas price for
    /// legacy and EIP-2930 transactions).
    pub fn effective_gas_price(&self) -> U256 {
        self.priority_fee.map_or(self.max_fee, |p| p.min(self.max_fee))
    }

    /// revm's transaction environment for this transaction; None when a fee does not fit revm's 128 bits.
    pub fn env(&self) -> Option<TxEnv> {
        let max_fee = u128::try_from(self.max_fee).ok()?;
        let priority_fee = match self.priority_fee {
            Some(p) => Some(u128::try_from(p).ok()?),
            None => None,
        };
        Some(TxEnv {
            tx_type: self.tx_type,
            caller: self.sender,
            gas_limit: self.gas_limit,
            gas_price: max_fee,
            kind: self.to.map_or(TxKind::Create, TxKind::Call),
            value: self.value,
            data: self.data.clone(),
            nonce: self.nonce,
            chain_id: Some(self.chain_id),
            access_list: self.access_list.clone(),
            gas_priority_fee: priority_fee,
            ..TxEnv::default()
        })
    }
}

fn to_of(item: Item<'_>) -> Result<Option<Address>, TxInvalid> {
    match item.bytes()? {
        [] => Ok(None),
        b if b.len() == 20 => Ok(Some(Address::from_slice(b))),
        _ => Err(TxInvalid("invalid transaction encoding: `to` is not 20 bytes".into())),
    }
}

fn access_list_of(item: Item<'_>) -> Result<AccessList, TxInvalid> {
    let mut out = Vec::new();
    for (entry, _) in item.items()? {
        let fields = entry.items()?;
        let [(address, _), (keys, _)] = fields.as_slice() else {
            return Err(TxInvalid("invalid transaction encoding: an access-list entry is not [address, keys]".into()));
        };
        let address = address.bytes()?;
        if address.len() != 20 {
            return Err(TxInvalid("invalid transaction encoding: an access-list address is not 20 bytes".into()));
        }
        let mut storage_keys = Vec::new();
        for (key, _) in keys.items()? {
            let key = key.bytes()?;
            if key.len() != 32 {
                return Err(TxInvalid("invalid transaction encoding: an access-list key is not 32 bytes".into()));
            }
            storage_keys.push(B256::from_slice(key));
        }
        out.push(AccessListItem { address: Address::from_slice(address), storage_keys });
    }
    Ok(AccessList(out))
}

/// A transaction's signature: (r, s, recovery id) over `sighash`.
#[derive(Debug, Clone)]
pub struct Signature {
    pub sighash: B256,
    pub r: U256,
    pub s: U256,
    pub recid: u8,
}

impl Signature {
    /// r and s in range, low s required (EIP-2), recovery id 0 or 1.
    fn check_range(&self) -> Result<(), TxInvalid> {
        let half = SECP256K1_N >> 1;
        if self.r.is_zero() || self.r >= SECP256K1_N || self.s.is_zero() || self.s > half || self.recid > 1 {
            return Err(TxInvalid(
                "invalid sender: signature r/s out of range (s must be in the lower half of the curve order, \
                 EIP-2)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// r, s and the recovery id as 65 bytes (libsecp256k1's recoverable signature).
    pub fn to_bytes(&self) -> [u8; 65] {
        let mut sig = [0u8; 65];
        sig[..32].copy_from_slice(&self.r.to_be_bytes::<32>());
        sig[32..64].copy_from_slice(&self.s.to_be_bytes::<32>());
        sig[64] = self.recid;
        sig
    }

    /// The sender (the signature's range already checked).
    fn recover(&self) -> Result<Address, TxInvalid> {
        let bytes = self.to_bytes();
        let sig: &[u8; 64] = bytes[..64].try_into().expect("64 bytes");
        let word = crypto()
            .secp256k1_ecrecover(sig, self.recid, &self.sighash.0)
            .map_err(|_| TxInvalid("invalid sender: the signature recovers no key".into()))?;
        Ok(Address::from_slice(&word[12..]))
    }
}

/// Decode and check `raw` for chain `chain_id` and a block gas limit of `block_gas_limit`: the checks of
/// `shancheng.chain.validity.check_transaction`, in its order; the sender recovered unless `sender` is given (a transaction the mempool checked:
/// its signature is not recovered again).
pub fn decode_checked(
    raw: &[u8],
    chain_id: u64,
    block_gas_limit: u64,
    sender: Option<Address>,
) -> Result<Transaction, TxInvalid> {
    let (mut tx, signature) = decode_unrecovered(raw, chain_id, block_gas_limit)?;
    tx.sender = match sender {
        Some(sender) => sender,
        None => signature.recover()?,
    };
    Ok(tx)
}

/// Every check of [`decode_checked`] but the recovery of the sender: the transaction (its sender zero) and its
/// signature, whose range is checked (the node recovers it with libsecp256k1, which is faster than k256).
pub fn decode_unrecovered(
    raw: &[u8],
    chain_id: u64,
    block_gas_limit: u64,
) -> Result<(Transaction, Signature), TxInvalid> {
    if raw.len() > MAX_TX_BYTES {
        return Err(TxInvalid(format!(
            "oversized data: transaction is {} bytes, the limit is {MAX_TX_BYTES}",
            raw.len()
        )));
    }
    let first = *raw.first().ok_or_else(|| TxInvalid("invalid transaction encoding: empty input".into()))?;
    let (tx_type, body) = match first {
        1 | 2 => (first, &raw[1..]),
        0xc0..=0xff => (0, raw),
        0..=0x7f => return Err(TxInvalid(format!("transaction type not supported: type {first}"))),
        _ => return Err(TxInvalid("invalid transaction encoding: neither a typed transaction nor an RLP list".into())),
    };
    let fields = rlp::decode_exact(body)?.items()?;
    let n_fields = [9, 11, 12][usize::from(tx_type)];
    if fields.len() != n_fields {
        return Err(TxInvalid(format!("invalid transaction encoding: {} fields, expected {n_fields}", fields.len())));
    }
    let f = |i: usize| fields[i].0;
    // (offset of nonce, index of to, whether a priority fee precedes the max fee)
    let (tx_chain_id, nonce_at) = match tx_type {
        0 => (None, 0),
        _ => (Some(f(0).u64()?), 1),
    };
    let nonce = f(nonce_at).u64()?;
    let (priority_fee, max_fee, gas_at) = if tx_type == 2 {
        (Some(f(2).uint()?), f(3).uint()?, 4)
    } else {
        (None, f(nonce_at + 1).uint()?, nonce_at + 2)
    };
    let gas_limit = f(gas_at).u64()?;
    let to = to_of(f(gas_at + 1))?;
    let value = f(gas_at + 2).uint()?;
    let data = Bytes::copy_from_slice(f(gas_at + 3).bytes()?);
    let access_list = if tx_type == 0 { AccessList::default() } else { access_list_of(f(gas_at + 4))? };
    let (v, r, s) = (f(n_fields - 3).uint()?, f(n_fields - 1 - 1).uint()?, f(n_fields - 1).uint()?);
    let unsigned: Vec<u8> = fields[..n_fields - 3].iter().flat_map(|(_, raw)| raw.iter().copied()).collect();
    let (tx_chain_id, recid, sighash) = if tx_type == 0 {
        // EIP-155: v = chain_id * 2 + 35 + recovery id; unprotected (27/28) transactions are refused
        let v = u64::try_from(v).map_err(|_| TxInvalid("invalid sender: v out of range".into()))?;
        if v < 35 {
            return Err(TxInvalid("only replay-protected (EIP-155) transactions are accepted".into()));
        }
        let id = (v - 35) / 2;
        let mut payload = unsigned;
        payload.extend(rlp::encode_uint(U256::from(id)));
        payload.extend([0x80, 0x80]);
        (id, ((v - 35) % 2) as u8, keccak256(rlp::encode_list(&payload)))
    } else {
        if v > U256::from(1) {
            return Err(TxInvalid("invalid sender: y parity is not 0 or 1".into()));
        }
        let mut preimage = vec![tx_type];
        preimage.extend(rlp::encode_list(&unsigned));
        (tx_chain_id.expect("typed"), v.to::<u8>(), keccak256(preimage))
    };
    if tx_chain_id != chain_id {
        return Err(TxInvalid(format!(
            "invalid chain id: transaction is for chain {tx_chain_id}, this chain is {chain_id}"
        )));
    }
    if nonce == u64::MAX {
        return Err(TxInvalid(format!("nonce has max value: tx nonce {nonce}")));
    }
    if to.is_none() && data.len() > MAX_INITCODE_SIZE {
        return Err(TxInvalid(format!("max initcode size exceeded: {} bytes", data.len())));
    }
    let intrinsic = intrinsic_gas(to, &data, &access_list);
    if gas_limit < intrinsic {
        return Err(TxInvalid(format!("intrinsic gas too low: gas {gas_limit}, minimum needed {intrinsic}")));
    }
    if gas_limit > block_gas_limit {
        return Err(TxInvalid(format!("exceeds block gas limit: gas {gas_limit}, block gas limit {block_gas_limit}")));
    }
    let signature = Signature { sighash, r, s, recid };
    signature.check_range()?;
    let tx = Transaction {
        hash: keccak256(raw),
        sender: Address::ZERO,
        tx_type,
        chain_id,
        nonce,
        gas_limit,
        max_fee,
        priority_fee,
        to,
        value,
        data,
        access_list,
    };
    Ok((tx, signature))
}
