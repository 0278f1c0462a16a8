// Runs examples/deno_server.ts and examples/bun_server.ts end to end: start the
// server on a free port with a collector of our own, send requests, send SIGINT,
// and check that every event reached the collector. Uses node:child_process and
// node:http so the file runs under Deno and Bun.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { test } from "./harness.ts";

const root = findRoot();
/** Kills a stuck server; the tests assert on what arrived, never on this time. */
const SAFETY_NET_MS = 30_000;
const REQUESTS = 25;

/** The repository root: the parent of tests/, or further up when this file was bundled elsewhere. */
function findRoot(): string {
  let dir = new URL(".", import.meta.url);
  while (!existsSync(new URL("examples/deno_server.ts", dir))) {
    const parent = new URL("..", dir);
    if (parent.href === dir.href) return fileURLToPath(new URL("..", import.meta.url));
    dir = parent;
  }
  return fileURLToPath(dir);
}

/** The runtime's binary: this process when it is that runtime, else the npm devDependency. */
function findRuntime(name: "deno" | "bun"): string | undefined {
  if (name === "deno" && "Deno" in globalThis) return process.execPath;
  if (name === "bun" && "Bun" in globalThis) return process.execPath;
  const local = `${root}node_modules/.bin/${name}`;
  return existsSync(local) ? local : undefined;
}

interface Collector {
  url: string;
  paths: string[];
  close(): Promise<void>;
}

/** An HTTP server that records the `path` of every event POSTed to it. */
async function startCollector(): Promise<Collector> {
  const paths: string[] = [];
  const server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      for (const event of JSON.parse(body)) paths.push(event.path);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/events`,
    paths,
    close: () =>
      new Promise((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts an example server, sends REQUESTS requests once it listens, then
 * SIGINT, and resolves with its exit.
 */
function runExample(command: string, args: string[], collectorUrl: string): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: root,
      env: {
        ...process.env,
        PORT: "0",
        COLLECTOR_URL: collectorUrl,
        NO_COLOR: "1",
        DENO_NO_UPDATE_CHECK: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let started = false;
    const safetyNet = setTimeout(() => child.kill("SIGKILL"), SAFETY_NET_MS);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      const url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url === undefined || started) return;
      started = true;
      sendRequests(url).then(
        // Not child.kill("SIGINT"): Deno's node:child_process then reports the
        // signal instead of the exit code the server chose.
        () => process.kill(child.pid!, "SIGINT"),
        (error) => {
          child.kill("SIGKILL");
          reject(error);
        },
      );
    });
    child.on("error", (error) => {
      clearTimeout(safetyNet);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(safetyNet);
      resolve({ code, stdout, stderr });
    });
  });
}

async function sendRequests(baseUrl: string): Promise<void> {
  for (let i = 0; i < REQUESTS; i++) {
    const response = await fetch(`${baseUrl}/hit/${i}`);
    assert.equal(await response.text(), "recorded\n");
  }
}

function testExample(runtime: "deno" | "bun", args: string[]): void {
  const binary = findRuntime(runtime);
  const file = args.at(-1);
  if (binary === undefined) {
    console.warn(`${file} skipped: no ${runtime} binary (run npm install)`);
    return;
  }
  test(`${file} flushes every event to the collector when stopped with SIGINT`, async () => {
    const collector = await startCollector();
    try {
      const { code, stdout, stderr } = await runExample(binary, args, collector.url);
      assert.equal(code, 0, stderr);
      const expected = Array.from({ length: REQUESTS }, (_, i) => `/hit/${i}`);
      assert.deepEqual(collector.paths.toSorted(), expected.toSorted());
      const summary = JSON.parse(/^\{"shutdown".*$/m.exec(stdout)?.[0] ?? "null");
      assert.equal(summary?.shutdown.flushedItems, REQUESTS, stdout);
      assert.equal(summary.shutdown.failedItems, 0);
    } finally {
      await collector.close();
    }
  });
}

testExample("deno", ["run", "-A", "examples/deno_server.ts"]);
testExample("bun", ["examples/bun_server.ts"]);
