#!/usr/bin/env node
// Runs the README's JavaScript/TypeScript snippets that import the npm package
// ("@batchkit/buffer") on Node and on Bun, against the built package in npm/.
// Deno checks the same README with `deno test --doc README.md`.
//
// A fenced block is run when its language is js, javascript, ts or typescript
// and it imports "@batchkit/buffer". Blocks whose info string contains
// `ignore` (also skipped by Deno) or `no-run` are not run. Each snippet must
// exit with code 0 within 30 seconds.
//
// Usage: node scripts/check_readme.mjs [README.md]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const readmePath = resolve(process.argv[2] ?? join(root, "README.md"));
const npmDir = join(root, "npm");
const outDir = join(root, ".tmp", "readme-snippets", `run-${process.pid}`);

if (!existsSync(join(npmDir, "package.json"))) {
  console.error("check_readme: npm/ is missing; run `node scripts/build_npm.mjs` first");
  process.exit(1);
}

/** Fenced blocks with their language, info string and first line number. */
function fencedBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+|~~~+)\s*([^\s`]*)(.*)$/.exec(lines[i]);
    if (open === null) continue;
    const [, indent, fence, language, rest] = open;
    const body = [];
    let j = i + 1;
    while (j < lines.length && !lines[j].startsWith(indent + fence)) {
      body.push(lines[j].slice(indent.length));
      j++;
    }
    blocks.push({
      language: language.toLowerCase(),
      info: rest.trim(),
      line: i + 1,
      code: body.join("\n"),
    });
    i = j;
  }
  return blocks;
}

const IMPORTS_PACKAGE = /(?:from\s*|import\s*\(\s*|import\s+)["']@batchkit\/buffer["']/;
const snippets = fencedBlocks(readFileSync(readmePath, "utf8")).filter((block) =>
  ["js", "javascript", "ts", "typescript"].includes(block.language) &&
  !/\b(ignore|no-run)\b/.test(block.info) &&
  IMPORTS_PACKAGE.test(block.code)
);

rmSync(outDir, { recursive: true, force: true });
mkdirSync(join(outDir, "node_modules", "@batchkit"), { recursive: true });
symlinkSync(npmDir, join(outDir, "node_modules", "@batchkit", "buffer"), "dir");

const runtimes = [
  { name: "node", command: process.execPath, args: [] },
  { name: "bun", command: "npx", args: ["--no-install", "bun", "run"] },
];

let passed = 0;
let failed = 0;
for (const snippet of snippets) {
  const loader = snippet.language.startsWith("t") ? "ts" : "js";
  const { code } = await esbuild.transform(snippet.code, {
    loader,
    format: "esm",
    target: "node20",
    sourcefile: `${basename(readmePath)}:${snippet.line}`,
  });
  const module = `readme_line_${snippet.line}.mjs`;
  writeFileSync(join(outDir, module), code);
  // Imported, not run as the entry point: Bun serves an entry point whose
  // default export has a `fetch` method (like the Workers snippet).
  const file = join(outDir, `run_${module}`);
  writeFileSync(file, `import "./${module}";\n`);
  for (const runtime of runtimes) {
    const result = spawnSync(runtime.command, [...runtime.args, file], {
      cwd: outDir,
      encoding: "utf8",
      timeout: 30_000,
    });
    const label = `${
      basename(readmePath)
    }:${snippet.line} (${snippet.language}) on ${runtime.name}`;
    if (result.status === 0) {
      passed++;
      console.log(`check_readme: ok ${label}`);
    } else {
      failed++;
      console.error(
        `check_readme: FAIL ${label} (exit ${result.status ?? result.signal})\n` +
          `${result.stdout}${result.stderr}`,
      );
    }
  }
}
console.log(`README snippets: ${passed} passed, ${failed} failed (${snippets.length} snippets)`);
rmSync(outDir, { recursive: true, force: true });
process.exit(failed > 0 ? 1 : 0);
