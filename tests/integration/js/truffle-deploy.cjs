#!/usr/bin/env node
// Deploys the Tasknet marketplace with @truffle/contract from Tasknet's artifacts, as a Truffle user would.
// Run by tests/integration/test_artifacts_js.py; prints one JSON document on stdout.
//
//   node truffle-deploy.cjs link RPC_URL ARTIFACTS_DIR
//       the shipped (chain-agnostic) artifacts: deploy the token, the registry and both libraries, check that
//       Marketplace.new() refuses to run unlinked, link() the libraries, then deploy the marketplace
//   node truffle-deploy.cjs network RPC_URL ARTIFACTS_DIR SHIPPED_DIR
//       the artifacts a deployment wrote (networks[chainId] with address and links): load the deployed
//       marketplace, deploy a second one with new() and no link() of ours, and a third from the shipped
//       (unlinked) artifact linked to that deployment's libraries by link(networks[chainId].links)
'use strict';
const fs = require('fs');
const path = require('path');
const contract = require('@truffle/contract');

const [mode, rpcUrl, dir, shippedDir] = process.argv.slice(2);

// a legacy (web3 1.x style) provider over plain fetch, so this script needs nothing beyond @truffle/contract
const provider = {
  send(payload, callback) {
    fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) })
      .then((r) => r.json())
      .then((body) => callback(null, body), callback);
  },
};
provider.sendAsync = provider.send;

function load(name, from, folder = dir) {
  const C = contract(JSON.parse(fs.readFileSync(path.join(folder, `${name}.json`), 'utf8')));
  C.setProvider(provider);
  C.defaults({ from });
  return C;
}

async function rpc(method, params = []) {
  const r = await fetch(rpcUrl, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return (await r.json()).result;
}

async function linkMode(from) {
  const [Token, Registry, Replica, Account, Marketplace] =
    ['TestToken', 'MarketplaceRegistry', 'ReplicaLogic', 'AccountLogic', 'Marketplace'].map((n) => load(n, from));
  const token = await Token.new();
  const registry = await Registry.new();
  let unlinked = '';
  try {
    await Marketplace.new(token.address, registry.address, from);
  } catch (e) {
    unlinked = e.message;
  }
  const replica = await Replica.new();
  const account = await Account.new();
  await Marketplace.detectNetwork(); // link() files the addresses under the current network
  Marketplace.link(replica); // Truffle's own linking: by library name, into its "__Name___" placeholders
  Marketplace.link(account);
  const market = await Marketplace.new(token.address, registry.address, from);
  return {
    unlinkedError: unlinked,
    token: token.address, registry: registry.address,
    libraries: { ReplicaLogic: replica.address, AccountLogic: account.address },
    marketplace: market.address, owner: await market.owner(),
  };
}

async function networkMode(from) {
  const Marketplace = load('Marketplace', from);
  const deployed = await Marketplace.deployed(); // networks[chainId].address
  const token = await deployed.token();
  const registry = await deployed.registry();
  const second = await Marketplace.new(token, registry, from);
  const Unlinked = load('Marketplace', from, shippedDir);
  await Unlinked.detectNetwork(); // link() files the addresses under the current network
  Unlinked.link(Marketplace.links); // Truffle's link({name: address}) takes networks[chainId].links as it is
  const third = await Unlinked.new(token, registry, from);
  return { deployed: deployed.address, links: Marketplace.links, marketplace: second.address,
           owner: await second.owner(), relinked: third.address };
}

async function main() {
  const [from] = await rpc('eth_accounts');
  const out = mode === 'link' ? await linkMode(from) : await networkMode(from);
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0)); // web3 1.x keeps timers alive
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
