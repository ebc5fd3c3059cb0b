//! Reading py-evm's Merkle-Patricia tries: a value by its 32-byte key (keccak of the address or slot),
//! walking nodes that the database keeps under their keccak hash (nodes under 32 bytes are embedded).

use crate::rlp::{self, Item, RlpError};
use revm::primitives::{b256, B256};

/// keccak(rlp(b"")): the root of the empty trie.
pub const EMPTY_ROOT: B256 = b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// A trie read that could not finish.
#[derive(Debug, Clone)]
pub enum TrieError {
    /// A node the trie refers to is not in the database.
    Missing(B256),
    /// A node is not a trie node.
    Malformed(&'static str),
    /// The node source failed (e.g. the Python callable raised).
    Source(String),
}

impl From<RlpError> for TrieError {
    fn from(e: RlpError) -> Self {
        TrieError::Malformed(e.0)
    }
}

impl std::fmt::Display for TrieError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrieError::Missing(h) => write!(f, "trie node {h} is missing from the database"),
            TrieError::Malformed(what) => write!(f, "malformed trie node: {what}"),
            TrieError::Source(what) => write!(f, "reading the database failed: {what}"),
        }
    }
}

/// Where trie nodes come from: the encoding of the node whose hash is `hash`, or None.
pub trait NodeSource {
    fn node(&mut self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError>;
}

/// The nibbles (half-bytes, high first) of `key`.
pub fn nibbles(key: &[u8]) -> Vec<u8> {
    key.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect()
}

/// A hex-prefix path: (is leaf, nibbles).
pub fn hex_prefix(encoded: &[u8]) -> Result<(bool, Vec<u8>), TrieError> {
    let first = *encoded.first().ok_or(TrieError::Malformed("empty path"))?;
    let flag = first >> 4;
    if flag > 3 {
        return Err(TrieError::Malformed("bad hex-prefix flag"));
    }
    let mut path = Vec::with_capacity(encoded.len() * 2);
    if flag & 1 == 1 {
        path.push(first & 0x0f);
    } else if first & 0x0f != 0 {
        return Err(TrieError::Malformed("bad hex-prefix padding"));
    }
    path.extend(nibbles(&encoded[1..]));
    Ok((flag & 2 == 2, path))
}

/// The next node a reference points to: None for the empty reference.
fn follow(source: &mut impl NodeSource, item: Item<'_>, raw: &[u8]) -> Result<Option<Vec<u8>>, TrieError> {
    match item {
        Item::List(_) => Ok(Some(raw.to_vec())), // embedded node
        Item::Bytes([]) => Ok(None),
        Item::Bytes(b) if b.len() == 32 => {
            let hash = B256::from_slice(b);
            source.node(&hash)?.map(Some).ok_or(TrieError::Missing(hash))
        }
        Item::Bytes(_) => Err(TrieError::Malformed("a child reference is neither a hash nor a node")),
    }
}

/// The value stored under `key` in the trie of root `root`, or None.
pub fn get(source: &mut impl NodeSource, root: &B256, key: &[u8]) -> Result<Option<Vec<u8>>, TrieError> {
    if *root == EMPTY_ROOT {
        return Ok(None);
    }
    let path = nibbles(key);
    let mut at = 0usize;
    let mut node = source.node(root)?.ok_or(TrieError::Missing(*root))?;
    loop {
        let items = rlp::decode_exact(&node)?.items()?;
        let next = match items.len() {
            17 => {
                if at == path.len() {
                    let value = items[16].0.bytes()?;
                    return Ok((!value.is_empty()).then(|| value.to_vec()));
                }
                let (item, raw) = items[usize::from(path[at])];
                at += 1;
                follow(source, item, raw)?
            }
            2 => {
                let (leaf, segment) = hex_prefix(items[0].0.bytes()?)?;
                if !path[at..].starts_with(&segment) {
                    return Ok(None);
                }
                at += segment.len();
                if leaf {
                    if at != path.len() {
                        return Ok(None);
                    }
                    return Ok(Some(items[1].0.bytes()?.to_vec()));
                }
                let (item, raw) = items[1];
                follow(source, item, raw)?
            }
            _ => return Err(TrieError::Malformed("a node is neither a branch, an extension nor a leaf")),
        };
        match next {
            Some(n) => node = n,
            None => return Ok(None),
        }
    }
}
