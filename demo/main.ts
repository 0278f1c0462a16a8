/**
 * The @batchkit/buffer demo: producers add events to a BatchBuffer whose flush
 * POSTs each batch to a real HTTP collector on loopback, retried by the
 * buffer's `retry` option, with a dead-letter list; the summary checks that every event is accounted for.
 *
 * Run: `deno task demo` or `npm run demo` (add `-- --help` for the flags).
 *
 * @module
 */
import { BatchBuffer, parseRetryAfter } from "../mod.ts";
import { type DemoEvent, startCollector } from "./collector.ts";
import { type DemoOptions, FlagError, HELP, parseFlags } from "./flags.ts";
import { startProgress } from "./progress.ts";
import { count, duration, Durations, rate } from "./stats.ts";

const options = readFlags();

function readFlags(): DemoOptions {
  try {
    const options = parseFlags(Deno.args);
    if (options.help) {
      console.log(HELP);
      Deno.exit(0);
    }
    return options;
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    console.error(`demo: ${error.message}\nRun with --help to see the flags.`);
    Deno.exit(2);
  }
}

const COMPARE_SAMPLE = 5_000;
const COMPARE_TIME_LIMIT_MS = 5_000;

const collector = startCollector(options);
let requests = 0;

/** The collector refused a request; `retryAfter` is its Retry-After header in ms, if any. */
class CollectorError extends Error {
  constructor(readonly status: number, readonly retryAfter: number | undefined) {
    super(`collector answered ${status}`);
    this.name = "CollectorError";
  }
}

/** POSTs JSON once; throws on a refusal (the buffer's `retry` decides what happens next). */
async function post(path: string, body: unknown): Promise<void> {
  requests++;
  const response = await fetch(collector.url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await response.body?.cancel();
  if (response.ok) return;
  // On 429 and 503 the buffer waits exactly as long as the collector asks, if it does.
  const busy = response.status === 429 || response.status === 503;
  const retryAfter = busy ? parseRetryAfter(response.headers.get("retry-after")) : undefined;
  throw new CollectorError(response.status, retryAfter);
}

// A real service would write dead letters somewhere durable (a queue, a file).
const deadLetters: DemoEvent[] = [];
const buffer = new BatchBuffer<DemoEvent>({
  capacity: options.capacity,
  flushInterval: options.interval,
  maxConcurrentFlushes: options.concurrency,
  flush: (batch) => post("/batch", batch),
  // Four tries in all, 10 ms, 20 ms, 40 ms apart before jitter; a 4xx other than 429 is final.
  retry: {
    attempts: 4,
    initialDelay: 10,
    maxDelay: 1_000,
    retryable: (error) =>
      !(error instanceof CollectorError) || error.status === 429 || error.status >= 500,
  },
  onFlushError: (_error, batch) => deadLetters.push(...batch),
});

// Ctrl-C stops the producers early; the shutdown below still delivers what they added.
let stopping = false;
const onInterrupt = () => (stopping = true);
Deno.addSignalListener("SIGINT", onInterrupt);

let produced = 0;
const addWaits = new Durations(options.items);

async function produce(producer: number): Promise<void> {
  while (produced < options.items && !stopping) {
    const event = { id: produced++, producer, name: "page_view", at: Date.now() };
    const start = performance.now();
    await buffer.add(event); // waits while the channel is full: backpressure
    addWaits.record(performance.now() - start);
  }
}

console.log(
  `demo: ${count(options.items)} events, ${options.producers} producers -> BatchBuffer ` +
    `(capacity ${options.capacity}, flushInterval ${options.interval} ms, ` +
    `maxConcurrentFlushes ${options.concurrency}) -> POST ${collector.url}/batch ` +
    `(latency ${options.latency} ms, fail rate ${options.failRate})`,
);
const started = performance.now();
const running = buffer.run();
const stopProgress = startProgress(() => {
  const stats = buffer.stats();
  return { ...stats, batches: stats.flushes + stats.failedFlushes };
});

// The shutdown sequence: stop the producers, close, await the run.
await Promise.all(Array.from({ length: options.producers }, (_, i) => produce(i)));
buffer.close();
await running;
const elapsed = performance.now() - started;
stopProgress();
Deno.removeSignalListener("SIGINT", onInterrupt);

const batchRequests = requests;
const final = buffer.stats();
const [p50, p99] = addWaits.percentiles(50, 99);
const reconciled = collector.received + deadLetters.length === produced &&
  collector.uniqueIds === collector.received;
console.log(
  [
    "",
    "Summary",
    `  produced         ${count(produced)} events${stopping ? " (stopped early by Ctrl-C)" : ""}`,
    `  received         ${count(collector.received)} events, ${
      count(collector.uniqueIds)
    } unique ids`,
    `  dead-lettered    ${count(deadLetters.length)} events in ${count(final.failedFlushes)} ${
      final.failedFlushes === 1 ? "batch" : "batches"
    }`,
    `  retries          ${count(final.retries)} (tries after the first, over all batches)`,
    `  reconciled       ${
      reconciled ? "yes: received + dead-lettered = produced" : "NO: events are missing"
    }`,
    `  batches          ${count(collector.batches)} delivered, mean size ${
      (collector.received / Math.max(1, collector.batches)).toFixed(1)
    }`,
    `  elapsed          ${duration(elapsed)} (${rate(produced, elapsed)})`,
    `  requests saved   ${count(produced - batchRequests)} (${
      count(batchRequests)
    } requests instead of ${count(produced)}, one per event)`,
    `  add() waited     p50 ${duration(p50)}, p99 ${duration(p99)}`,
  ].join("\n"),
);

if (options.compare && !stopping) await compare();
await collector.shutdown();
if (!reconciled) Deno.exit(1);

/** Sends a sample of events one request each, from as many producers, and prints both rates. */
async function compare(): Promise<void> {
  const sample = Math.min(options.items, COMPARE_SAMPLE);
  const deadline = performance.now() + COMPARE_TIME_LIMIT_MS;
  let sent = 0;
  const start = performance.now();
  const sendOneByOne = async (producer: number) => {
    while (sent < sample && performance.now() < deadline) {
      await post("/event", { id: sent++, producer, name: "page_view", at: Date.now() })
        .catch(() => {}); // dead letters of this phase do not matter for the rate
    }
  };
  await Promise.all(Array.from({ length: options.producers }, (_, i) => sendOneByOne(i)));
  const oneByOne = performance.now() - start;
  const speedup = collector.singles === 0
    ? "no single request got through"
    : `batching was ${
      ((collector.received / elapsed) / (collector.singles / oneByOne)).toFixed(0)
    }x faster`;
  console.log(
    [
      "",
      "Compare (same run, same collector)",
      `  batched          ${count(collector.received)} events in ${duration(elapsed)}: ${
        rate(collector.received, elapsed)
      }`,
      `  one per request  ${count(collector.singles)} events in ${duration(oneByOne)}: ${
        rate(collector.singles, oneByOne)
      }${sent < options.items ? " (a sample)" : ""}`,
      `  ${speedup}`,
    ].join("\n"),
  );
}
