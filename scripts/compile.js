#!/usr/bin/env node
// Compiles every contract under contracts/ with solc-js (standard JSON, pinned version) and writes
// one Truffle-format artifact per contract into oracle/artifacts/ (shipped inside the Python package,
// so workers and the indexer never need node at run time).
//
// A contract that calls external library functions (the Marketplace: ReplicaLogic, AccountLogic) cannot be
// deployed before those libraries are. Its artifact says where their addresses go, as Truffle and Hardhat do:
//   linkReferences / deployedLinkReferences   solc's own: {sourceName: {libraryName: [{start, length}]}},
//                                             byte offsets into bytecode / deployedBytecode
//   bytecode / deployedBytecode               unlinked, with Truffle's placeholder at each of those offsets:
//                                             "__ReplicaLogic" padded with "_" to 40 characters
// so @truffle/contract's link() (by name), Hardhat-style linkers and oracle.deploy_all (by offset) all link it.
//
// A contract that runs an extension by DELEGATECALL from its fallback (the Marketplace: MarketplaceExtension, see
// EXTENSIONS) gets the extension's functions, errors and NatSpec merged into its own artifact, so clients keep one
// ABI at one address; the compile fails unless the two storage layouts are equal.
//
//   node scripts/compile.js           compile and (re)write the artifacts
//   node scripts/compile.js --check   compile in memory; exit 1 if any artifact on disk differs (stale)
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'contracts');
const OUT = path.join(ROOT, 'oracle', 'artifacts');
const PINNED = '0.8.37';
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  viaIR: true,
  evmVersion: 'cancun',
  outputSelection: {
    '*': {
      '*': ['abi', 'evm.bytecode.object', 'evm.bytecode.sourceMap', 'evm.bytecode.linkReferences',
        'evm.deployedBytecode.object', 'evm.deployedBytecode.sourceMap', 'evm.deployedBytecode.linkReferences',
        'evm.methodIdentifiers', 'devdoc', 'userdoc', 'storageLayout'],
    },
  },
};

function listSources(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listSources(full));
    else if (entry.name.endsWith('.sol')) out.push(full);
  }
  return out.sort();
}

function findImport(p) {
  const candidates = [path.join(ROOT, 'node_modules', p), path.join(SRC, p), path.join(ROOT, p)];
  for (const c of candidates) {
    if (fs.existsSync(c)) return { contents: fs.readFileSync(c, 'utf8') };
  }
  return { error: `import not found: ${p} (run 'npm ci' to install @openzeppelin/contracts)` };
}

// solc leaves "__$<34 hex of keccak(fully qualified name)>$__" where a library's address goes; Truffle's
// link() looks for "__<library name>___…" (40 characters, the name cut to 38 as Truffle's own compiler does).
function truffleBytecode(object, linkReferences, what) {
  let hex = object;
  for (const libraries of Object.values(linkReferences)) {
    for (const [library, refs] of Object.entries(libraries)) {
      for (const { start, length } of refs) {
        const chars = 2 * length;
        const placeholder = ('__' + library.slice(0, chars - 2)).padEnd(chars, '_');
        hex = hex.slice(0, 2 * start) + placeholder + hex.slice(2 * (start + length));
      }
    }
  }
  if (hex.includes('$')) {
    console.error(`compile: ${what} has a library placeholder solc did not list in its linkReferences`);
    process.exit(1);
  }
  return '0x' + hex;
}

// contract -> the extension its fallback DELEGATECALLs (same storage layout, ABI merged into the contract's)
const EXTENSIONS = { Marketplace: 'MarketplaceExtension' };

const abiKey = (e) => `${e.type} ${e.name || ''}(${(e.inputs || []).map((i) => i.type).join(',')})`;

function storageOf(c) {
  return (c.storageLayout.storage || []).map((v) => `${v.label}@${v.slot}+${v.offset}:${v.type}`);
}

function mergeExtension(artifact, extension, layouts) {
  const [own, ext] = [layouts[artifact.contractName], layouts[extension.contractName]];
  if (JSON.stringify(own) !== JSON.stringify(ext)) {
    console.error(`compile: ${extension.contractName} runs on ${artifact.contractName}'s storage but their layouts ` +
      `differ:\n  ${own.join('\n  ')}\nvs\n  ${ext.join('\n  ')}\nderive both from the same base and declare no storage`);
    process.exit(1);
  }
  const have = new Set(artifact.abi.map(abiKey));
  for (const e of extension.abi) {
    if (e.type === 'constructor' || have.has(abiKey(e))) continue;
    if (e.type === 'function' && artifact.methodIdentifiers[`${e.name}(${e.inputs.map((i) => i.type).join(',')})`]) {
      console.error(`compile: ${extension.contractName}.${e.name} is shadowed by ${artifact.contractName}'s own`);
      process.exit(1);
    }
    artifact.abi.push(e);
  }
  Object.assign(artifact.methodIdentifiers, extension.methodIdentifiers);
  for (const doc of ['devdoc', 'userdoc']) {
    for (const part of ['methods', 'errors']) {
      artifact[doc][part] = { ...(extension[doc][part] || {}), ...(artifact[doc][part] || {}) };
    }
  }
}

