/**
 * A Cloudflare Worker that batches events across requests: an analytics
 * beacon whose requests bring one event each. All the requests an isolate
 * serves share one buffer, which forwards the events to a collector (the
 * `COLLECTOR` service binding) in batches of up to 100, or after 100 ms.
 *
 * `POST /events` with one JSON event answers 202 with the event's id once the
 * buffer has accepted it.
 *
 * The buffer is a module-level variable, made by the first request: nothing
 * may run at module scope in a Worker (no timers, no I/O). Its `waitUntil`
 * hook is the runtime's own `waitUntil` from "cloudflare:workers", which
 * keeps alive the request in which each flush starts, so every batch is sent
 * even after the responses have gone out. What is shared is per isolate: the
 * runtime spreads traffic over many isolates, each with its own buffer.
 *
 * Run it with wrangler (see README.md next to this file), or in workerd and
 * Miniflare as `npm run test:workerd` and `npm run test:miniflare` do
 * (tests/workerd/, tests/miniflare/).
 *
 * @module
 */
import { waitUntil } from "cloudflare:workers";
import { BatchBuffer } from "../../mod.ts"; // in your app: "@batchkit/buffer"

/** The part of `Fetcher` (@cloudflare/workers-types) this Worker uses. */
export interface ServiceBinding {
  /** Sends a request to the bound service. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

/** The Worker's bindings (wrangler.jsonc). */
export interface Env {
  /** The service that receives the batches: POST /batch with a JSON array. */
  COLLECTOR: ServiceBinding;
}

/** One event as forwarded to the collector. */
export interface Event {
  /** Unique per event (the client's, or a random UUID); the collector can deduplicate on it. */
  id: string;
  /** What happened, e.g. "click". */
  type: string;
  /** When the Worker received it (ms since the epoch). */
  receivedAt: number;
  /** Anything else the client sent. */
  data?: unknown;
}

/** Shared by every request of this isolate; made by the first one. */
let buffer: BatchBuffer<Event> | undefined;

function start(env: Env): BatchBuffer<Event> {
  const shared = new BatchBuffer<Event>({
    capacity: 100,
    flushInterval: 100, // a partial batch waits at most 100 ms
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
    waitUntil, // keeps the request in which a flush starts alive until it settles
  });
  void shared.run(); // runs for the isolate's lifetime
  return shared;
}

function parseEvent(body: unknown, receivedAt: number): Event | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const event = body as { id?: unknown; type?: unknown; data?: unknown };
  return {
    id: typeof event.id === "string" ? event.id : crypto.randomUUID(),
    type: typeof event.type === "string" ? event.type : "custom",
    receivedAt,
    data: event.data,
  };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/events") {
      return new Response("POST a JSON event to /events\n", { status: 404 });
    }
    const event = parseEvent(await request.json().catch(() => undefined), Date.now());
    if (event === undefined) return new Response("body must be a JSON object\n", { status: 400 });

    buffer ??= start(env);
    await buffer.add(event); // waits only while the collector is slow (backpressure)
    return Response.json({ accepted: event.id }, { status: 202 });
  },
};
