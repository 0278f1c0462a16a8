// Soak test for BatchBuffer: `deno task soak` (or `npm run soak`), i.e.
// `deno run -A tests/soak.ts [flags]`. Not part of `deno test`.
//
//   --items N            items pushed through one buffer (default 10000000)
//   --runs-multiplier N  property runs = N x the normal test run (default 100; 0 skips)
//   --blocked N          producers blocked on a stalled flush (default 10000)
//   --stall-ms N         how long the flush stays stalled (default 3000)
//
// Three parts, each reconciled exactly; any mismatch exits with code 1:
// 1. N producers blocked on a stalled flush: the heap stays flat while they wait.
// 2. Millions of items through one buffer from 8 producers, with 1% of flushes
//    failing and random aborts: every item is accounted for, exactly once.
// 3. Every property of `npm test` with N x its runs there (100x by default): the
//    model-based ones and the random-fault one of tests/model.ts, the keyed ones of
//    tests/keyed_model.ts, the delivery ones of tests/delivery_model.ts and the
//    hook fuzz of tests/fuzz_model.ts.
import process from "node:process";
import v8 from "node:v8";
import vm from "node:vm";
import { BatchBuffer, BufferClosedError } from "../mod.ts";
import {
  checkProperty,
  checkRandomFaults,
  PROPERTIES,
  PROPERTY_RUNS,
  RANDOM_FAULTS_NAME,
} from "./model.ts";
import { checkKeyedProperty, KEYED_PROPERTIES } from "./keyed_model.ts";
import { checkDeliveryProperty, DELIVERY_PROPERTIES } from "./delivery_model.ts";
import { checkFuzz, FUZZ_NAME } from "./fuzz_model.ts";

function flag(name: string, fallback: number): number {
  const args = process.argv.slice(2);
  const index = args.indexOf(`--${name}`);
  const raw = index >= 0 ? args[index + 1] : args.find((a) => a.startsWith(`--${name}=`))
    ?.slice(name.length + 3);
  if (raw === undefined) return fallback;
  const value = Number(raw.replaceAll("_", ""));
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`--${name} needs a whole number >= 0, received ${raw}`);
    process.exit(2);
  }
  return value;
}

const ITEMS = flag("items", 10_000_000);
const RUNS_MULTIPLIER = flag("runs-multiplier", 100);
const BLOCKED = flag("blocked", 10_000);
const STALL_MS = flag("stall-ms", 3_000);
const PRODUCERS = 8;

let failures = 0;
function check(ok: boolean, what: string): void {
  if (!ok) {
    failures++;
    console.error(`FAIL: ${what}`);
  }
}

/** A full garbage collection where the runtime allows one (Deno and Node via V8 flags, Bun.gc). */
const collect: () => void = (() => {
  const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (typeof g.gc === "function") return g.gc;
  if (g.Bun !== undefined) return () => g.Bun!.gc(true);
  try {
    v8.setFlagsFromString("--expose-gc");
    return vm.runInNewContext("gc") as () => void;
  } catch {
    return () => {};
  }
})();

function heapMiB(): number {
  collect();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

const fmt = (n: number) => n.toLocaleString("en-US");
const mib = (n: number) => `${n.toFixed(1)} MiB`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- 1. stalled flush

async function stalledFlush(): Promise<void> {
  console.log(`\n## 1. ${fmt(BLOCKED)} producers blocked on a stalled flush for ${STALL_MS} ms`);
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => (release = resolve));
  let flushedItems = 0;
  const buffer = new BatchBuffer<number>({
    capacity: 100,
    chanSize: 100,
    flushInterval: 1_000,
    flush: async (batch) => {
      await stalled;
      flushedItems += batch.length;
    },
  });
  const running = buffer.run();
  const before = heapMiB();
  // 100 items fill the first batch (now stalled in flush), 100 more fill the channel.
  for (let i = 0; i < 200; i++) await buffer.add(i);
  let accepted = 200;
  const waiting: Promise<void>[] = [];
  for (let i = 0; i < BLOCKED; i++) {
    waiting.push(buffer.add(200 + i).then(() => void accepted++));
  }
  await sleep(10);
  check(accepted === 200, `producers should be blocked, yet ${accepted - 200} got through`);
  check(buffer.itemsInChannel === 100, `itemsInChannel ${buffer.itemsInChannel} !== chanSize 100`);
  const blocked = heapMiB();
  const samples: number[] = [];
  const start = Date.now();
  while (Date.now() - start < STALL_MS) {
    await sleep(Math.max(1, STALL_MS / 10));
    samples.push(heapMiB());
  }
  const growth = Math.max(...samples) - samples[0];
  console.log(`heap before: ${mib(before)}`);
  console.log(
    `heap with ${fmt(BLOCKED)} producers blocked: ${mib(blocked)} (${
      (((blocked - before) * 1024 * 1024) / Math.max(1, BLOCKED)).toFixed(0)
    } bytes per blocked producer)`,
  );
  console.log(`heap while stalled: ${samples.map((s) => s.toFixed(1)).join(", ")} MiB`);
  console.log(`growth while stalled: ${mib(growth)}`);
  check(growth < 1, `heap grew ${mib(growth)} while nothing could move (should stay flat)`);
  release();
  await Promise.all(waiting);
  buffer.close();
  await running;
  const total = 200 + BLOCKED;
  const s = buffer.stats();
  check(accepted === total && s.added === total, `accepted ${accepted}, added ${s.added}`);
  check(flushedItems === total && s.flushedItems === total, `flushed ${flushedItems}/${total}`);
  waiting.length = 0;
  console.log(`after release: all ${fmt(total)} items flushed; heap ${mib(heapMiB())}`);
}

