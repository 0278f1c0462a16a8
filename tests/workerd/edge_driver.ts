/**
 * Drives examples/cloudflare_worker_per_request/ end to end in workerd: sends waves of
 * concurrent requests to the example Worker (`EDGE` binding), then asks the
 * receiving worker (`RECEIVER` binding) what arrived, and checks that every
 * accepted event arrived exactly once, in batches of at most 50.
 */
import assert from "node:assert/strict";

interface ServiceBinding {
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

interface Env {
  EDGE: ServiceBinding;
  RECEIVER: ServiceBinding;
}

interface Counts {
  batches: number;
  events: number;
  largestBatch: number;
  counts: Record<string, number>;
}

/** Events per request in each wave; all requests of a wave run concurrently. */
const WAVE = [1, 7, 49, 50, 51, 120, 0, 3, 100, 260];
const WAVES = 4;
const BATCH_SIZE = 50; // the example's capacity
/** Generous: the flushes need milliseconds, but machines vary. */
const DELIVERY_DEADLINE_MS = 30_000;

async function counts(env: Env): Promise<Counts> {
  const response = await env.RECEIVER.fetch("https://receiver/counts");
  assert.equal(response.status, 200);
  return await response.json() as Counts;
}

export default {
  async test(_controller: unknown, env: Env): Promise<void> {
    try {
      await checkEdgePattern(env);
    } catch (error) {
      console.log(`CHECK FAIL edge pattern: ${error instanceof Error ? error.stack : error}`);
      throw error;
    }
  },
};

async function checkEdgePattern(env: Env): Promise<void> {
  const accepted: string[] = [];
  let expectedBatches = 0;
  for (let wave = 0; wave < WAVES; wave++) {
    const responses = await Promise.all(WAVE.map((size, request) => {
      expectedBatches += Math.ceil(size / BATCH_SIZE);
      const events = Array.from({ length: size }, (_, n) => ({
        // One event in each request leaves its id to the Worker.
        id: n === 0 ? undefined : `w${wave}-r${request}-e${n}`,
        type: "click",
        data: { n },
      }));
      return env.EDGE.fetch("https://edge/events", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(events),
      });
    }));
    for (const response of responses) {
      assert.equal(response.status, 202, await response.clone().text());
      const body = await response.json() as { accepted: string[] };
      accepted.push(...body.accepted);
    }
  }
  for (const [body, status] of [["{", 400], ['{"not":"an array"}', 400]] as const) {
    const response = await env.EDGE.fetch("https://edge/events", { method: "POST", body });
    assert.equal(response.status, status);
    await response.body?.cancel();
  }

  // The responses return before the flushes they started (ctx.waitUntil);
  // wait until the receiver has seen as many events as were accepted.
  const deadline = Date.now() + DELIVERY_DEADLINE_MS;
  let received = await counts(env);
  while (received.events < accepted.length && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    received = await counts(env);
  }

  assert.equal(new Set(accepted).size, accepted.length, "event ids are unique");
  const missing = accepted.filter((id) => received.counts[id] === undefined);
  const duplicated = Object.entries(received.counts).filter(([, n]) => n !== 1);
  const unexpected = Object.keys(received.counts).filter((id) => !accepted.includes(id));
  assert.deepEqual(missing, [], "every accepted event arrived");
  assert.deepEqual(duplicated, [], "no event arrived twice");
  assert.deepEqual(unexpected, [], "only accepted events arrived");
  assert.equal(received.events, accepted.length);
  assert.equal(received.batches, expectedBatches, "full batches of 50, then one partial");
  assert.ok(received.largestBatch <= BATCH_SIZE, `largest batch ${received.largestBatch}`);
  console.log(
    `CHECK ok edge pattern: ${accepted.length} events from ${WAVES * WAVE.length} ` +
      `requests arrived exactly once in ${received.batches} batches`,
  );
}
