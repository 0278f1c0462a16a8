// Runs examples/deno_server.ts and examples/bun_server.ts end to end: start the
// server on a free port with a collector of our own, send requests, send SIGINT,
// and check that every event reached the collector. Uses node:child_process and
// node:http so the file runs under Deno and Bun.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { skip, test } from "./harness.ts";
import { findRoot, findRuntime, type ProcessExit, runProcess } from "./helpers.ts";

const root = findRoot("examples/deno_server.ts");
const REQUESTS = 25;

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

/**
 * Starts an example server, sends REQUESTS requests once it listens, then
 * SIGINT, and resolves with its exit.
 */
async function runExample(
  command: string,
  args: string[],
  collectorUrl: string,
): Promise<ProcessExit> {
  let started = false;
  let failed: { error: unknown } | undefined;
  const exit = await runProcess(command, args, {
    cwd: root,
    env: { PORT: "0", COLLECTOR_URL: collectorUrl },
    onStdout: (stdout, child) => {
      const url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url === undefined || started) return;
      started = true;
      sendRequests(url).then(
        // Not child.kill("SIGINT"): Deno's node:child_process then reports the
        // signal instead of the exit code the server chose.
        () => process.kill(child.pid!, "SIGINT"),
        (error) => {
          failed = { error };
          child.kill("SIGKILL");
        },
      );
    },
  });
  if (failed !== undefined) throw failed.error;
  return exit;
}

async function sendRequests(baseUrl: string): Promise<void> {
  for (let i = 0; i < REQUESTS; i++) {
    const response = await fetch(`${baseUrl}/hit/${i}`);
    assert.equal(await response.text(), "recorded\n");
  }
}

function testExample(runtime: "deno" | "bun", args: string[]): void {
  const binary = findRuntime(runtime, root);
  const file = args.at(-1);
  if (binary === undefined) {
    skip(
      `${file} flushes every event to the collector when stopped with SIGINT`,
      `no ${runtime} binary (run npm install)`,
    );
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