// ---------------------------------------------------------------- 2. millions of items

async function millions(): Promise<void> {
  console.log(
    `\n## 2. ${fmt(ITEMS)} items, ${PRODUCERS} producers, 1% failed flushes, random aborts`,
  );
  // 0: not offered yet, 1: accepted (add resolved), 2: refused (add rejected)
  const fate = new Uint8Array(ITEMS);
  // how many times each item was handed out (flush or onReject)
  const handedOut = new Uint8Array(ITEMS);
  let random = 0x2545f491; // xorshift: deterministic and cheap
  const rand = () => {
    random ^= random << 13;
    random ^= random >>> 17;
    random ^= random << 5;
    return (random >>> 0) / 4294967296;
  };
  let flushCalls = 0;
  let failedFlushes = 0;
  let failedItems = 0;
  let okFlushes = 0;
  let okItems = 0;
  let reportedFailures = 0;
  let reportedItems = 0;
  let refusedByAbort = 0;
  let abortedWhileWaiting = 0;
  let maxInFlight = 0;
  const buffer = new BatchBuffer<number>({
    capacity: 500,
    chanSize: 2_000,
    maxConcurrentFlushes: 4,
    flushInterval: 20,
    canAdd: (_batch, id) => id % 9_973 !== 0, // a few go to onReject
    onReject: (id) => void handedOut[id]++,
    flush: async (batch) => {
      flushCalls++;
      maxInFlight = Math.max(maxInFlight, buffer.stats().flushesInFlight);
      for (let i = 0; i < batch.length; i++) handedOut[batch[i]]++;
      const roll = rand();
      if (roll < 0.005) throw new Error("flush failed (sync part)");
      if (roll < 0.05) await sleep(0); // a slow backend now and then: producers wait
      else await null;
      if (roll > 0.995) throw new Error("flush failed (async)");
    },
    onFlushError: (_error, batch) => {
      reportedFailures++;
      reportedItems += batch.length;
    },
  });
  const heapBefore = heapMiB();
  const started = performance.now();
  const running = buffer.run();
  const producer = async (p: number) => {
    for (let id = p; id < ITEMS; id += PRODUCERS) {
      const roll = rand();
      try {
        if (roll < 0.0005) {
          await buffer.add(id, { signal: AbortSignal.abort(new Error("gave up")) });
        } else if (roll < 0.005) {
          // Aborts a moment later: only refused if the add is still waiting for room.
          const controller = new AbortController();
          const reason = new Error("timed out");
          if (roll < 0.003) queueMicrotask(() => controller.abort(reason));
          else setTimeout(() => controller.abort(reason), 0);
          await buffer.add(id, { signal: controller.signal }).catch((error) => {
            if (error === reason) abortedWhileWaiting++;
            throw error;
          });
        } else if (roll < 0.01) {
          if (!buffer.tryAdd(id)) await buffer.add(id);
        } else {
          await buffer.add(id);
        }
        fate[id] = 1;
      } catch (error) {
        if (error instanceof BufferClosedError) throw error;
        fate[id] = 2;
        refusedByAbort++;
      }
    }
  };
  let lastReport = started;
  const progress = setInterval(() => {
    const now = performance.now();
    if (now - lastReport < 5_000) return;
    lastReport = now;
    const s = buffer.stats();
    console.log(
      `  ... ${fmt(s.added)} accepted, heap ${mib(process.memoryUsage().heapUsed / 1048576)}`,
    );
  }, 1_000);
  await Promise.all(Array.from({ length: PRODUCERS }, (_, p) => producer(p)));
  buffer.close();
  await running;
  clearInterval(progress);
  const seconds = (performance.now() - started) / 1000;
  const heapAfter = heapMiB();

  // Reconcile item by item.
  let accepted = 0;
  let refused = 0;
  let lost = 0;
  let duplicated = 0;
  let leaked = 0;
  for (let id = 0; id < ITEMS; id++) {
    if (fate[id] === 1) {
      accepted++;
      if (handedOut[id] === 0) lost++;
      if (handedOut[id] > 1) duplicated++;
    } else {
      refused++;
      if (handedOut[id] !== 0) leaked++;
    }
  }
  const s = buffer.stats();
  failedFlushes = s.failedFlushes;
  failedItems = s.failedItems;
  okFlushes = s.flushes;
  okItems = s.flushedItems;
  console.log(`time: ${seconds.toFixed(1)} s (${fmt(Math.round(ITEMS / seconds))} items/s)`);
  console.log(
    `offered ${fmt(ITEMS)} = accepted ${fmt(accepted)} + refused by abort ${fmt(refused)} (${
      fmt(abortedWhileWaiting)
    } aborted while waiting for room)`,
  );
  console.log(
    `accepted ${fmt(accepted)} = flushed ${fmt(okItems)} + failed ${fmt(failedItems)} + rejected ${
      fmt(s.rejected)
    }`,
  );
  console.log(
    `flushes: ${fmt(flushCalls)} = ${fmt(okFlushes)} ok + ${fmt(failedFlushes)} failed (${
      (100 * failedFlushes / Math.max(1, flushCalls)).toFixed(2)
    }%), at most ${maxInFlight} in flight`,
  );
  console.log(`lost ${lost}, duplicated ${duplicated}, refused-but-flushed ${leaked}`);
  console.log(`stats(): ${JSON.stringify(s)}`);
  console.log(`heap before: ${mib(heapBefore)}, after: ${mib(heapAfter)}`);
  check(accepted + refused === ITEMS, "every item was either accepted or refused");
  check(refused === refusedByAbort, "refusals are all aborts");
  check(lost === 0 && duplicated === 0 && leaked === 0, "exactly-once hand-out");
  check(s.added === accepted, `stats.added ${s.added} !== accepted ${accepted}`);
  check(okItems + failedItems + s.rejected === accepted, "flushed + failed + rejected = accepted");
  check(okFlushes + failedFlushes === flushCalls, "every flush call settled once");
  check(reportedFailures === failedFlushes, "onFlushError saw every failed flush");
  check(reportedItems === failedItems, "onFlushError saw every failed item");
  check(
    s.inFlightItems + s.itemsInChannel + s.itemsInBatch + s.flushesInFlight === 0,
    "nothing pending after run() resolved",
  );
  check(
    failedFlushes > 0 && abortedWhileWaiting > 0 && s.rejected > 0,
    "faults and aborts really happened",
  );
  check(maxInFlight <= 4, `at most maxConcurrentFlushes in flight, saw ${maxInFlight}`);
  check(heapAfter - heapBefore < 64, `heap grew ${mib(heapAfter - heapBefore)} over the run`);
}

