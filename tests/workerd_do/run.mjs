#!/usr/bin/env node
// Runs the Durable Object recipe (examples/cloudflare_durable_object/) in real
// workerd (`npm run test:edge-recipes`): bundles the Worker, the driver and the
// collector with esbuild into .tmp/workerd-do/, writes a workerd config with
// the EventBatcher namespace (in-memory storage) and runs `workerd test`, which
// calls driver.ts's test() handler.
//
// Prints `workerd-do: N passed, M failed`, and fails on any runtime warning
// in workerd's log as well as on a failed check.
import { spawn } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const outDir = join(root, ".tmp", "workerd-do", `run-${process.pid}`);
const COMPATIBILITY_DATE = "2026-01-01";
const RUN_TIMEOUT_MS = 120_000;
/** What workerd logs when a Worker's promises or I/O cross a request they do not belong to. */
const WARNINGS = [
  /canceled this request/i,
  /promise was created by a request that has since ended/i,
  /Cannot perform I\/O/i,
  /Disallowed operation called within global scope/i,
  /hung/i,
];

const capnp = (value) => JSON.stringify(value);
const services = [
  {
    name: "driver",
    entry: "tests/workerd_do/driver.ts",
    flags: ["nodejs_compat"], // for node:assert in the driver only
    bindings: [
      `(name = "EDGE", service = "edge")`,
      `(name = "COLLECTOR", service = "collector")`,
      `(name = "BATCHER", durableObjectNamespace = (className = "EventBatcher", serviceName = "edge"))`,
    ],
  },
  {
    // The example itself, bundled as a user's wrangler would: no compat flags.
    name: "edge",
    entry: "examples/cloudflare_durable_object/worker.ts",
    flags: [],
    bindings: [
      `(name = "COLLECTOR", service = "collector")`,
      `(name = "BATCHER", durableObjectNamespace = "EventBatcher")`,
    ],
    extra:
      `durableObjectNamespaces = [(className = "EventBatcher", uniqueKey = "batchkit-event-batcher")],
      durableObjectStorage = (inMemory = void),`,
  },
  { name: "collector", entry: "tests/workerd_do/collector.ts", flags: [], bindings: [] },
];

const started = performance.now();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
for (const service of services) {
  await esbuild.build({
    entryPoints: [join(root, service.entry)],
    outfile: join(outDir, `${service.name}.js`),
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["node:*", "cloudflare:*"],
    logLevel: "warning",
  });
}

const config = `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
${
  services.map((service) =>
    `    (name = ${capnp(service.name)}, worker = (
      modules = [(name = ${capnp(`${service.name}.js`)}, esModule = embed ${
      capnp(`${service.name}.js`)
    })],
      compatibilityDate = ${capnp(COMPATIBILITY_DATE)},
      compatibilityFlags = [${service.flags.map(capnp).join(", ")}],
      bindings = [${service.bindings.join(", ")}],
      ${service.extra ?? ""}
    )),`
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
rmSync(outDir, { recursive: true, force: true });

const checksPassed = output.match(/^CHECK ok /gm)?.length ?? 0;
const checksFailed = output.match(/^CHECK FAIL /gm)?.length ?? 0;
const warnings = output.split("\n").filter((line) =>
  WARNINGS.some((pattern) => pattern.test(line))
);
const driverPassed = /\[ PASS \] driver\b/.test(output);
let failed = checksFailed + warnings.length;
if (failed === 0 && (!driverPassed || exitCode !== 0 || checksPassed === 0)) failed = 1;
const seconds = ((performance.now() - started) / 1000).toFixed(1);
for (const warning of warnings) console.error(`workerd-do: runtime warning: ${warning}`);
console.log(
  `workerd-do: ${checksPassed} passed, ${failed} failed, ${warnings.length} runtime warnings ` +
    `(${seconds} s)`,
);
process.exit(failed > 0 ? 1 : 0);
