#!/usr/bin/env node
// Runs the Cloudflare Workers tests in real workerd (`npm run test:workerd`),
// in two releases: the current one (node_modules/workerd) and an older one
// (node_modules/workerd-old, 1.20260730.1, as shipped by Miniflare 4), which
// refuses I/O objects such as an AbortController made at module scope
// ("Disallowed operation called within global scope").
//
// For each release:
//
// 1. `workerd test` on a generated config, which calls every service's
//    `test()` handler:
//    - buffer-smoke: the runtime smoke suite (tests/browser/smoke_suite.ts)
//      and a ctx.waitUntil check, so the package must load;
//    - edge-driver: drives examples/cloudflare_worker_per_request/ ("edge",
//      whose flush fetches batches to "receiver" through a service binding)
//      and checks that every event arrived exactly once;
//    - readme-driver: each Workers snippet of README.md (see
//      readmeWorkerSnippets in bundle.mjs) answers a request; a snippet's
//      `COLLECTOR` binding is a collector (tests/workerd/collector.ts).
// 2. `workerd serve` of the shared-buffer example (examples/cloudflare_worker/)
//    and its collector on loopback ports, driven from Node by shared_e2e.mjs:
//    a burst and a trickle of one-event requests, exactly-once delivery, the
//    flush count, the trickle's waits and the runtime's warnings.
//
// Prints a `E2E ...` figures line per release, then `workerd: N passed, M failed`,
// and exits non-zero on any failure. Every step is bounded in time.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { bundleWorker, COMPATIBILITY_DATE, readmeWorkerSnippets, root } from "./bundle.mjs";
import { printChecks, runSharedE2E } from "./shared_e2e.mjs";

const outDir = join(root, ".tmp", "workerd", `run-${process.pid}`);
const TEST_TIMEOUT_MS = 120_000;
const LISTEN_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

// By path: node_modules/.bin/workerd may point at either release.
const releases = [
  { name: "workerd", binary: join(root, "node_modules", "workerd", "bin", "workerd") },
  { name: "workerd-old", binary: join(root, "node_modules", "workerd-old", "bin", "workerd") },
];

