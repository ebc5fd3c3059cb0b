//! The GM (国密) crypto precompile at 0x100a as a revm precompile, with exactly the semantics and gas of
//! `shancheng.chain.precompiles` (py-evm) and docs/precompiles.md.
//!
//! Dispatched on the 4-byte selector; the rest of the calldata must be the strict canonical ABI encoding of
//! the arguments. `sm3(bytes)` costs 60 + 12 per word of the data, `keccak256Hash(bytes)` 30 + 6 per word,
//! `sm2Verify(bytes32,bytes,bytes32,bytes32)` 3000 + 12 per word of the whole calldata (charged before the
//! arguments are decoded). A bad signature, r/s out of range or a key off the curve give (false, address(0));
//! malformed calldata or a key that is not 64 bytes (or 65 with 04) halt the call, consuming all its gas.

use alloy_primitives::keccak256;
use revm::precompile::{
    calc_linear_cost, eth_precompile_fn, EthPrecompileOutput, EthPrecompileResult, Precompile, PrecompileHalt,
    PrecompileId,
};
use revm::primitives::Address;
use sm2::dsa::{signature::Verifier, Signature, VerifyingKey};
use sm3::{Digest, Sm3};

/// 0x000000000000000000000000000000000000100a
pub const GM_ADDRESS: Address = Address::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x0a]);

const GAS_SM3_BASE: u64 = 60;
const GAS_SM3_WORD: u64 = 12;
const GAS_KECCAK_BASE: u64 = 30;
const GAS_KECCAK_WORD: u64 = 6;
const GAS_SM2_VERIFY_BASE: u64 = 3000;
const GAS_SM2_VERIFY_WORD: u64 = 12;

/// keccak("sm3(bytes)")[..4]
const SEL_SM3: [u8; 4] = [0xfb, 0x34, 0x36, 0x3c];
/// keccak("keccak256Hash(bytes)")[..4]
const SEL_KECCAK: [u8; 4] = [0xeb, 0x90, 0xf4, 0x59];
/// keccak("sm2Verify(bytes32,bytes,bytes32,bytes32)")[..4]
const SEL_SM2_VERIFY: [u8; 4] = [0xcb, 0xdb, 0x3a, 0x67];

/// The default SM2 user ID (GB/T 32918.2) that the precompile verifies with.
const DEFAULT_UID: &str = "1234567812345678";

eth_precompile_fn!(gm_precompile_fn, gm_run);

/// The revm precompile.
pub const GM_PRECOMPILE: Precompile =
    Precompile::new(PrecompileId::Custom(std::borrow::Cow::Borrowed("GM")), GM_ADDRESS, gm_precompile_fn);

fn halt(what: &'static str) -> PrecompileHalt {
    PrecompileHalt::other_static(what)
}

/// A 32-byte ABI word holding `value` (a usize) exactly, or None.
fn word_as_usize(word: &[u8]) -> Option<usize> {
    if word[..24].iter().any(|&b| b != 0) {
        return None;
    }
    usize::try_from(u64::from_be_bytes(word[24..32].try_into().ok()?)).ok()
}

/// `data`'s length rounded up to whole 32-byte words, in bytes.
fn padded(len: usize) -> Option<usize> {
    len.checked_add(31).map(|n| n / 32 * 32)
}

/// The `bytes` argument whose head word is at `head` (relative to `args`, the calldata after the selector),
/// provided `args` is exactly the canonical encoding with `static_words` static head words and that one
/// dynamic `bytes` tail.
fn canonical_bytes(args: &[u8], static_words: usize, head: usize) -> Option<&[u8]> {
    let tail = 32 * static_words;
    if args.len() < tail + 32 || word_as_usize(&args[head..head + 32])? != tail {
        return None;
    }
    let len = word_as_usize(&args[tail..tail + 32])?;
    let start = tail + 32;
    if args.len() != start.checked_add(padded(len)?)? {
        return None;
    }
    let (data, padding) = args[start..].split_at(len);
    padding.iter().all(|&b| b == 0).then_some(data)
}

fn charge(cost: u64, gas_limit: u64) -> Result<(), PrecompileHalt> {
    if cost > gas_limit {
        Err(PrecompileHalt::OutOfGas)
    } else {
        Ok(())
    }
}

