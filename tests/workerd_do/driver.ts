/**
 * Drives examples/cloudflare_durable_object/ in workerd (run.mjs): a burst of
 * 1,000 requests, 20 at a time, one event each, to the stateless Worker
 * (`EDGE`), which forwards each over RPC to the `EventBatcher` Durable
 * Object; then a trickle of single events, one request at a time, that only
 * the object's `flushInterval` can send. Checks with the collector
 * (`COLLECTOR`) that every event arrived exactly once in batches of at most
 * 100, and with the object's own `stats()` (`BATCHER`) that its counters
 * agree. Prints the flush count.
 */
import assert from "node:assert/strict";
import type { BatchBufferStats } from "../../mod.ts";
import type { EventBatcherNamespace } from "../../examples/cloudflare_durable_object/worker.ts";

interface ServiceBinding {
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

interface Env {
  EDGE: ServiceBinding;
  COLLECTOR: ServiceBinding;
  BATCHER: EventBatcherNamespace;
}

interface Counts {
  batches: number;
  events: number;
  largestBatch: number;
  reasons: Record<string, number>;
  counts: Record<string, number>;
  batchesOf: Record<string, string>;
}

const REQUESTS = 1_000;
const CONCURRENCY = 20;
const TRICKLE = 5;
const BATCH_SIZE = 100; // the example's capacity
/** Generous: delivery needs the flush interval (1 s) plus milliseconds, but machines vary. */
const DELIVERY_DEADLINE_MS = 30_000;

async function counts(env: Env): Promise<Counts> {
  const response = await env.COLLECTOR.fetch("https://collector/counts");
  assert.equal(response.status, 200);
  return await response.json() as Counts;
}

async function waitForEvents(env: Env, events: number): Promise<Counts> {
  const deadline = Date.now() + DELIVERY_DEADLINE_MS;
  let received = await counts(env);
  while (received.events < events && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    received = await counts(env);
  }
  return received;
}

async function post(env: Env, id: string): Promise<string[]> {
  const response = await env.EDGE.fetch("https://edge/events", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify([{ id, type: "click", data: { id } }]),
  });
  assert.equal(response.status, 202, await response.clone().text());
  return (await response.json() as { accepted: string[] }).accepted;
}

export default {
  async test(_controller: unknown, env: Env): Promise<void> {
    try {
      await checkDurableObjectRecipe(env);
    } catch (error) {
      console.log(
        `CHECK FAIL durable object recipe: ${error instanceof Error ? error.stack : error}`,
      );
      throw error;
    }
  },
};

async function checkDurableObjectRecipe(env: Env): Promise<void> {
  const accepted: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < REQUESTS) {
      accepted.push(...await post(env, `burst-${next++}`));
    }
  }));
  const burst = await waitForEvents(env, REQUESTS);
  assert.equal(burst.events, REQUESTS, "the burst arrived before the trickle starts");

  const trickle: string[] = [];
  for (let i = 0; i < TRICKLE; i++) trickle.push(...await post(env, `trickle-${i}`));
  accepted.push(...trickle);
  const received = await waitForEvents(env, accepted.length);

  assert.equal(new Set(accepted).size, accepted.length, "event ids are unique");
  const missing = accepted.filter((id) => received.counts[id] === undefined);
  const duplicated = Object.entries(received.counts).filter(([, n]) => n !== 1);
  const unexpected = Object.keys(received.counts).filter((id) => !accepted.includes(id));
  assert.deepEqual(missing, [], "every accepted event arrived");
  assert.deepEqual(duplicated, [], "no event arrived twice");
  assert.deepEqual(unexpected, [], "only accepted events arrived");
  assert.equal(received.events, accepted.length);
  assert.ok(received.largestBatch <= BATCH_SIZE, `largest batch ${received.largestBatch}`);
  assert.ok(received.batches >= Math.ceil(accepted.length / BATCH_SIZE));
  // Fewer than the capacity, one request at a time: only the object's timer sends these.
  for (const id of trickle) assert.equal(received.batchesOf[id], "interval", id);

  const batcher = env.BATCHER.get(env.BATCHER.idFromName("batcher"));
  const stats = await batcher.stats() as BatchBufferStats;
  assert.equal(stats.added, accepted.length);
  assert.equal(stats.flushedItems, accepted.length);
  assert.equal(stats.flushes, received.batches);
  assert.equal(stats.rejected + stats.failedItems + stats.failedFlushes, 0);
  assert.equal(stats.inFlightItems + stats.itemsInChannel + stats.itemsInBatch, 0);

  const reasons = Object.entries(received.reasons).map(([r, n]) => `${n} ${r}`).join(", ");
  console.log(
    `CHECK ok durable object recipe: ${accepted.length} events from ${accepted.length} requests ` +
      `(${REQUESTS} at concurrency ${CONCURRENCY}, then ${TRICKLE} one at a time) arrived ` +
      `exactly once in ${received.batches} flushes (${reasons}; largest ${received.largestBatch})`,
  );
}
