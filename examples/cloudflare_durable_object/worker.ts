/**
 * A Cloudflare Worker that batches events across isolates with a Durable
 * Object: the Worker itself is stateless and forwards each request's events
 * over RPC to one `EventBatcher` object, and that object owns one
 * `BatchBuffer` whose flush POSTs batches of at most 100 events to a
 * collector (the `COLLECTOR` service binding).
 *
 * `POST /events` with a JSON array of events answers 202 with the ids it
 * accepted, once the object has taken them into its buffer.
 *
 * Why a Durable Object: a buffer in a Worker batches what one isolate sees,
 * and busy traffic is spread over many isolates. A Durable Object is one
 * instance with one memory, so every request's events meet in the same
 * buffer. Its requests share one context, so its own `flushInterval` timer
 * fires between requests and no `waitUntil` is needed.
 *
 * Delivery is at least once: a client that disconnects before the 202 cannot
 * know whether its events were taken, and sends them again; the collector
 * deduplicates on `id`. Events still in memory are lost if the object is
 * reset (a deploy, or an uncaught error), so `flushInterval` stays short.
 *
 * Run it with wrangler (see README.md next to this file), or in workerd as
 * `npm run test:edge-recipes` does (tests/workerd_do/).
 *
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import { BatchBuffer, type BatchBufferStats } from "../../mod.ts"; // in your app: "@batchkit/buffer"

/** The part of `Fetcher` (@cloudflare/workers-types) this Worker uses. */
export interface ServiceBinding {
  /** Sends a request to the bound service. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

/** The RPC methods of an `EventBatcher`, as its stub exposes them. */
export interface EventBatcherStub {
  /** See {@linkcode EventBatcher.add}. */
  add(events: DrainEvent[]): Promise<void>;
  /** See {@linkcode EventBatcher.stats}. */
  stats(): Promise<BatchBufferStats | undefined>;
}

/** The part of `DurableObjectNamespace` (@cloudflare/workers-types) this Worker uses. */
export interface EventBatcherNamespace {
  /** The id of the object called `name` (the same name always gives the same object). */
  idFromName(name: string): unknown;
  /** A stub that calls the object's methods over RPC. */
  get(id: unknown): EventBatcherStub;
}

/** The Worker's bindings (wrangler.jsonc). */
export interface Env {
  /** The Durable Object namespace of {@linkcode EventBatcher}. */
  BATCHER: EventBatcherNamespace;
  /** The service that receives the batches: POST /batch with a JSON array. */
  COLLECTOR: ServiceBinding;
}

/** One event as forwarded to the collector. */
export interface DrainEvent {
  /** Unique per event (the client's, or a random UUID); the collector deduplicates on it. */
  id: string;
  /** What happened, e.g. "click". */
  type: string;
  /** When the Worker received it (ms since the epoch). */
  receivedAt: number;
  /** Anything else the client sent. */
  data?: unknown;
}

/** The collector's batch limit. */
const BATCH_SIZE = 100;
/** The longest an event waits in the object's memory before it is sent. */
const FLUSH_INTERVAL_MS = 1_000;
/**
 * One object for all traffic. One object takes about 1,000 requests a second
 * (Cloudflare's soft limit); beyond that, spread the events over a few names
 * (`batcher-0` ...), each its own buffer.
 */
const BATCHER_NAME = "batcher";

/** The Durable Object that owns the buffer: one instance for every isolate's requests. */
export class EventBatcher extends DurableObject {
  readonly #env: Env;
  /** Made by the first call, never at module scope. */
  #buffer: BatchBuffer<DrainEvent> | undefined;

  /** Called by the runtime; `ctx` is the object's `DurableObjectState`. */
  constructor(ctx: unknown, env: Env) {
    super(ctx, env);
    this.#env = env;
  }

  /**
   * RPC: takes the events into the buffer. Resolves once they are accepted,
   * not sent; waits while the buffer is full (backpressure reaches the Worker).
   */
  async add(events: DrainEvent[]): Promise<void> {
    this.#buffer ??= this.#start();
    await this.#buffer.addAll(events);
  }

  /** RPC: the buffer's counters, or undefined before the first event. */
  stats(): BatchBufferStats | undefined {
    return this.#buffer?.stats();
  }

  #start(): BatchBuffer<DrainEvent> {
    const buffer = new BatchBuffer<DrainEvent>({
      capacity: BATCH_SIZE,
      flushInterval: FLUSH_INTERVAL_MS,
      maxConcurrentFlushes: 2,
      flush: async (batch, { reason }) => {
        const response = await this.#env.COLLECTOR.fetch("https://collector/batch", {
          method: "POST",
          headers: { "content-type": "application/json", "x-flush-reason": reason },
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
    void buffer.run(); // lives as long as the object; no close()
    return buffer;
  }
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
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/events") {
      return new Response("POST a JSON array of events to /events\n", { status: 404 });
    }
    const events = parseEvents(await request.json().catch(() => undefined), Date.now());
    if (events === undefined) return new Response("body must be a JSON array\n", { status: 400 });

    const batcher = env.BATCHER.get(env.BATCHER.idFromName(BATCHER_NAME));
    await batcher.add(events);
    return Response.json({ accepted: events.map((event) => event.id) }, { status: 202 });
  },
};
