// The same ethers v6 checks against every endpoint (a Shancheng dev node and anvil): deploy, send, wait, call,
// estimateGas with an access list, eth_createAccessList, provider.on("pending") over WebSocket, and an underfunded
// send refused as INSUFFICIENT_FUNDS. Run by tests/nodes/rpc/test_ethers_suite.py, which starts the endpoints and
// passes them in the environment:
//   SHANCHENG_ETHERS_ENDPOINTS  JSON [{name, http, ws, privateKey}]
//   SHANCHENG_ETHERS_ARTIFACTS  path of a JSON file {ContractName: {abi, bytecode}} (AccessLists.sol)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import { ethers } from "ethers";

const ENDPOINTS = JSON.parse(process.env.SHANCHENG_ETHERS_ENDPOINTS ?? "[]");
const ARTIFACTS = JSON.parse(readFileSync(process.env.SHANCHENG_ETHERS_ARTIFACTS ?? "/nonexistent", "utf8"));
const WATCHED = "0x" + "77".repeat(20);
const WAIT_MS = 30_000;

test("the suite was given endpoints", () => {
  assert.ok(ENDPOINTS.length >= 2, "set SHANCHENG_ETHERS_ENDPOINTS (run it through pytest)");
});

for (const endpoint of ENDPOINTS) {
  describe(endpoint.name, () => {
    let provider, wallet, target, caller;

    before(async () => {
      // no request cache: two nonce queries 250 ms apart must both reach the node (it mines in between)
      provider = new ethers.JsonRpcProvider(endpoint.http, undefined, { pollingInterval: 50, cacheTimeout: -1 });
      wallet = new ethers.Wallet(endpoint.privateKey, provider);
    });

    after(() => provider.destroy());

    test("deploys contracts and waits for them", async () => {
      const Target = new ethers.ContractFactory(ARTIFACTS.AccessTarget.abi, ARTIFACTS.AccessTarget.bytecode, wallet);
      target = await Target.deploy();
      await target.waitForDeployment();
      const Caller = new ethers.ContractFactory(ARTIFACTS.AccessCaller.abi, ARTIFACTS.AccessCaller.bytecode, wallet);
      caller = await Caller.deploy(await target.getAddress());
      await caller.waitForDeployment();
      assert.equal(await caller.getFunction("target")(), await target.getAddress());
      assert.notEqual(await provider.getCode(await caller.getAddress()), "0x");
    });

    test("sends a transaction, waits for its receipt and reads the new state", async () => {
      const tx = await caller.poke(1, WATCHED);
      const receipt = await tx.wait(1, WAIT_MS);
      assert.equal(receipt.status, 1);
      assert.equal(receipt.hash, tx.hash);
      assert.equal(await caller.calls(), 1n);
      assert.equal(await target.count(), 1n);
    });

    test("estimates a type-1 transaction with an access list so that it succeeds", async () => {
      const accessList = [{ address: await caller.getAddress(), storageKeys: [ethers.ZeroHash] }];
      const gasLimit = await caller.poke.estimateGas(2, WATCHED, { type: 1, accessList });
      const plain = await caller.poke.estimateGas(2, WATCHED);
      assert.equal(gasLimit, plain + 2300n, "the list costs 2,400 + 1,900 and its warm slot saves 2,000");
      const receipt = await (await caller.poke(2, WATCHED, { type: 1, accessList, gasLimit })).wait(1, WAIT_MS);
      assert.equal(receipt.status, 1);
      assert.ok(receipt.gasUsed <= gasLimit);
    });

    test("creates the access list a call needs", async () => {
      const request = await caller.poke.populateTransaction(3, WATCHED);
      const answer = await provider.send("eth_createAccessList", [{ ...request, from: wallet.address }, "latest"]);
      const listed = new Map(answer.accessList.map((e) => [e.address.toLowerCase(), e.storageKeys]));
      const marks3 = ethers.solidityPackedKeccak256(["uint256", "uint256"], [3, 1]);
      assert.deepEqual([...listed.get((await caller.getAddress()).toLowerCase())].sort(),
                       [ethers.ZeroHash, marks3].sort());
      assert.deepEqual(listed.get((await target.getAddress()).toLowerCase()), [ethers.ZeroHash]);
      assert.deepEqual(listed.get(WATCHED), []);
      assert.equal(listed.size, 3, "neither the sender nor the sha256 precompile is listed");
      const gasLimit = BigInt(answer.gasUsed) * 64n / 63n + 2300n;
      const accessList = answer.accessList;
      const receipt = await (await caller.poke(3, WATCHED, { type: 1, accessList, gasLimit })).wait(1, WAIT_MS);
      assert.equal(receipt.status, 1);
      assert.equal(receipt.gasUsed, BigInt(answer.gasUsed));
    });

    test("hears pending transactions over WebSocket", async () => {
      const socket = new ethers.WebSocketProvider(endpoint.ws);
      try {
        const heard = new Set();
        let wanted = null;
        let done;
        const seen = new Promise((resolve) => { done = resolve; });
        await socket.on("pending", (hash) => {
          heard.add(hash);
          if (wanted !== null && heard.has(wanted)) done();
        });
        await socket.send("eth_blockNumber", []); // the subscription is installed once on() resolves
        const tx = await wallet.sendTransaction({ to: WATCHED, value: 0n });
        wanted = tx.hash;
        if (heard.has(wanted)) done();
        let timer;
        const timeout = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no pending event for ${wanted}`)), WAIT_MS);
        });
        await Promise.race([seen, timeout]).finally(() => clearTimeout(timer));
        await tx.wait(1, WAIT_MS);
      } finally {
        await socket.destroy();
      }
    });

    test("refuses a send the sender cannot pay as INSUFFICIENT_FUNDS", async () => {
      const balance = await provider.getBalance(wallet.address);
      await assert.rejects(wallet.sendTransaction({ to: WATCHED, value: balance + 1n }),
                           (err) => err.code === "INSUFFICIENT_FUNDS" || assert.fail(err));
      await assert.rejects(wallet.sendTransaction({ to: WATCHED, value: balance + 1n, gasLimit: 21_000n }),
                           (err) => err.code === "INSUFFICIENT_FUNDS" || assert.fail(err));
    });
  });
}