const testWorkers = [
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
    entry: "examples/cloudflare_worker_per_request/worker.ts",
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
const readmeSnippets = readmeWorkerSnippets();
for (const snippet of readmeSnippets) {
  testWorkers.push({
    service: `readme-line-${snippet.line}`,
    source: { contents: snippet.code, loader: snippet.loader, resolveDir: root },
    flags: [],
    bindings: [["COLLECTOR", "readme-collector"]], // for snippets whose flush POSTs /batch
  });
}
testWorkers.push({
  service: "readme-collector",
  entry: "tests/workerd/collector.ts",
  flags: [],
  bindings: [],
});
testWorkers.push({
  service: "readme-driver",
  entry: "tests/workerd/readme_driver.ts",
  flags: [],
  bindings: readmeSnippets.map((s) => [`SNIPPET_LINE_${s.line}`, `readme-line-${s.line}`]),
  tested: true,
});

const serveWorkers = [
  {
    service: "shared-example",
    entry: "examples/cloudflare_worker/worker.ts",
    flags: [],
    bindings: [["COLLECTOR", "collector"]],
  },
  { service: "collector", entry: "tests/workerd/collector.ts", flags: [], bindings: [] },
];

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

/** A workerd config; each socket listens on a free loopback port, reported on the control fd. */
function capnpConfig(workers, sockets = []) {
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
${
    workers.map((worker) =>
      `    (name = ${capnpString(worker.service)}, worker = ${workerConfig(worker)}),`
    ).join("\n")
  }
  ],
  sockets = [
${
    sockets.map((service) =>
      `    (name = ${capnpString(service)}, address = "127.0.0.1:0", http = (), service = ${
        capnpString(service)
      }),`
    ).join("\n")
  }
  ],
);
`;
}

/**
 * Spawns workerd; collects its stdout and stderr, and echoes up to `maxEcho`
 * lines with a prefix (a failing end-to-end run can log thousands).
 */
function spawnWorkerd(binary, args, prefix, { extraStdio = [], maxEcho = Infinity } = {}) {
  const child = spawn(binary, args, {
    cwd: outDir,
    stdio: ["ignore", "pipe", "pipe", ...extraStdio],
  });
  const state = { child, output: "" };
  let echoed = 0;
  let hidden = 0;
  const echo = (line) => {
    if (echoed++ < maxEcho) console.log(`${prefix}${line}`);
    else hidden++;
  };
  const ended = [child.stdout, child.stderr].map((stream) => {
    stream.setEncoding("utf8");
    let partial = "";
    stream.on("data", (chunk) => {
      state.output += chunk;
      const lines = (partial + chunk).split("\n");
      partial = lines.pop();
      lines.forEach(echo);
    });
    return new Promise((resolve) =>
      stream.on("end", () => {
        if (partial) echo(partial);
        resolve();
      })
    );
  });
  state.closed = new Promise((resolve) => child.on("close", (code) => resolve(code))).then(
    async (code) => {
      await Promise.all(ended);
      if (hidden > 0) console.log(`${prefix}(${hidden} more lines of workerd output not shown)`);
      return code;
    },
  );
  return state;
}

/** Step 1: `workerd test`; returns [passed, failed]. */
async function runTestSuite(release, configPath) {
  const run = spawnWorkerd(release.binary, ["test", configPath], `[${release.label}] `);
  const timeout = setTimeout(() => run.child.kill("SIGKILL"), TEST_TIMEOUT_MS);
  const exitCode = await run.closed;
  clearTimeout(timeout);
  const output = run.output;
  const passed = output.match(/^CHECK ok /gm)?.length ?? 0;
  const checksFailed = output.match(/^CHECK FAIL /gm)?.length ?? 0;
  // A service that failed without reporting a failed check (e.g. it did not load).
  const failedServices = [...output.matchAll(/\[ FAIL \] (\S+)/g)].map((m) => m[1]);
  const passedServices = [...output.matchAll(/\[ PASS \] (\S+)/g)].map((m) => m[1]);
  const unreported = testWorkers.filter((w) =>
    w.tested && !passedServices.includes(w.service) && !failedServices.includes(w.service)
  );
  let failed = checksFailed;
  if (checksFailed === 0) failed += failedServices.length;
  failed += unreported.length;
  if (exitCode !== 0 && failed === 0) failed = 1;
  if (unreported.length > 0) {
    const disallowed = /Disallowed operation called within global scope[^\n]*/.exec(output);
    console.log(
      `CHECK FAIL [${release.label}] no result from ${
        unreported.map((w) => w.service).join(", ")
      }` +
        (disallowed ? `: the package did not load: ${disallowed[0]}` : ` (exit code ${exitCode})`),
    );
  }
  return [passed, failed];
}

/** Step 2: `workerd serve` of the shared example, driven by shared_e2e.mjs; returns [passed, failed]. */
async function runServe(release, configPath) {
  const prefix = `[${release.label} serve] `;
  const run = spawnWorkerd(
    release.binary,
    ["serve", "--verbose", "--control-fd=3", configPath],
    prefix,
    { extraStdio: ["pipe"], maxEcho: 40 },
  );
  const ports = {};
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("workerd did not listen in time")),
      LISTEN_TIMEOUT_MS,
    );
    let partial = "";
    run.child.stdio[3].setEncoding("utf8").on("data", (chunk) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop();
      for (const line of lines) {
        const message = JSON.parse(line);
        if (message.event === "listen") ports[message.socket] = message.port;
      }
      if (serveWorkers.every((w) => ports[w.service] !== undefined)) {
        clearTimeout(timer);
        resolve();
      }
    });
    run.closed.then((code) => reject(new Error(`workerd exited with code ${code}`)));
  });
  try {
    await listening;
    const base = (service) => `http://127.0.0.1:${ports[service]}`;
    const { checks, summary } = await runSharedE2E({
      label: release.label,
      exampleUrl: base("shared-example"),
      tally: async () => await (await fetch(`${base("collector")}/tally`)).json(),
      log: () => run.output,
    });
    summaries.push(summary);
    return printChecks(`[${release.label} e2e] `, checks);
  } catch (error) {
    const disallowed = /Disallowed operation called within global scope[^\n]*/.exec(run.output);
    const why = disallowed
      ? `the package did not load: ${disallowed[0]}`
      : `${error?.stack ?? error}`;
    console.log(`CHECK FAIL [${release.label} e2e] the shared example ran: ${why}`);
    return [0, 1];
  } finally {
    run.child.kill("SIGTERM");
    const killer = setTimeout(() => run.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await run.closed;
    clearTimeout(killer);
  }
}

/** The figures line of each release's end-to-end run, printed together at the end. */
const summaries = [];
const started = performance.now();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
for (const worker of [...testWorkers, ...serveWorkers]) {
  await bundleWorker({ ...worker, outfile: join(outDir, `${worker.service}.js`) });
}
const testConfig = join(outDir, "test.capnp");
writeFileSync(testConfig, capnpConfig(testWorkers));
const serveConfig = join(outDir, "serve.capnp");
writeFileSync(serveConfig, capnpConfig(serveWorkers, serveWorkers.map((w) => w.service)));

let passed = 0;
let failed = 0;
for (const release of releases) {
  const version = spawnSync(release.binary, ["--version"], { encoding: "utf8" }).stdout.trim();
  release.label = `${release.name} ${version.replace(/^workerd /, "")}`;
  for (const step of [runTestSuite, runServe]) {
    const [p, f] = await step(release, step === runTestSuite ? testConfig : serveConfig);
    passed += p;
    failed += f;
  }
}

rmSync(outDir, { recursive: true, force: true });
for (const summary of summaries) console.log(summary);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`workerd: ${passed} passed, ${failed} failed (${seconds} s)`);
process.exit(failed > 0 ? 1 : 0);