// ---------------------------------------------------------------- 3. properties x100

async function properties(): Promise<void> {
  if (RUNS_MULTIPLIER === 0) return;
  // Each property gets its npm-test runs (PROPERTY_RUNS, shared by every model) times the multiplier.
  const model = PROPERTY_RUNS * RUNS_MULTIPLIER;
  const all: [string, number, (runs: number) => Promise<void>][] = [
    ...PROPERTIES.map((p): [string, number, (runs: number) => Promise<void>] => [
      p.name,
      model,
      (runs) => checkProperty(p, runs),
    ]),
    [RANDOM_FAULTS_NAME, model, (runs) => checkRandomFaults(runs)],
    ...KEYED_PROPERTIES.map((p): [string, number, (runs: number) => Promise<void>] => [
      `keyed: ${p.name}`,
      model,
      (runs) => checkKeyedProperty(p, runs),
    ]),
    ...DELIVERY_PROPERTIES.map((p): [string, number, (runs: number) => Promise<void>] => [
      `delivery: ${p.name}`,
      model,
      (runs) => checkDeliveryProperty(p, runs),
    ]),
    [`fuzz: ${FUZZ_NAME}`, model, (runs) => checkFuzz(runs)],
  ];
  console.log(`\n## 3. ${all.length} properties, ${RUNS_MULTIPLIER}x their npm-test runs`);
  const partStarted = performance.now();
  for (const [name, runs, checkIt] of all) {
    const started = performance.now();
    try {
      await checkIt(runs);
      console.log(
        `ok   ${name} (${fmt(runs)} runs, ${((performance.now() - started) / 1000).toFixed(1)} s)`,
      );
    } catch (error) {
      // fast-check 4 keeps the violated assertion in `cause`, not in the message
      // (checkFuzz appends it itself): print both, with fast-check's seed and path.
      const message = error instanceof Error ? error.message : String(error);
      const cause = error instanceof Error ? error.cause : undefined;
      const violation = cause instanceof Error && !message.includes(cause.message)
        ? `\n${cause.stack ?? cause.message}`
        : "";
      check(false, `${name} (${fmt(runs)} runs)\n${message}${violation}`);
    }
  }
  console.log(`properties: ${((performance.now() - partStarted) / 1000).toFixed(1)} s in all`);
}

const runtime = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent ??
  `Node.js ${process.version}`;
console.log(`# BatchBuffer soak (${runtime}, heap measured after a full GC)`);
await stalledFlush();
if (ITEMS > 0) await millions();
await properties();
console.log(failures === 0 ? "\nsoak: all reconciled" : `\nsoak: ${failures} check(s) FAILED`);
process.exit(failures === 0 ? 0 : 1);
