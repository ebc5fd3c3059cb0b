//! Changing a Merkle-Patricia trie: a batch of inserts and deletes on a trie loaded lazily from a
//! [`NodeSource`], then the new root and the new nodes (keccak hash -> encoding; nodes under 32 bytes are
//! embedded in their parent, the root is always stored). A trie is a function of its key/value set, so the
//! root is py-evm's whatever order the changes come in.

use revm::primitives::{keccak256, B256};

use crate::mpt::{hex_prefix as decode_path, nibbles, NodeSource, TrieError, EMPTY_ROOT};
use crate::rlp::{self, Item};

enum Node {
    Empty,
    Leaf(Vec<u8>, Vec<u8>),
    Ext(Vec<u8>, Box<Node>),
    Branch(Box<[Node; 16]>, Option<Vec<u8>>),
    /// an unchanged subtree not loaded (yet)
    Hashed(B256),
}

fn empty_children() -> Box<[Node; 16]> {
    Box::new(std::array::from_fn(|_| Node::Empty))
}

fn lcp(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    v.extend_from_slice(b);
    v
}

fn decode_ref(item: Item<'_>, raw: &[u8]) -> Result<Node, TrieError> {
    match item {
        Item::List(_) => decode_node(raw),
        Item::Bytes([]) => Ok(Node::Empty),
        Item::Bytes(b) if b.len() == 32 => Ok(Node::Hashed(B256::from_slice(b))),
        Item::Bytes(_) => Err(TrieError::Malformed("a child reference is neither a hash nor a node")),
    }
}

fn decode_node(encoded: &[u8]) -> Result<Node, TrieError> {
    let items = rlp::decode_exact(encoded)?.items()?;
    match items.len() {
        17 => {
            let mut children = empty_children();
            for (i, child) in children.iter_mut().enumerate() {
                *child = decode_ref(items[i].0, items[i].1)?;
            }
            let value = items[16].0.bytes()?;
            Ok(Node::Branch(children, (!value.is_empty()).then(|| value.to_vec())))
        }
        2 => {
            let (leaf, path) = decode_path(items[0].0.bytes()?)?;
            if leaf {
                Ok(Node::Leaf(path, items[1].0.bytes()?.to_vec()))
            } else {
                Ok(Node::Ext(path, Box::new(decode_ref(items[1].0, items[1].1)?)))
            }
        }
        _ => Err(TrieError::Malformed("a node is neither a branch, an extension nor a leaf")),
    }
}

fn load(source: &mut impl NodeSource, hash: &B256) -> Result<Node, TrieError> {
    let encoded = source.node(hash)?.ok_or(TrieError::Missing(*hash))?;
    decode_node(&encoded)
}

fn resolve(source: &mut impl NodeSource, node: Node) -> Result<Node, TrieError> {
    match node {
        Node::Hashed(h) => load(source, &h),
        other => Ok(other),
    }
}

fn insert(source: &mut impl NodeSource, node: Node, path: &[u8], value: Vec<u8>) -> Result<Node, TrieError> {
    Ok(match resolve(source, node)? {
        Node::Empty => Node::Leaf(path.to_vec(), value),
        Node::Leaf(lp, lv) => {
            if lp == path {
                return Ok(Node::Leaf(lp, value));
            }
            let c = lcp(&lp, path);
            let mut branch = Node::Branch(empty_children(), None);
            branch = insert(source, branch, &lp[c..], lv)?;
            branch = insert(source, branch, &path[c..], value)?;
            if c > 0 {
                Node::Ext(path[..c].to_vec(), Box::new(branch))
            } else {
                branch
            }
        }
        Node::Ext(ep, child) => {
            let c = lcp(&ep, path);
            if c == ep.len() {
                return Ok(Node::Ext(ep, Box::new(insert(source, *child, &path[c..], value)?)));
            }
            let mut children = empty_children();
            children[usize::from(ep[c])] =
                if c + 1 == ep.len() { *child } else { Node::Ext(ep[c + 1..].to_vec(), child) };
            let branch = insert(source, Node::Branch(children, None), &path[c..], value)?;
            if c > 0 {
                Node::Ext(path[..c].to_vec(), Box::new(branch))
            } else {
                branch
            }
        }
        Node::Branch(mut children, v) => {
            if path.is_empty() {
                return Ok(Node::Branch(children, Some(value)));
            }
            let i = usize::from(path[0]);
            let child = std::mem::replace(&mut children[i], Node::Empty);
            children[i] = insert(source, child, &path[1..], value)?;
            Node::Branch(children, v)
        }
        Node::Hashed(_) => unreachable!("resolved"),
    })
}

fn join(source: &mut impl NodeSource, prefix: &[u8], node: Node) -> Result<Node, TrieError> {
    Ok(match resolve(source, node)? {
        Node::Empty => Node::Empty,
        Node::Leaf(p, v) => Node::Leaf(concat(prefix, &p), v),
        Node::Ext(p, c) => Node::Ext(concat(prefix, &p), c),
        branch => Node::Ext(prefix.to_vec(), Box::new(branch)),
    })
}

