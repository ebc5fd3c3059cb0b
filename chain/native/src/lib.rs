//! `shancheng_evm`: Shancheng Chain's native execution engine (revm with the GM precompile) for Python.
//!
//! Built with maturin into an abi3 extension module (CPython >= 3.11); `shancheng.chain.native` loads it.
//! Modules: `gm` (the precompile at 0x100a), `rlp`, `mpt` (reading py-evm's tries), `db` (revm's database
//! over py-evm's state through a Python `get(key)`), `tx` (raw transactions, senders), `block` (one block),
//! `call` (one eth_call / estimate attempt).

mod block;
mod call;
mod db;
mod gm;
mod mpt;
mod rlp;
mod roots;
mod trie_update;
mod tx;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList};
use revm::context_interface::transaction::{AccessList, AccessListItem};
use revm::handler::precompile_output_to_interpreter_result;
use revm::precompile::PrecompileOutput;
use revm::primitives::{Address, B256, U256};

/// The largest calldata the Python entry points accept (the block gas limit bounds real calldata far below).
const MAX_INPUT: usize = 16 * 1024 * 1024;

/// Run the GM precompile (0x100a) on `data` with `gas` as revm runs it inside a call frame:
/// (success, gas used, output). A failure uses all of `gas` and returns no output.
#[pyfunction]
fn gm_precompile<'py>(py: Python<'py>, data: &[u8], gas: u64) -> PyResult<(bool, u64, Bound<'py, PyBytes>)> {
    if data.len() > MAX_INPUT {
        return Err(PyValueError::new_err(format!("calldata is longer than {MAX_INPUT} bytes")));
    }
    let output = PrecompileOutput::from_eth_result(gm::gm_run(data, gas), 0);
    let result = precompile_output_to_interpreter_result(output, gas);
    let used = gas - result.gas.remaining();
    Ok((result.is_ok(), used, PyBytes::new(py, &result.output)))
}

/// A 256-bit integer as a Python int.
fn py_int(py: Python<'_>, value: U256) -> PyResult<Bound<'_, PyAny>> {
    if let Ok(small) = u128::try_from(value) {
        return Ok(small.into_pyobject(py)?.into_any());
    }
    py.get_type::<PyInt>().call_method1("from_bytes", (PyBytes::new(py, &value.to_be_bytes::<32>()), "big"))
}

/// Decode and check a raw transaction as a block of gas limit `block_gas_limit` on chain `chain_id` would, all but
/// the recovery of its sender: (hash, signing hash, 65-byte recoverable signature, nonce, gas limit, max fee per
/// gas, value), or ValueError with the reason it is invalid.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn decode_unrecovered<'py>(
    py: Python<'py>,
    raw: &[u8],
    chain_id: u64,
    block_gas_limit: u64,
) -> PyResult<(
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    u64,
    u64,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
)> {
    let (tx, signature) =
        tx::decode_unrecovered(raw, chain_id, block_gas_limit).map_err(|e| PyValueError::new_err(e.0))?;
    Ok((
        PyBytes::new(py, tx.hash.as_slice()),
        PyBytes::new(py, signature.sighash.as_slice()),
        PyBytes::new(py, &signature.to_bytes()),
        tx.nonce,
        tx.gas_limit,
        py_int(py, tx.max_fee)?,
        py_int(py, tx.value)?,
    ))
}

fn fixed<const N: usize>(what: &str, bytes: &[u8]) -> PyResult<[u8; N]> {
    bytes.try_into().map_err(|_| PyValueError::new_err(format!("{what} must be {N} bytes")))
}

fn tx_dict<'py>(py: Python<'py>, result: &block::TxResult) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let tx = match result {
        block::TxResult::Invalid(reason) => {
            d.set_item("kind", "invalid")?;
            d.set_item("reason", reason)?;
            return Ok(d);
        }
        block::TxResult::LeftOut { tx, why, reason } => {
            let kind = match why {
                block::LeftOut::NotMember => "not_member",
                block::LeftOut::BadNonce => "bad_nonce",
                block::LeftOut::NoRoom => "no_room",
                block::LeftOut::Refused(refusal) => {
                    let (what, needed, balance, message) = match refusal {
                        block::Refusal::Gas(needed, balance) => ("gas", needed.as_str(), Some(*balance), ""),
                        block::Refusal::Value(needed, balance) => ("value", needed.as_str(), Some(*balance), ""),
                        block::Refusal::MaxFee => ("max_fee", "", None, ""),
                        block::Refusal::Evm(message) => ("evm", "", None, message.as_str()),
                    };
                    let balance = balance.map(|b| py_int(py, b)).transpose()?;
                    d.set_item("refusal", (what, needed, balance, message))?;
                    "refused"
                }
            };
            d.set_item("kind", kind)?;
            d.set_item("reason", reason)?;
            tx
        }
        block::TxResult::Included(inc) => {
            d.set_item("kind", "included")?;
            d.set_item("success", inc.success)?;
            d.set_item("gas_used", inc.gas_used)?;
            d.set_item("cumulative_gas_used", inc.cumulative_gas_used)?;
            d.set_item("created", inc.created.map(|a| PyBytes::new(py, a.as_slice())))?;
            let logs = PyList::empty(py);
            for log in &inc.logs {
                let topics: Vec<Bound<'py, PyBytes>> =
                    log.topics().iter().map(|t| PyBytes::new(py, t.as_slice())).collect();
                logs.append((PyBytes::new(py, log.address.as_slice()), topics, PyBytes::new(py, &log.data.data)))?;
            }
            d.set_item("logs", logs)?;
            d.set_item("bloom", PyBytes::new(py, &roots::logs_bloom(&inc.logs)))?;
            &inc.tx
        }
    };
    d.set_item("hash", PyBytes::new(py, tx.hash.as_slice()))?;
    d.set_item("sender", PyBytes::new(py, tx.sender.as_slice()))?;
    d.set_item("gas_limit", tx.gas_limit)?;
    Ok(d)
}

