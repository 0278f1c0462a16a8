/**
 * A Cloudflare Worker that batches the events of each request before
 * `fetch`: a log drain that takes any number of events in one request and
 * forwards them to a collector in batches of at most 50, two requests at a
 * time, through the `COLLECTOR` service binding.
 *
 * `POST /events` with a JSON array of events answers 202 at once with the ids
 * it accepted; `ctx.waitUntil(buffer.flush())` keeps the request alive until
 * every event has been through a flush, so nothing is lost when the response
 * returns.
 *
 * Each request gets its own buffer, with no timer (`flushInterval:
 * Infinity`): the request ends with a manual flush, so nothing waits in
 * memory between requests. This suits requests that bring many events each;
 * for requests of one to three events, share one buffer per isolate as
 * examples/cloudflare_worker/ does.
 *
 * Run it with wrangler (see README.md next to this file), or in workerd as
 * `npm run test:workerd` does (tests/workerd/).
 *
 * @module
 */
import { BatchBuffer } from "../../mod.ts"; // in your app: "@batchkit/buffer"

/** The part of `Fetcher` (@cloudflare/workers-types) this Worker uses. */
export interface ServiceBinding {
  /** Sends a request to the bound service. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

/** The part of `ExecutionContext` (@cloudflare/workers-types) this Worker uses. */
export interface WorkerContext {
  /** Keeps the request alive, after its response, until `promise` settles. */
  waitUntil(promise: Promise<unknown>): void;
}

/** The Worker's bindings (wrangler.jsonc). */
export interface Env {
  /** The service that receives the batches: POST /batch with a JSON array. */
  COLLECTOR: ServiceBinding;
}

/** One event as forwarded to the collector. */
export interface DrainEvent {
  /** Unique per event (the client's, or a random UUID); the collector can deduplicate on it. */
  id: string;
  /** What happened, e.g. "click". */
  type: string;
  /** When the Worker received it (ms since the epoch). */
  receivedAt: number;
  /** Anything else the client sent. */
  data?: unknown;
}

/** The collector's batch limit. */
const BATCH_SIZE = 50;

function forwarder(env: Env): BatchBuffer<DrainEvent> {
  return new BatchBuffer<DrainEvent>({
    capacity: BATCH_SIZE,
    maxConcurrentFlushes: 2,
    flushInterval: Infinity,
    flush: async (batch) => {
      const response = await env.COLLECTOR.fetch("https://collector/batch", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch),
      });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`collector answered ${response.status}`);
    },
    // The buffer does not retry; a real Worker would send these to a Queue.
    onFlushError: (error, batch) => {
      console.error(`dropped ${batch.length} events:`, error);
    },
  });
}

function parseEvents(body: unknown, receivedAt: number): DrainEvent[] | undefined {
  if (!Array.isArray(body)) return undefined;
  return body.map((event: { id?: unknown; type?: unknown; data?: unknown } | null) => ({
    id: typeof event?.id === "string" ? event.id : crypto.randomUUID(),
    type: typeof event?.type === "string" ? event.type : "custom",
    receivedAt,
    data: event?.data,
  }));
}

export default {
  async fetch(request: Request, env: Env, ctx: WorkerContext): Promise<Response> {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/events") {
      return new Response("POST a JSON array of events to /events\n", { status: 404 });
    }
    const events = parseEvents(await request.json().catch(() => undefined), Date.now());
    if (events === undefined) return new Response("body must be a JSON array\n", { status: 400 });

    const buffer = forwarder(env);
    void buffer.run();
    try {
      await buffer.addAll(events); // waits while two batches are in flight (backpressure)
    } finally {
      // Respond now; the runtime keeps this request alive until every event
      // added has been through a flush.
      ctx.waitUntil(buffer.flush());
      buffer.close(); // nothing more for this buffer: its run loop ends after the flushes
    }
    return Response.json({ accepted: events.map((event) => event.id) }, { status: 202 });
  },
};
