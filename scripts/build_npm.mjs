#!/usr/bin/env node
// Builds the npm package into npm/: ESM JavaScript and .d.ts compiled by tsc
// from the same sources Deno and JSR use, a package.json derived from
// deno.json, README.md and LICENSE. Usage: node scripts/build_npm.mjs
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const finalDir = join(root, "npm");
const scratch = join(root, ".tmp", "build_npm", `run-${process.pid}`);
// Built aside and moved into place at the end, so a run of the tests in the
// same working tree never sees a half-written npm/.
const outDir = join(scratch, "npm");

const denoJson = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));
const rootPackage = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });

// tsc 7 takes its options from a tsconfig; keep it out of the repo so editors
// and `deno check` are not affected by it.
const tsconfig = {
  compilerOptions: {
    target: "ES2022", // Node 20 runs ES2022 natively (class fields, #private, top-level await).
    lib: ["ES2022", "ESNext.Disposable", "DOM"],
    module: "ESNext",
    moduleResolution: "Bundler",
    rewriteRelativeImportExtensions: true,
    declaration: true,
    strict: true,
    skipLibCheck: true,
    types: [],
    rootDir: root,
    outDir,
    newLine: "lf",
    removeComments: false,
  },
  files: [join(root, "mod.ts")],
};
const tsconfigPath = join(scratch, "tsconfig.json");
writeFileSync(tsconfigPath, JSON.stringify(tsconfig, null, 2));

const tsc = spawnSync("npx", ["--no-install", "tsc", "-p", tsconfigPath], {
  cwd: root,
  stdio: "inherit",
});
if (tsc.status !== 0) {
  console.error("build_npm: tsc failed");
  process.exit(1);
}

// tsc rewrites ".ts" specifiers in the JavaScript it emits but keeps them in
// declarations, where consumers' resolvers expect ".js".
for (const file of readdirSync(outDir, { recursive: true })) {
  if (!String(file).endsWith(".d.ts")) continue;
  const path = join(outDir, String(file));
  const text = readFileSync(path, "utf8");
  const rewritten = text.replace(
    /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g,
    "$1$2.js$3",
  );
  if (rewritten !== text) writeFileSync(path, rewritten);
}

const packageJson = {
  name: denoJson.name,
  version: denoJson.version,
  description: rootPackage.description,
  license: denoJson.license ?? rootPackage.license,
  type: "module",
  exports: {
    ".": {
      types: "./mod.d.ts",
      default: "./mod.js",
    },
  },
  main: "./mod.js",
  types: "./mod.d.ts",
  files: ["mod.js", "mod.d.ts", "src/**/*.js", "src/**/*.d.ts"],
  sideEffects: false,
  engines: { node: ">=20" },
  keywords: [
    "batch",
    "batching",
    "buffer",
    "backpressure",
    "edge",
    "cloudflare-workers",
    "deno",
    "bun",
  ],
};
for (const field of ["repository", "homepage", "bugs", "author"]) {
  if (rootPackage[field] !== undefined) packageJson[field] = rootPackage[field];
}
writeFileSync(join(outDir, "package.json"), JSON.stringify(packageJson, null, 2) + "\n");
copyFileSync(join(root, "README.md"), join(outDir, "README.md"));
copyFileSync(join(root, "LICENSE"), join(outDir, "LICENSE"));

rmSync(finalDir, { recursive: true, force: true });
renameSync(outDir, finalDir);
rmSync(scratch, { recursive: true, force: true });
console.log(`build_npm: ${packageJson.name}@${packageJson.version} built in npm/`);