/// Execute one block natively on py-evm's committed state.
///
/// `get(key: bytes) -> bytes | None` reads the committed database (trie nodes and code by hash);
/// `state_root` is the parent's; `block_hash(number) -> bytes` the hash of an ancestor (asked only by
/// BLOCKHASH, for the last 256). Returns a dict:
/// `txs` (one dict per input: `kind` included / invalid / not_member / bad_nonce / no_room / refused, for
/// refused ones `refusal` (what: gas / value / max_fee / evm, the cost in decimal, the balance, revm's
/// message), for included ones `success`, `gas_used`, `cumulative_gas_used`, `bloom` (the receipt's), `logs` [(address, [topics],
/// data)], `created`), `gas_used`, the roots, `bloom`, `nodes` (every trie node and code py-evm's engine
/// writes for the block: hash -> bytes) and `writes`: {address: (None | (nonce, balance, code_hash),
/// code | None, storage_cleared, {slot: value})}. With `governance`, senders must be accounts of active
/// members of it. `senders` (one per transaction), when given, are not recovered again: transactions a
/// mempool checked.
#[pyfunction]
#[pyo3(signature = (get, state_root, *, chain_id, number, timestamp, coinbase, gas_limit, prevrandao, block_hash, txs, governance=None, senders=None))]
#[allow(clippy::too_many_arguments)]
fn execute_block<'py>(
    py: Python<'py>,
    get: Py<PyAny>,
    state_root: &[u8],
    chain_id: u64,
    number: u64,
    timestamp: u64,
    coinbase: &[u8],
    gas_limit: u64,
    prevrandao: &[u8],
    block_hash: Py<PyAny>,
    txs: Vec<Vec<u8>>,
    governance: Option<Vec<u8>>,
    senders: Option<Vec<Vec<u8>>>,
) -> PyResult<Bound<'py, PyDict>> {
    let senders = senders
        .map(|all| all.iter().map(|s| fixed::<20>("a sender", s).map(Address::from)).collect::<PyResult<Vec<_>>>())
        .transpose()?;
    if senders.as_ref().is_some_and(|s| s.len() != txs.len()) {
        return Err(PyValueError::new_err("one sender per transaction"));
    }
    let input = block::BlockInput {
        chain_id,
        number,
        timestamp,
        coinbase: Address::from(fixed::<20>("coinbase", coinbase)?),
        gas_limit,
        prevrandao: B256::from(fixed::<32>("prevrandao", prevrandao)?),
        governance: governance.map(|g| fixed::<20>("governance", &g).map(Address::from)).transpose()?,
    };
    let root = B256::from(fixed::<32>("state_root", state_root)?);
    // the GIL is released while the block executes; reads of the database take it back one at a time
    let result = py
        .detach(move || -> Result<block::BlockResult, String> {
            let db = db::PyStateDb::new(get, root, block_hash);
            block::execute(&db, &input, &txs, senders.as_deref()).map_err(|e| e.0)
        })
        .map_err(PyRuntimeError::new_err)?;
    let roots = &result.roots;
    let out = PyDict::new(py);
    out.set_item("state_root", PyBytes::new(py, roots.state_root.as_slice()))?;
    out.set_item("transactions_root", PyBytes::new(py, roots.transactions_root.as_slice()))?;
    out.set_item("receipts_root", PyBytes::new(py, roots.receipts_root.as_slice()))?;
    out.set_item("bloom", PyBytes::new(py, &roots.bloom))?;
    let nodes = PyDict::new(py);
    for (hash, encoded) in &roots.nodes {
        nodes.set_item(PyBytes::new(py, hash.as_slice()), PyBytes::new(py, encoded))?;
    }
    out.set_item("nodes", nodes)?;
    let txs = PyList::empty(py);
    for tx in &result.txs {
        txs.append(tx_dict(py, tx)?)?;
    }
    out.set_item("txs", txs)?;
    out.set_item("gas_used", result.gas_used)?;
    let writes = PyDict::new(py);
    for (address, w) in &result.writes {
        let info = match w.info {
            Some((nonce, balance, code_hash)) => {
                Some((nonce, py_int(py, balance)?, PyBytes::new(py, code_hash.as_slice())))
            }
            None => None,
        };
        let storage = PyDict::new(py);
        for (slot, value) in &w.storage {
            storage.set_item(py_int(py, *slot)?, py_int(py, *value)?)?;
        }
        let code = w.code.as_ref().map(|c| PyBytes::new(py, c));
        writes.set_item(PyBytes::new(py, address.as_slice()), (info, code, w.storage_cleared, storage))?;
    }
    out.set_item("writes", writes)?;
    Ok(out)
}