fn delete(source: &mut impl NodeSource, node: Node, path: &[u8]) -> Result<Node, TrieError> {
    Ok(match resolve(source, node)? {
        Node::Empty => Node::Empty,
        Node::Leaf(lp, lv) => {
            if lp == path {
                Node::Empty
            } else {
                Node::Leaf(lp, lv)
            }
        }
        Node::Ext(ep, child) => {
            if !path.starts_with(&ep) {
                return Ok(Node::Ext(ep, child));
            }
            let child = delete(source, *child, &path[ep.len()..])?;
            if let Node::Branch(..) = child {
                Node::Ext(ep, Box::new(child))
            } else {
                join(source, &ep, child)?
            }
        }
        Node::Branch(mut children, mut value) => {
            if path.is_empty() {
                value = None;
            } else {
                let i = usize::from(path[0]);
                let child = std::mem::replace(&mut children[i], Node::Empty);
                children[i] = delete(source, child, &path[1..])?;
            }
            let live: Vec<usize> = (0..16).filter(|&i| !matches!(children[i], Node::Empty)).collect();
            match (live.len(), value) {
                (0, None) => Node::Empty,
                (0, Some(v)) => Node::Leaf(Vec::new(), v),
                (1, None) => {
                    let i = live[0];
                    let only = std::mem::replace(&mut children[i], Node::Empty);
                    join(source, &[i as u8], only)?
                }
                (_, value) => Node::Branch(children, value),
            }
        }
        Node::Hashed(_) => unreachable!("resolved"),
    })
}

fn hex_prefix(path: &[u8], leaf: bool) -> Vec<u8> {
    let flag = if leaf { 2u8 } else { 0 } + (path.len() % 2) as u8;
    let mut out = Vec::with_capacity(path.len() / 2 + 1);
    let rest = if path.len() % 2 == 1 {
        out.push(flag << 4 | path[0]);
        &path[1..]
    } else {
        out.push(flag << 4);
        path
    };
    out.extend(rest.chunks(2).map(|p| p[0] << 4 | p[1]));
    out
}

/// The reference to `node` in its parent: its hash (storing it) or, under 32 bytes, the node itself.
fn reference(node: &Node, nodes: &mut Vec<(B256, Vec<u8>)>) -> Vec<u8> {
    if let Node::Hashed(h) = node {
        return rlp::encode_bytes(h.as_slice());
    }
    if let Node::Empty = node {
        return vec![0x80];
    }
    let encoded = encode(node, nodes);
    if encoded.len() < 32 {
        return encoded;
    }
    let hash = keccak256(&encoded);
    nodes.push((hash, encoded));
    rlp::encode_bytes(hash.as_slice())
}

fn encode(node: &Node, nodes: &mut Vec<(B256, Vec<u8>)>) -> Vec<u8> {
    match node {
        Node::Empty => vec![0x80],
        Node::Leaf(p, v) => rlp::encode_list(&concat(&rlp::encode_bytes(&hex_prefix(p, true)), &rlp::encode_bytes(v))),
        Node::Ext(p, c) => rlp::encode_list(&concat(&rlp::encode_bytes(&hex_prefix(p, false)), &reference(c, nodes))),
        Node::Branch(children, v) => {
            let mut payload = Vec::new();
            for child in children.iter() {
                payload.extend(reference(child, nodes));
            }
            payload.extend(rlp::encode_bytes(v.as_deref().unwrap_or(&[])));
            rlp::encode_list(&payload)
        }
        Node::Hashed(_) => unreachable!("a hashed node is only referred to"),
    }
}

/// A trie being changed.
pub struct TrieUpdate {
    root: Node,
}

impl TrieUpdate {
    /// The trie of root `root` (not read until a change needs its nodes).
    pub fn new(root: B256) -> Self {
        Self { root: if root == EMPTY_ROOT { Node::Empty } else { Node::Hashed(root) } }
    }

    /// Set `key` to `value` (an empty value deletes it, as in py-evm's tries).
    pub fn set(&mut self, source: &mut impl NodeSource, key: &[u8], value: Vec<u8>) -> Result<(), TrieError> {
        let root = std::mem::replace(&mut self.root, Node::Empty);
        let path = nibbles(key);
        self.root = if value.is_empty() { delete(source, root, &path)? } else { insert(source, root, &path, value)? };
        Ok(())
    }

    /// The root hash and the new nodes (hash -> encoding), the root among them.
    pub fn commit(self, nodes: &mut Vec<(B256, Vec<u8>)>) -> B256 {
        match &self.root {
            Node::Empty => EMPTY_ROOT,
            Node::Hashed(h) => *h,
            root => {
                let encoded = encode(root, nodes);
                let hash = keccak256(&encoded);
                nodes.push((hash, encoded));
                hash
            }
        }
    }
}

/// The root (and nodes) of the trie holding `values[i]` under rlp(i): a block's transactions or receipts.
pub fn ordered_root(values: &[Vec<u8>], nodes: &mut Vec<(B256, Vec<u8>)>) -> Result<B256, TrieError> {
    struct NoNodes;
    impl NodeSource for NoNodes {
        fn node(&mut self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError> {
            Err(TrieError::Missing(*hash))
        }
    }
    let mut trie = TrieUpdate::new(EMPTY_ROOT);
    for (i, value) in values.iter().enumerate() {
        trie.set(&mut NoNodes, &rlp::encode_uint(revm::primitives::U256::from(i)), value.clone())?;
    }
    Ok(trie.commit(nodes))
}
