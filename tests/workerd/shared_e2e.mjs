// The shared-buffer example (examples/cloudflare_worker/) end to end, driven
// from Node: the runtime (workerd serve, or Miniflare) serves the example and
// its collector (tests/workerd/collector.ts); this module sends the traffic,
// reads the collector's tally and the runtime's log, and checks:
//
// - a burst (BURST_REQUESTS requests at concurrency BURST_CONCURRENCY, one
//   event each): every event arrives exactly once, in at least 20x fewer
//   flushes than requests;
// - then a trickle (TRICKLE_ROUNDS rounds of 2 concurrent requests, 10 ms
//   apart): every event arrives exactly once and none waits longer than
//   flushInterval plus generous slack, so the interval timer must fire;
// - the runtime logged none of the warnings of requests that hung or promises
//   that outlived their request.
//
// Every loop is bounded in count and in time. Two checks lean on speed, with
// wide margins: the trickle's bound is eleven times the example's
// flushInterval, and the burst must reach 200 requests/s (as the interval
// alone sends a batch every 100 ms, a slower burst makes more flushes than one
// per 20 requests). The burst's duration is printed with its flush count.

import { Buffer } from "node:buffer";
import { Agent, request as httpRequest } from "node:http";

/** The example's capacity and flushInterval (examples/cloudflare_worker/worker.ts). */
const CAPACITY = 100;
const FLUSH_INTERVAL_MS = 100;

const BURST_REQUESTS = 2_003; // not a multiple of the capacity: the last batch needs the interval
const BURST_CONCURRENCY = 50;
/** The burst needs a few seconds; past this, no new request starts. */
const BURST_DEADLINE_MS = 15_000;
const MIN_REQUESTS_PER_FLUSH = 20;

const TRICKLE_ROUNDS = 49; // 98 events, fewer than one full batch: only the interval sends them
const TRICKLE_PARALLEL = 2;
const TRICKLE_GAP_MS = 10;
/** The trickle needs about a second; past this, no new round starts. */
const TRICKLE_DEADLINE_MS = 10_000;
/** flushInterval + the flush's own time + slack for a loaded 2-core machine. */
const TRICKLE_MAX_WAIT_MS = FLUSH_INTERVAL_MS + 1_000;

const REQUEST_TIMEOUT_MS = 5_000;
/** How long to wait for events that have not arrived yet, after each phase. */
const DELIVERY_DEADLINE_MS = 3_000;
/** After everything arrived: a late duplicate would arrive within a few intervals. */
const DUPLICATE_WINDOW_MS = 3 * FLUSH_INTERVAL_MS;
const POLL_MS = 25;

/** What the runtime logs when a request hangs or a promise outlives its request. */
export const WARNING_PATTERNS = [
  /canceled this request/i,
  /promise was created by a request that has since ended/i,
  /Cannot perform I\/O/i,
  /\bhung\b/i,
];

/**
 * POSTs JSON with node:http: at a burst's rate, fetch() costs the client
 * several times more CPU, which a 2-core machine takes from the runtime.
 */
