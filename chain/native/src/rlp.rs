//! Strict RLP: decoding of one item (canonical encodings only) and the two encoders the engine needs.

use revm::primitives::U256;

/// A decoded RLP item: a byte string or a list (its payload, to split with [`list`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Bytes(&'a [u8]),
    List(&'a [u8]),
}

/// Why bytes are not the RLP expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlpError(pub &'static str);

pub type Result<T> = std::result::Result<T, RlpError>;

fn length(bytes: &[u8]) -> Result<usize> {
    if bytes.is_empty() || bytes[0] == 0 || bytes.len() > 8 {
        return Err(RlpError("non-canonical RLP length"));
    }
    let n = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let n = usize::try_from(n).map_err(|_| RlpError("RLP length too large"))?;
    if n < 56 {
        return Err(RlpError("non-canonical RLP length"));
    }
    Ok(n)
}

/// The first item of `buf` and the bytes after it.
pub fn decode(buf: &[u8]) -> Result<(Item<'_>, &[u8])> {
    let first = *buf.first().ok_or(RlpError("empty RLP"))?;
    let (is_list, header, len) = match first {
        0x00..=0x7f => return Ok((Item::Bytes(&buf[..1]), &buf[1..])),
        0x80..=0xb7 => (false, 1, usize::from(first - 0x80)),
        0xb8..=0xbf => {
            let n = usize::from(first - 0xb7);
            (false, 1 + n, length(buf.get(1..1 + n).ok_or(RlpError("truncated RLP"))?)?)
        }
        0xc0..=0xf7 => (true, 1, usize::from(first - 0xc0)),
        0xf8..=0xff => {
            let n = usize::from(first - 0xf7);
            (true, 1 + n, length(buf.get(1..1 + n).ok_or(RlpError("truncated RLP"))?)?)
        }
    };
    let end = header.checked_add(len).ok_or(RlpError("RLP length too large"))?;
    let payload = buf.get(header..end).ok_or(RlpError("truncated RLP"))?;
    if !is_list && len == 1 && payload[0] < 0x80 {
        return Err(RlpError("non-canonical RLP single byte"));
    }
    let item = if is_list { Item::List(payload) } else { Item::Bytes(payload) };
    Ok((item, &buf[end..]))
}

/// `buf` as exactly one item.
pub fn decode_exact(buf: &[u8]) -> Result<Item<'_>> {
    let (item, rest) = decode(buf)?;
    if !rest.is_empty() {
        return Err(RlpError("trailing bytes after RLP"));
    }
    Ok(item)
}

/// The items of a list payload, each with its own encoding.
pub fn list(mut payload: &[u8]) -> Result<Vec<(Item<'_>, &[u8])>> {
    let mut items = Vec::new();
    while !payload.is_empty() {
        let (item, rest) = decode(payload)?;
        items.push((item, &payload[..payload.len() - rest.len()]));
        payload = rest;
    }
    Ok(items)
}

impl<'a> Item<'a> {
    pub fn bytes(self) -> Result<&'a [u8]> {
        match self {
            Item::Bytes(b) => Ok(b),
            Item::List(_) => Err(RlpError("expected an RLP string, found a list")),
        }
    }

    pub fn items(self) -> Result<Vec<(Item<'a>, &'a [u8])>> {
        match self {
            Item::List(p) => list(p),
            Item::Bytes(_) => Err(RlpError("expected an RLP list, found a string")),
        }
    }

    /// A big-endian unsigned integer without leading zeros, at most 32 bytes.
    pub fn uint(self) -> Result<U256> {
        let b = self.bytes()?;
        if b.len() > 32 || b.first() == Some(&0) {
            return Err(RlpError("non-canonical RLP integer"));
        }
        Ok(U256::from_be_slice(b))
    }

    pub fn u64(self) -> Result<u64> {
        u64::try_from(self.uint()?).map_err(|_| RlpError("RLP integer does not fit 64 bits"))
    }
}

fn header(out: &mut Vec<u8>, short: u8, len: usize) {
    if len < 56 {
        out.push(short + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        out.push(short + 55 + (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

/// The encoding of the byte string `data`.
pub fn encode_bytes(data: &[u8]) -> Vec<u8> {
    if data.len() == 1 && data[0] < 0x80 {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len() + 9);
    header(&mut out, 0x80, data.len());
    out.extend_from_slice(data);
    out
}

/// The encoding of an integer (big-endian, no leading zeros).
pub fn encode_uint(value: U256) -> Vec<u8> {
    let be = value.to_be_bytes::<32>();
    let skip = be.iter().take_while(|&&b| b == 0).count();
    encode_bytes(&be[skip..])
}

/// The encoding of a list whose items' encodings, concatenated, are `payload`.
pub fn encode_list(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    header(&mut out, 0xc0, payload.len());
    out.extend_from_slice(payload);
    out
}
