#!/usr/bin/env node
// Runs the Cloudflare Workers tests in real workerd (`npm run test:workerd`):
// bundles the workers with esbuild into .tmp/workerd/, writes a workerd config
// and runs `workerd test`, which calls every service's `test()` handler:
//
// - buffer-smoke: the runtime smoke suite (tests/browser/smoke_suite.ts) and a
//   ctx.waitUntil check, inside workerd;
// - edge-driver: drives examples/cloudflare_worker/ ("edge", whose flush
//   fetches batches to "receiver" through a service binding) and checks that
//   every event arrived exactly once.
//
// - readme-driver: each Workers snippet of README.md (a block that imports
//   "@batchkit/buffer" and has `export default`) answers a request.
//
// Prints `workerd: N passed, M failed` and exits non-zero on any failure.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const outDir = join(root, ".tmp", "workerd", `run-${process.pid}`);
const COMPATIBILITY_DATE = "2026-01-01";
const RUN_TIMEOUT_MS = 180_000;

const workers = [
  // `tested` services have a test() handler; the others are their peers.
  {
    service: "buffer-smoke",
    entry: "tests/workerd/buffer_worker.ts",
    flags: [],
    bindings: [],
    tested: true,
  },
  {
    service: "edge-driver",
    entry: "tests/workerd/edge_driver.ts",
    flags: ["nodejs_compat"], // for node:assert in the driver only
    bindings: [["EDGE", "edge"], ["RECEIVER", "receiver"]],
    tested: true,
  },
  {
    // The example itself, bundled as a user's wrangler would: no compat flags.
    service: "edge",
    entry: "examples/cloudflare_worker/worker.ts",
    flags: [],
    bindings: [["COLLECTOR", "receiver"]],
  },
  {
    service: "receiver",
    entry: "tests/workerd/receiver.ts",
    flags: [],
    bindings: [],
  },
];

/**
 * The README's Workers snippets: ```ts/```js blocks that import the package
 * and `export default` a handler (blocks marked `ignore` or `no-run` are left out).
 */
function readmeWorkerSnippets() {
  const lines = readFileSync(join(root, "README.md"), "utf8").split("\n");
  const snippets = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|js|typescript|javascript)\b(.*)$/.exec(lines[i]);
    if (open === null) continue;
    const end = lines.indexOf("```", i + 1);
    if (end === -1) break;
    const code = lines.slice(i + 1, end).join("\n");
    if (
      !/\b(ignore|no-run)\b/.test(open[2]) && /from\s*["']@batchkit\/buffer["']/.test(code) &&
      /^export default\b/m.test(code)
    ) {
      snippets.push({ line: i + 1, code, loader: open[1].startsWith("t") ? "ts" : "js" });
    }
    i = end;
  }
  return snippets;
}

/** Resolves the package name to this repository's mod.ts, as an install would. */
const packageFromSource = {
  name: "package-from-source",
  setup(build) {
    build.onResolve({ filter: /^@batchkit\/buffer$/ }, () => ({ path: join(root, "mod.ts") }));
  },
};

const started = performance.now();
const readmeSnippets = readmeWorkerSnippets();
for (const snippet of readmeSnippets) {
  const service = `readme-line-${snippet.line}`;
  workers.push({
    service,
    source: { contents: snippet.code, loader: snippet.loader, resolveDir: root },
    flags: [],
    bindings: [],
  });
}
workers.push({
  service: "readme-driver",
  entry: "tests/workerd/readme_driver.ts",
  flags: [],
  bindings: readmeSnippets.map((s) => [`SNIPPET_LINE_${s.line}`, `readme-line-${s.line}`]),
  tested: true,
});
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

for (const worker of workers) {
  await esbuild.build({
    ...(worker.source ? { stdin: worker.source } : { entryPoints: [join(root, worker.entry)] }),
    plugins: [packageFromSource],
    outfile: join(outDir, `${worker.service}.js`),
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["node:*", "cloudflare:*"],
    logLevel: "warning",
  });
}

const capnpString = (value) => JSON.stringify(value);
const workerConfig = (worker) =>
  `(
      modules = [(name = ${capnpString(`${worker.service}.js`)}, esModule = embed ${
    capnpString(`${worker.service}.js`)
  })],
      compatibilityDate = ${capnpString(COMPATIBILITY_DATE)},
      compatibilityFlags = [${worker.flags.map(capnpString).join(", ")}],
      bindings = [${
    worker.bindings.map(([name, service]) =>
      `(name = ${capnpString(name)}, service = ${capnpString(service)})`
    ).join(", ")
  }],
    )`;
const config = `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
${
  workers.map((worker) =>
    `    (name = ${capnpString(worker.service)}, worker = ${workerConfig(worker)}),`
  ).join("\n")
}
  ],
);
`;
const configPath = join(outDir, "config.capnp");
writeFileSync(configPath, config);

// By path: node_modules/.bin/workerd may point at the older release (the workerd-old alias).
const workerdBinary = join(root, "node_modules", "workerd", "bin", "workerd");
const workerd = spawn(workerdBinary, ["test", configPath], {
  cwd: outDir,
  stdio: ["ignore", "pipe", "pipe"],
});
let output = "";
for (const stream of [workerd.stdout, workerd.stderr]) {
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    output += chunk;
    process.stdout.write(chunk);
  });
}
const timeout = setTimeout(() => workerd.kill("SIGKILL"), RUN_TIMEOUT_MS);
const exitCode = await new Promise((resolve) => workerd.on("close", (code) => resolve(code)));
clearTimeout(timeout);

const checksPassed = output.match(/^CHECK ok /gm)?.length ?? 0;
const checksFailed = output.match(/^CHECK FAIL /gm)?.length ?? 0;
// A service that failed without reporting a failed check (e.g. it did not load).
const failedServices = [...output.matchAll(/\[ FAIL \] (\S+)/g)].map((m) => m[1]);
const passedServices = [...output.matchAll(/\[ PASS \] (\S+)/g)].map((m) => m[1]);
const testedServices = workers.filter((w) => w.tested);
const unreported = testedServices.filter((w) =>
  !passedServices.includes(w.service) && !failedServices.includes(w.service)
);
let failed = checksFailed;
if (checksFailed === 0) failed += failedServices.length;
failed += unreported.length;
if (exitCode !== 0 && failed === 0) failed = 1;

rmSync(outDir, { recursive: true, force: true });
const seconds = ((performance.now() - started) / 1000).toFixed(1);
if (unreported.length > 0) {
  console.error(`workerd: no result from ${unreported.map((w) => w.service).join(", ")}`);
}
console.log(`workerd: ${checksPassed} passed, ${failed} failed (${seconds} s)`);
process.exit(failed > 0 ? 1 : 0);