function post(agent, url, body) {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode, text }));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end(body);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `task(i)` for i < count, `limit` at a time, starting none after `deadline`. */
async function pool(count, limit, deadline, task) {
  let next = 0;
  const worker = async () => {
    while (next < count && Date.now() < deadline) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/**
 * Drives the example and returns `{ checks: [{ ok, name, detail }], summary }`.
 *
 * @param options.label Names the runtime in the summary, e.g. "workerd 2026-11-17".
 * @param options.exampleUrl The example's origin, e.g. "http://127.0.0.1:8787".
 * @param options.tally () => Promise<{ batches }>: GET /tally on the collector.
 * @param options.log () => string: the runtime's stdout and stderr so far.
 */
export async function runSharedE2E({ label, exampleUrl, tally, log }) {
  const agent = new Agent({ keepAlive: true, maxSockets: BURST_CONCURRENCY });
  try {
    return await drive({ label, agent, eventsUrl: new URL("/events", exampleUrl), tally, log });
  } finally {
    agent.destroy();
  }
}

async function drive({ label, agent, eventsUrl, tally, log }) {
  const checks = [];
  const check = (ok, name, detail) => checks.push({ ok, name, detail });
  const failures = new Map(); // status or error -> count
  const sent = new Map(); // id -> phase

  async function send(id, phase) {
    sent.set(id, phase);
    let outcome;
    try {
      const body = JSON.stringify({ id, type: "e2e", data: { sentAt: Date.now() } });
      const { status, text } = await post(agent, eventsUrl, body);
      outcome = status === 202 ? undefined : `${status} ${text.slice(0, 200)}`;
    } catch (error) {
      outcome = String(error?.message ?? error);
    }
    if (outcome !== undefined) failures.set(outcome, (failures.get(outcome) ?? 0) + 1);
    return outcome;
  }

  /**
   * Polls the tally until every id sent so far has arrived, or the deadline;
   * returns the ids still missing.
   */
  async function awaitDelivery() {
    const deadline = Date.now() + DELIVERY_DEADLINE_MS;
    for (;;) {
      const { batches } = await tally();
      const arrived = new Set(batches.flatMap((batch) => batch.events.map((event) => event.id)));
      const missing = [...sent.keys()].filter((id) => !arrived.has(id));
      if (missing.length === 0 || Date.now() >= deadline) return missing;
      await sleep(POLL_MS);
    }
  }

  // One request first: a worker that does not load answers every request the same way.
  const first = await send("burst-0", "burst");
  if (first !== undefined) {
    const detail = `the example did not answer 202: ${first}`;
    for (const name of ["burst", "trickle", "warnings"]) check(false, `${name}: not run`, detail);
    return {
      checks,
      summary: `E2E ${label}: not run (${detail.split("\n")[0]})`,
    };
  }

  const burstStarted = Date.now();
  await pool(
    BURST_REQUESTS - 1,
    BURST_CONCURRENCY,
    burstStarted + BURST_DEADLINE_MS,
    (i) => send(`burst-${i + 1}`, "burst"),
  );
  const burstMs = Date.now() - burstStarted;
  // Before the trickle: the burst's last partial batch must not wait for later requests.
  const burstMissing = await awaitDelivery();

  const trickleStarted = Date.now();
  for (
    let round = 0;
    round < TRICKLE_ROUNDS && Date.now() < trickleStarted + TRICKLE_DEADLINE_MS;
    round++
  ) {
    await Promise.all(
      Array.from(
        { length: TRICKLE_PARALLEL },
        (_, k) => send(`trickle-${round * TRICKLE_PARALLEL + k}`, "trickle"),
      ),
    );
    await sleep(TRICKLE_GAP_MS);
  }
  const trickleMs = Date.now() - trickleStarted;
  const missingAfterTrickle = await awaitDelivery();
  if (missingAfterTrickle.length === 0) await sleep(DUPLICATE_WINDOW_MS);

  const { batches } = await tally();
  const seen = new Map(); // id -> { times, arrivedAt, sentAt }
  const flushesWith = { burst: 0, trickle: 0 };
  const batchSizes = [];
  for (const batch of batches) {
    const phases = new Set();
    batchSizes.push(batch.events.length);
    for (const event of batch.events) {
      const entry = seen.get(event.id);
      if (entry === undefined) {
        seen.set(event.id, { times: 1, ...event, arrivedAt: batch.arrivedAt });
      } else entry.times++;
      phases.add(sent.get(event.id));
    }
    for (const phase of phases) if (phase in flushesWith) flushesWith[phase]++;
  }

  const phaseFigures = (phase) => {
    const ids = [...sent].filter(([, p]) => p === phase).map(([id]) => id);
    const missing = ids.filter((id) => !seen.has(id));
    const duplicated = ids.filter((id) => (seen.get(id)?.times ?? 0) > 1);
    const waits = ids.filter((id) => seen.has(id)).map((id) =>
      seen.get(id).arrivedAt - seen.get(id).sentAt
    )
      .sort((a, b) => a - b);
    return { requests: ids.length, missing, duplicated, waits };
  };
  const unknown = [...seen.keys()].filter((id) => !sent.has(id));
  const describeIds = (ids) =>
    ids.length === 0
      ? "none"
      : `${ids.length} (${ids.slice(0, 5).join(", ")}${ids.length > 5 ? ", …" : ""})`;

  const burst = phaseFigures("burst");
  burst.missing = burstMissing; // as the burst left it; later requests may have carried more out
  const trickle = phaseFigures("trickle");
  const failedRequests = [...failures.values()].reduce((a, b) => a + b, 0);

  check(
    failedRequests === 0,
    "every request was answered 202",
    failedRequests === 0
      ? `${sent.size} requests`
      : `${failedRequests} were not: ${
        [...failures].map(([what, n]) => `${n}x ${what}`).join("; ")
      }`,
  );
  check(
    burst.requests === BURST_REQUESTS,
    `burst: ${BURST_REQUESTS} requests sent at concurrency ${BURST_CONCURRENCY}`,
    `${burst.requests} sent in ${burstMs} ms`,
  );
  check(
    burst.missing.length === 0 && burst.duplicated.length === 0,
    `burst: every event arrived exactly once, within ${DELIVERY_DEADLINE_MS} ms of the burst`,
    `missing ${describeIds(burst.missing)}; duplicated ${describeIds(burst.duplicated)}`,
  );
  const ratio = flushesWith.burst === 0 ? 0 : burst.requests / flushesWith.burst;
  check(
    burst.missing.length === 0 && ratio >= MIN_REQUESTS_PER_FLUSH,
    `burst: at least ${MIN_REQUESTS_PER_FLUSH}x fewer flushes than requests`,
    // The interval sends a batch at least every flushInterval: a slow burst makes more flushes.
    `${burst.requests} requests in ${burstMs} ms, ${flushesWith.burst} flushes (${
      ratio.toFixed(1)
    }x)` +
      (burst.missing.length > 0
        ? `, but ${burst.missing.length} event(s) did not arrive in time`
        : ""),
  );
  check(
    trickle.missing.length === 0 && trickle.duplicated.length === 0,
    "trickle: every event arrived exactly once",
    `missing ${describeIds(trickle.missing)}; duplicated ${describeIds(trickle.duplicated)}`,
  );
  const trickleMax = trickle.missing.length > 0 ? Infinity : (trickle.waits.at(-1) ?? NaN);
  const trickleP50 = percentile(trickle.waits, 0.5);
  check(
    trickleMax <= TRICKLE_MAX_WAIT_MS,
    `trickle: no event waited longer than ${TRICKLE_MAX_WAIT_MS} ms (flushInterval ${FLUSH_INTERVAL_MS} ms + slack)`,
    `${trickle.requests} requests in ${trickleMs} ms, ${flushesWith.trickle} flushes; waits from send to arrival: max ${trickleMax} ms, p50 ${trickleP50} ms` +
      (trickle.missing.length > 0
        ? ` (${trickle.missing.length} event(s) never arrived: the interval did not fire)`
        : ""),
  );
  check(
    unknown.length === 0,
    "only the events sent arrived",
    `unknown ids: ${describeIds(unknown)}`,
  );
  check(
    batchSizes.every((size) => size <= CAPACITY),
    `no batch is larger than the capacity (${CAPACITY})`,
    `largest ${Math.max(0, ...batchSizes)}`,
  );
  const warnings = log().split("\n").filter((line) => WARNING_PATTERNS.some((p) => p.test(line)));
  check(
    warnings.length === 0,
    "the runtime logged no warning of a hung request or a promise that outlived its request",
    warnings.length === 0
      ? "0 warnings"
      : `${warnings.length} warnings, e.g.\n    ${warnings.slice(0, 3).join("\n    ")}`,
  );

  const summary =
    `E2E ${label}: burst requests=${burst.requests} ms=${burstMs} flushes=${flushesWith.burst} ` +
    `ratio=${
      ratio.toFixed(1)
    }x missing=${burst.missing.length} duplicated=${burst.duplicated.length}; ` +
    `trickle requests=${trickle.requests} flushes=${flushesWith.trickle} max_wait_ms=${trickleMax} ` +
    `p50_wait_ms=${trickleP50} missing=${trickle.missing.length} duplicated=${trickle.duplicated.length}; ` +
    `failed_requests=${failedRequests} warnings=${warnings.length}`;
  return { checks, summary };
}

/** Prints the checks as `CHECK ok|FAIL <name>: <detail>` lines; returns [passed, failed]. */
export function printChecks(prefix, checks) {
  let passed = 0;
  for (const { ok, name, detail } of checks) {
    if (ok) passed++;
    console.log(`CHECK ${ok ? "ok" : "FAIL"} ${prefix}${name}: ${detail}`);
  }
  return [passed, checks.length - passed];
}
