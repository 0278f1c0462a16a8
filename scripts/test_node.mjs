#!/usr/bin/env node
// Runs the test suite on Node against the BUILT npm package (npm/, made by
// scripts/build_npm.mjs), then checks the package itself: publint,
// @arethetypeswrong/cli, the `npm pack` file list and the README snippets.
//
// Every tests/*.test.ts is bundled with esbuild into .tmp/node-tests/ (not part
// of the package); imports of ../mod.ts become "@batchkit/buffer", resolved
// through a node_modules link to npm/ (so the exports map is exercised), and
// imports of ../src/*.ts become the matching npm/src/*.js files.
//
// Usage: node scripts/test_node.mjs [--no-package-checks] [tests/x.test.ts ...]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const npmDir = join(root, "npm");
// One folder per run: other runs in the same working tree must not clobber it.
const outDir = join(root, ".tmp", "node-tests", `run-${process.pid}`);
/** A test that takes longer has hung: it fails instead of stalling `npm test`. */
const TEST_TIMEOUT_MS = 120_000;

/**
 * Test files that cannot run on the oldest supported Node, with the reason
 * printed when they are skipped. Keyed by file name; `minNodeMajor` is the
 * first Node major that can run it.
 */
const NEEDS_NEWER_NODE = {
  // "example.test.ts": { minNodeMajor: 22, reason: "uses Array.fromAsync in the test body" },
};

const args = process.argv.slice(2);
const packageChecks = !args.includes("--no-package-checks");
const selected = args.filter((arg) => !arg.startsWith("--"));

if (!existsSync(join(npmDir, "package.json"))) {
  console.error("test_node: npm/ is missing; run `node scripts/build_npm.mjs` first");
  process.exit(1);
}

const testsDir = join(root, "tests");
const testFiles = selected.length > 0
  ? selected.map((file) => resolve(file))
  : readdirSync(testsDir).filter((f) => f.endsWith(".test.ts")).sort().map((f) =>
    join(testsDir, f)
  );

const nodeMajor = Number(process.versions.node.split(".")[0]);
const runnable = [];
for (const file of testFiles) {
  const skip = NEEDS_NEWER_NODE[basename(file)];
  if (skip !== undefined && nodeMajor < skip.minNodeMajor) {
    console.log(`test_node: SKIP ${basename(file)} on Node ${nodeMajor}: ${skip.reason}`);
  } else {
    runnable.push(file);
  }
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(join(outDir, "node_modules", "@batchkit"), { recursive: true });
symlinkSync(npmDir, join(outDir, "node_modules", "@batchkit", "buffer"), "dir");

/** Points the library imports of the test files at the built package. */
const useBuiltPackage = {
  name: "use-built-package",
  setup(build) {
    build.onResolve({ filter: /\.ts$/ }, (args) => {
      if (args.kind === "entry-point" || !args.path.startsWith(".")) return undefined;
      const target = resolve(args.resolveDir, args.path);
      if (target === join(root, "mod.ts")) return { path: "@batchkit/buffer", external: true };
      const inSrc = relative(join(root, "src"), target);
      if (!inSrc.startsWith("..") && !inSrc.includes("..")) {
        const built = join(npmDir, "src", inSrc.replace(/\.ts$/, ".js"));
        if (!existsSync(built)) {
          return { errors: [{ text: `${args.path} is not part of the built package (${built})` }] };
        }
        return { path: "./" + relative(outDir, built).replaceAll("\\", "/"), external: true };
      }
      return undefined; // test helpers are bundled into each test file
    });
  },
};

const compiled = [];
if (runnable.length > 0) {
  await esbuild.build({
    entryPoints: runnable,
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
    plugins: [useBuiltPackage],
  });
  for (const file of runnable) compiled.push(join(outDir, basename(file).replace(/\.ts$/, ".mjs")));
}

let failed = false;
function step(name, command, commandArgs, options = {}) {
  const started = performance.now();
  const result = spawnSync(command, commandArgs, { stdio: "inherit", ...options });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) {
    failed = true;
    console.error(`test_node: FAIL ${name} (${seconds} s)`);
  } else {
    console.log(`test_node: ok ${name} (${seconds} s)`);
  }
}

if (compiled.length > 0) {
  // --test-timeout exists from Node 20.11.
  const [major, minor] = process.versions.node.split(".").map(Number);
  const timeout = major > 20 || minor >= 11 ? [`--test-timeout=${TEST_TIMEOUT_MS}`] : [];
  step(`node --test (${compiled.length} files against npm/)`, process.execPath, [
    "--test",
    "--test-reporter=spec",
    ...timeout,
    ...compiled,
  ], { cwd: outDir });
} else {
  console.log("test_node: no test files to run");
}

if (packageChecks) {
  step("publint", "npx", ["--no-install", "publint", "--strict", "npm"], { cwd: root });
  step("attw", "npx", [
    "--no-install",
    "attw",
    "--pack",
    "npm",
    "--profile",
    "esm-only",
    "--format",
    "table-flipped",
  ], { cwd: root });
  checkPackedFiles();
  step("README snippets", process.execPath, [join(root, "scripts", "check_readme.mjs")], {
    cwd: root,
  });
}

function checkPackedFiles() {
  const result = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: npmDir,
    encoding: "utf8",
  });
  if (result.status !== 0) {
    failed = true;
    console.error(`test_node: FAIL npm pack --dry-run\n${result.stderr}`);
    return;
  }
  const files = JSON.parse(result.stdout)[0].files.map((f) => f.path).sort();
  const unexpected = files.filter((path) =>
    !/^(package\.json|README\.md|LICENSE|mod\.(js|d\.ts)|src\/[a-z_]+\.(js|d\.ts))$/.test(path)
  );
  const missing = ["package.json", "README.md", "LICENSE", "mod.js", "mod.d.ts"].filter((path) =>
    !files.includes(path)
  );
  if (unexpected.length > 0 || missing.length > 0) {
    failed = true;
    console.error(
      `test_node: FAIL npm pack file list: unexpected ${JSON.stringify(unexpected)}, ` +
        `missing ${JSON.stringify(missing)}`,
    );
  } else {
    console.log(`test_node: ok npm pack lists ${files.length} files: ${files.join(" ")}`);
  }
}

rmSync(outDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