/// One eth_call / eth_estimateGas attempt on the committed state `state_root`, in the context of block `number`
/// (see `call.rs`): (status, output, gas used, refund, message); status is "success", "revert", "halt" (the
/// message says why; "out of gas" for every out-of-gas halt) or "invalid" (the transaction is not run at this
/// gas: the message is revm's). `value` is 32 bytes big-endian; `access_list` [(address, [slot (32 bytes)])],
/// given for an EIP-2930 call.
#[pyfunction]
#[pyo3(signature = (get, state_root, *, chain_id, number, timestamp, coinbase, gas_limit, prevrandao, block_hash, caller, to, value, data, gas, access_list=None))]
#[allow(clippy::too_many_arguments)]
fn call_transaction<'py>(
    py: Python<'py>,
    get: Py<PyAny>,
    state_root: &[u8],
    chain_id: u64,
    number: u64,
    timestamp: u64,
    coinbase: &[u8],
    gas_limit: u64,
    prevrandao: &[u8],
    block_hash: Py<PyAny>,
    caller: &[u8],
    to: Option<Vec<u8>>,
    value: &[u8],
    data: Vec<u8>,
    gas: u64,
    access_list: Option<Vec<(Vec<u8>, Vec<Vec<u8>>)>>,
) -> PyResult<(&'static str, Bound<'py, PyBytes>, u64, u64, String)> {
    if data.len() > MAX_INPUT {
        return Err(PyValueError::new_err(format!("calldata is longer than {MAX_INPUT} bytes")));
    }
    let access_list = access_list
        .map(|items| {
            items
                .iter()
                .map(|(address, slots)| {
                    Ok(AccessListItem {
                        address: Address::from(fixed::<20>("an access list address", address)?),
                        storage_keys: slots
                            .iter()
                            .map(|s| fixed::<32>("an access list slot", s).map(B256::from))
                            .collect::<PyResult<Vec<_>>>()?,
                    })
                })
                .collect::<PyResult<Vec<_>>>()
                .map(AccessList)
        })
        .transpose()?;
    let tx = call::CallTx {
        caller: Address::from(fixed::<20>("caller", caller)?),
        to: to.map(|t| fixed::<20>("to", &t).map(Address::from)).transpose()?,
        value: U256::from_be_bytes(fixed::<32>("value", value)?),
        data: data.into(),
        gas,
        access_list,
    };
    let input = block::BlockInput {
        chain_id,
        number,
        timestamp,
        coinbase: Address::from(fixed::<20>("coinbase", coinbase)?),
        gas_limit,
        prevrandao: B256::from(fixed::<32>("prevrandao", prevrandao)?),
        governance: None,
    };
    let root = B256::from(fixed::<32>("state_root", state_root)?);
    let outcome = py
        .detach(move || {
            let db = db::PyStateDb::new(get, root, block_hash);
            call::run(&db, &input, &tx).map_err(|e| e.0)
        })
        .map_err(PyRuntimeError::new_err)?;
    Ok(match outcome {
        call::CallOutcome::Success { output, gas_used, refunded } => {
            ("success", PyBytes::new(py, &output), gas_used, refunded, String::new())
        }
        call::CallOutcome::Revert { output, gas_used } => {
            ("revert", PyBytes::new(py, &output), gas_used, 0, String::new())
        }
        call::CallOutcome::Halt { reason, gas_used } => ("halt", PyBytes::new(py, &[]), gas_used, 0, reason),
        call::CallOutcome::Invalid(message) => ("invalid", PyBytes::new(py, &[]), 0, 0, message),
    })
}

#[pymodule]
fn shancheng_evm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("GM_PRECOMPILE_ADDRESS", PyBytes::new(m.py(), gm::GM_ADDRESS.as_slice()))?;
    m.add_function(wrap_pyfunction!(gm_precompile, m)?)?;
    m.add_function(wrap_pyfunction!(execute_block, m)?)?;
    m.add_function(wrap_pyfunction!(decode_unrecovered, m)?)?;
    m.add_function(wrap_pyfunction!(call_transaction, m)?)?;
    Ok(())
}
