#!/usr/bin/env node
// Bundles the page's ES modules (src/app.js, viem, @tasknet/contracts) into dist/app.js with esbuild.
// @tasknet/contracts is this repository's packages/contracts, built first when its build is missing or older
// than the compiled artifacts. Serve the folder with any static file server afterwards, e.g.
//   node examples/dapp/build.mjs && python3 -m http.server -d examples/dapp -b 127.0.0.1 8000
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
const PKG = join(ROOT, "packages", "contracts");
const built = join(PKG, "dist", "index.js");
const artifacts = join(ROOT, "oracle", "artifacts", "manifest.json");

if (!existsSync(built) || statSync(built).mtimeMs < statSync(artifacts).mtimeMs) {
  execFileSync(process.execPath, [join(PKG, "scripts", "build.mjs")], { stdio: "inherit" });
}
await build({
  entryPoints: [join(HERE, "src", "app.js")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: join(HERE, "dist", "app.js"),
  alias: { "@tasknet/contracts": built },
  logLevel: "warning",
});
console.log(`build: ${join("examples", "dapp", "dist", "app.js")} (${(statSync(join(HERE, "dist", "app.js")).size / 1024).toFixed(0)} KiB)`);