fn sm3_digest(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

fn run_sm3(args: &[u8], gas_limit: u64) -> EthPrecompileResult {
    let data = canonical_bytes(args, 1, 0).ok_or(halt("GM precompile: malformed sm3 calldata"))?;
    let cost = calc_linear_cost(data.len(), GAS_SM3_BASE, GAS_SM3_WORD);
    charge(cost, gas_limit)?;
    Ok(EthPrecompileOutput::new(cost, sm3_digest(data).to_vec().into()))
}

fn run_keccak(args: &[u8], gas_limit: u64) -> EthPrecompileResult {
    let data = canonical_bytes(args, 1, 0).ok_or(halt("GM precompile: malformed keccak256Hash calldata"))?;
    let cost = calc_linear_cost(data.len(), GAS_KECCAK_BASE, GAS_KECCAK_WORD);
    charge(cost, gas_limit)?;
    Ok(EthPrecompileOutput::new(cost, keccak256(data).to_vec().into()))
}

/// The signer (last 20 bytes of SM3(x || y)) when `r || s` is a valid SM2 signature of `message` by the
/// uncompressed point `point` (04 || x || y); None for a wrong signature, r/s out of range or a bad point.
pub fn sm2_signer(message: &[u8], point: &[u8; 65], r: &[u8], s: &[u8]) -> Option<[u8; 20]> {
    let key = VerifyingKey::from_sec1_bytes(DEFAULT_UID, point).ok()?;
    let mut rs = [0u8; 64];
    rs[..32].copy_from_slice(r);
    rs[32..].copy_from_slice(s);
    let signature = Signature::from_slice(&rs).ok()?;
    key.verify(message, &signature).ok()?;
    let digest = sm3_digest(&point[1..]);
    let mut signer = [0u8; 20];
    signer.copy_from_slice(&digest[12..]);
    Some(signer)
}

fn run_sm2_verify(args: &[u8], gas_limit: u64) -> EthPrecompileResult {
    let cost = calc_linear_cost(4 + args.len(), GAS_SM2_VERIFY_BASE, GAS_SM2_VERIFY_WORD);
    charge(cost, gas_limit)?;
    let key = canonical_bytes(args, 4, 32).ok_or(halt("GM precompile: malformed sm2Verify calldata"))?;
    let mut point = [4u8; 65];
    match key.len() {
        64 => point[1..].copy_from_slice(key),
        65 if key[0] == 4 => point.copy_from_slice(key),
        65 => return Err(halt("GM precompile: a 65-byte SM2 public key must start with 04")),
        _ => return Err(halt("GM precompile: SM2 public key must be 64 bytes x||y (or 65 with 04)")),
    }
    let signer = sm2_signer(&args[..32], &point, &args[64..96], &args[96..128]);
    let mut out = vec![0u8; 64];
    if let Some(signer) = signer {
        out[31] = 1;
        out[44..64].copy_from_slice(&signer);
    }
    Ok(EthPrecompileOutput::new(cost, out.into()))
}

/// The precompile: dispatch on the selector; unknown or short calldata halts.
pub fn gm_run(input: &[u8], gas_limit: u64) -> EthPrecompileResult {
    if input.len() < 4 {
        return Err(halt("GM precompile: unknown function selector"));
    }
    let (selector, args) = input.split_at(4);
    match <[u8; 4]>::try_from(selector).expect("4 bytes") {
        SEL_SM3 => run_sm3(args, gas_limit),
        SEL_KECCAK => run_keccak(args, gas_limit),
        SEL_SM2_VERIFY => run_sm2_verify(args, gas_limit),
        _ => Err(halt("GM precompile: unknown function selector")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_the_abi_ones() {
        assert_eq!(keccak256(b"sm3(bytes)")[..4], SEL_SM3);
        assert_eq!(keccak256(b"keccak256Hash(bytes)")[..4], SEL_KECCAK);
        assert_eq!(keccak256(b"sm2Verify(bytes32,bytes,bytes32,bytes32)")[..4], SEL_SM2_VERIFY);
    }
}