function main() {
  const check = process.argv.includes('--check');
  const version = solc.version();
  if (!version.startsWith(PINNED + '+')) {
    console.error(`compile: solc-js ${version} is installed but ${PINNED} is pinned; run 'npm ci'`);
    process.exit(1);
  }
  const files = listSources(SRC);
  const sources = {};
  for (const f of files) sources[path.relative(ROOT, f)] = { content: fs.readFileSync(f, 'utf8') };
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) {
    const file = (e.sourceLocation || {}).file || '';
    if (e.severity === 'error' || !file.startsWith('contracts/')) continue; // only our own warnings
    console.error(e.formattedMessage);
  }
  if (errors.length) {
    for (const e of errors) console.error(e.formattedMessage);
    console.error(`compile: ${errors.length} error(s); no artifact written`);
    process.exit(1);
  }
  const artifacts = {};
  for (const [source, contracts] of Object.entries(output.contracts)) {
    if (!source.startsWith('contracts/')) continue;
    for (const [name, c] of Object.entries(contracts)) {
      if (artifacts[name]) {
        console.error(`compile: two contracts named ${name}; names must be unique`);
        process.exit(1);
      }
      artifacts[name] = {
        contractName: name,
        sourceName: source,
        abi: c.abi,
        bytecode: truffleBytecode(c.evm.bytecode.object, c.evm.bytecode.linkReferences, `${name}'s bytecode`),
        deployedBytecode: truffleBytecode(c.evm.deployedBytecode.object, c.evm.deployedBytecode.linkReferences,
          `${name}'s deployedBytecode`),
        linkReferences: c.evm.bytecode.linkReferences,
        deployedLinkReferences: c.evm.deployedBytecode.linkReferences,
        sourceMap: c.evm.bytecode.sourceMap,
        deployedSourceMap: c.evm.deployedBytecode.sourceMap,
        methodIdentifiers: c.evm.methodIdentifiers,
        devdoc: c.devdoc,
        userdoc: c.userdoc,
        compiler: { name: 'solc', version },
        networks: {},
        schemaVersion: '3.4.16',
      };
    }
  }
  const layouts = {};
  for (const [source, contracts] of Object.entries(output.contracts)) {
    for (const [name, c] of Object.entries(contracts)) if (source.startsWith('contracts/')) layouts[name] = storageOf(c);
  }
  for (const [name, ext] of Object.entries(EXTENSIONS)) mergeExtension(artifacts[name], artifacts[ext], layouts);
  const hash = crypto.createHash('sha256');
  hash.update(JSON.stringify({ version, settings: SETTINGS }));
  for (const f of Object.keys(sources).sort()) hash.update(f + '\0' + sources[f].content + '\0');
  const manifest = {
    compiler: version,
    settings: SETTINGS,
    sourcesSha256: hash.digest('hex'),
    sources: Object.keys(sources).sort(),
    contracts: Object.keys(artifacts).sort(),
  };
  const wanted = { 'manifest.json': manifest };
  for (const [name, a] of Object.entries(artifacts)) wanted[name + '.json'] = a;
  const serialize = (obj) => JSON.stringify(obj, null, 2) + '\n';

  if (check) {
    const stale = [];
    for (const [file, obj] of Object.entries(wanted)) {
      const p = path.join(OUT, file);
      if (!fs.existsSync(p) || fs.readFileSync(p, 'utf8') !== serialize(obj)) stale.push(file);
    }
    const present = fs.existsSync(OUT) ? fs.readdirSync(OUT).filter((f) => f.endsWith('.json')) : [];
    for (const f of present) if (!wanted[f]) stale.push(f + ' (no longer produced)');
    if (stale.length) {
      console.error(`compile --check: artifacts are stale against contracts/: ${stale.join(', ')}; run 'npm run compile' and commit oracle/artifacts/`);
      process.exit(1);
    }
    console.log(`compile --check: ${Object.keys(artifacts).length} artifacts up to date (solc ${version})`);
    return;
  }
  fs.mkdirSync(OUT, { recursive: true });
  for (const f of fs.readdirSync(OUT)) if (f.endsWith('.json') && !wanted[f]) fs.unlinkSync(path.join(OUT, f));
  for (const [file, obj] of Object.entries(wanted)) fs.writeFileSync(path.join(OUT, file), serialize(obj));
  console.log(`compile: wrote ${Object.keys(artifacts).length} artifacts to ${path.relative(ROOT, OUT)}/ (solc ${version})`);
}

main();
