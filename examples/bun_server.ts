/**
 * A Bun HTTP server that records one event per request in a module-level
 * BatchBuffer, and shuts down without losing events on Ctrl-C (SIGINT).
 *
 * Run: `bun examples/bun_server.ts` (or `npx bun examples/bun_server.ts`)
 *
 * Environment:
 * - `PORT`: the port to listen on (default 8000; 0 picks a free one).
 * - `COLLECTOR_URL`: where each batch is POSTed as JSON; without it, batches
 *   are only logged.
 *
 * It prints `listening on http://127.0.0.1:<port>` once ready, and on exit a
 * JSON line `{"shutdown":{...buffer.stats()}}`.
 *
 * @module
 */
import process from "node:process";
import { BatchBuffer, BufferClosedError } from "../mod.ts"; // in your app: "@batchkit/buffer"

// The part of Bun's API used here, so the file also type-checks without bun-types.
declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request): Promise<Response>;
  }): { hostname: string; port: number; stop(): Promise<void> };
};

interface RequestEvent {
  method: string;
  path: string;
  at: number;
}

const port = Number(process.env.PORT ?? 8000);
const collectorUrl = process.env.COLLECTOR_URL;

async function send(batch: RequestEvent[]): Promise<void> {
  if (collectorUrl === undefined) return console.log(`flushed ${batch.length} events`);
  const response = await fetch(collectorUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(batch),
  });
  await response.body?.cancel();
  if (!response.ok) throw new Error(`collector answered ${response.status}`);
}

// One buffer for the whole process, shared by every request.
const events = new BatchBuffer<RequestEvent>({
  capacity: 100,
  flushInterval: 1_000,
  flush: send,
  onFlushError: (error, batch) => console.error(`lost ${batch.length} events:`, error),
});
const running = events.run();

const server = Bun.serve({
  hostname: "127.0.0.1", // "0.0.0.0" to accept connections from other machines
  port,
  async fetch(request) {
    try {
      // Awaiting add() passes backpressure on to the client when the collector is slow.
      await events.add({
        method: request.method,
        path: new URL(request.url).pathname,
        at: Date.now(),
      });
    } catch (error) {
      if (error instanceof BufferClosedError) {
        return new Response("shutting down\n", { status: 503 });
      }
      throw error;
    }
    return new Response("recorded\n");
  },
});
console.log(`listening on http://${server.hostname}:${server.port}`);

process.on("SIGINT", async () => {
  await server.stop(); // stop accepting; requests in progress finish their add()
  events.close();
  await running; // the last batches are flushed
  console.log(JSON.stringify({ shutdown: events.stats() }));
  process.exit(0);
});
