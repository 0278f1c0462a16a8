#!/usr/bin/env node
// Runs the Cloudflare Workers tests under Miniflare 4 (`npm run test:miniflare`),
// the simulator inside `wrangler dev`, with the workerd release it ships
// (older than node_modules/workerd: it refuses I/O objects made at module
// scope, "Disallowed operation called within global scope"):
//
// 1. smoke: tests/workerd/buffer_worker.ts runs the runtime smoke suite in its
//    fetch handler (through dispatchFetch), so the package must load;
// 2. e2e: the shared-buffer example (examples/cloudflare_worker/) and its
//    collector (tests/workerd/collector.ts), driven from Node by
//    tests/workerd/shared_e2e.mjs over the example's own loopback socket.
//
// Each part gets its own Miniflare instance, so that one that does not load
// cannot hide the other. Prints a `E2E ...` figures line, then
// `miniflare: N passed, M failed`, and exits non-zero on any failure.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { Miniflare } from "miniflare";
import { bundleWorker, COMPATIBILITY_DATE, root } from "../workerd/bundle.mjs";
import { printChecks, runSharedE2E } from "../workerd/shared_e2e.mjs";

const outDir = join(root, ".tmp", "miniflare", `run-${process.pid}`);
const SMOKE_TIMEOUT_MS = 60_000;
const DISPOSE_TIMEOUT_MS = 10_000;
const miniflareVersion = JSON.parse(
  readFileSync(join(root, "node_modules", "miniflare", "package.json"), "utf8"),
).version;
const label = `miniflare ${miniflareVersion}`;

/** Resolves with the promise, or rejects after `ms`; leaves no timer behind. */
async function within(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lines of runtime output echoed per instance (a failing run can log thousands). */
const MAX_ECHO = 40;

/** A Miniflare instance whose runtime output is kept for the checks and partly echoed. */
function start(workers, prefix) {
  const state = { output: "", echoed: 0 };
  state.mf = new Miniflare({
    workers: workers.map(({ name, bindings = {}, directSocket = false }) => ({
      name,
      modules: true,
      scriptPath: join(outDir, `${name}.js`),
      compatibilityDate: COMPATIBILITY_DATE,
      serviceBindings: bindings,
      ...(directSocket ? { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] } : {}),
    })),
    verbose: true, // the runtime's warnings, as in tests/workerd/run.mjs
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        stream.setEncoding("utf8");
        stream.on("data", (chunk) => {
          state.output += chunk;
          for (const line of chunk.trimEnd().split("\n")) {
            if (state.echoed++ < MAX_ECHO) console.log(`${prefix}${line}`);
          }
        });
      }
    },
  });
  return state;
}

async function stop(state, prefix) {
  // dispose() rethrows a failed start, which has been reported already.
  await within(state.mf.dispose(), DISPOSE_TIMEOUT_MS, "Miniflare dispose").catch(() => {});
  if (state.echoed > MAX_ECHO) {
    console.log(`${prefix}(${state.echoed - MAX_ECHO} more lines of runtime output not shown)`);
  }
}

/** The reason a worker did not load, from the runtime's output or the error. */
function loadFailure(state, error) {
  const disallowed = /Disallowed operation called within global scope[^\n]*/.exec(state.output);
  return disallowed ? `the package did not load: ${disallowed[0]}` : `${error?.stack ?? error}`;
}

async function runSmoke() {
  const prefix = `[${label} smoke] `;
  const state = start([{ name: "buffer-smoke" }], prefix);
  try {
    const response = await within(
      state.mf.dispatchFetch("http://smoke.test/"),
      SMOKE_TIMEOUT_MS,
      "smoke run",
    );
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`status ${response.status}: ${text.slice(0, 300)}`);
    }
    const results = JSON.parse(text);
    return printChecks(
      prefix,
      results.map(({ name, ok, error }) => ({ ok, name, detail: ok ? "ok" : error })),
    );
  } catch (error) {
    console.log(`CHECK FAIL ${prefix}the smoke suite ran: ${loadFailure(state, error)}`);
    return [0, 1];
  } finally {
    await stop(state, prefix);
  }
}

async function runE2E() {
  const prefix = `[${label} e2e] `;
  const state = start([
    // Its own socket: dispatchFetch's extra hop through Miniflare's entry worker
    // halves the burst's rate on a 2-core machine, and the interval then sends
    // smaller batches; the buffer's behaviour is the same either way.
    { name: "shared-example", bindings: { COLLECTOR: "collector" }, directSocket: true },
    { name: "collector" },
  ], prefix);
  try {
    await state.mf.ready;
    const example = await state.mf.unsafeGetDirectURL("shared-example");
    const collector = await state.mf.getWorker("collector");
    const { checks, summary } = await runSharedE2E({
      label,
      exampleUrl: example,
      tally: async () => await (await collector.fetch("http://collector.test/tally")).json(),
      log: () => state.output,
    });
    const result = printChecks(prefix, checks);
    return [...result, summary];
  } catch (error) {
    console.log(`CHECK FAIL ${prefix}the shared example ran: ${loadFailure(state, error)}`);
    return [0, 1];
  } finally {
    await stop(state, prefix);
  }
}

const started = performance.now();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
for (
  const [name, entry] of [
    ["buffer-smoke", "tests/workerd/buffer_worker.ts"],
    ["shared-example", "examples/cloudflare_worker/worker.ts"],
    ["collector", "tests/workerd/collector.ts"],
  ]
) {
  await bundleWorker({ entry, outfile: join(outDir, `${name}.js`) });
}

const [smokePassed, smokeFailed] = await runSmoke();
const [e2ePassed, e2eFailed, summary] = await runE2E();
rmSync(outDir, { recursive: true, force: true });
if (summary !== undefined) console.log(summary);
const passed = smokePassed + e2ePassed;
const failed = smokeFailed + e2eFailed;
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`miniflare: ${passed} passed, ${failed} failed (${seconds} s)`);
process.exit(failed > 0 ? 1 : 0);
