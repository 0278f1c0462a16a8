/**
 * A smoke suite of the public API that runs in any runtime with web
 * standards: the browser run (tests/browser/run.mjs) and the workerd run
 * (tests/workerd/) both bundle it with mod.ts. It needs no node: modules, so
 * it carries its own small assertions.
 *
 * Only the interval check uses a real timer (20 ms); it waits on a promise
 * resolved by the flush, with a generous deadline, never on a fixed sleep.
 */
import { BatchBuffer, BatchStream, BufferClosedError, type FlushReason } from "../../mod.ts";

/** One named check of the suite. */
export interface SmokeCheck {
  name: string;
  fn: () => Promise<void>;
}

/** The outcome of one check. */
export interface SmokeResult {
  name: string;
  ok: boolean;
  error?: string;
}

/** How long the interval check waits for its flush before failing. */
const INTERVAL_DEADLINE_MS = 10_000;

function fail(message: string): never {
  throw new Error(message);
}

function assertEqual<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

function assertTrue(condition: unknown, what: string): void {
  if (!condition) fail(what);
}

async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return fail(`${what}: expected a rejection`);
}

/** Lets pending promise callbacks run, without timers. */
async function settleMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Resolves with the promise, or rejects once `ms` have passed; leaves no timer behind. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

interface Recorded<T> {
  batches: T[][];
  reasons: FlushReason[];
}

function recorder<T>(): Recorded<T> & { flush: (batch: T[], c: { reason: FlushReason }) => void } {
  const batches: T[][] = [];
  const reasons: FlushReason[] = [];
  return {
    batches,
    reasons,
    flush: (batch, { reason }) => {
      batches.push(batch);
      reasons.push(reason);
    },
  };
}

/** The checks, in the order they run. */
export const smokeChecks: SmokeCheck[] = [
  {
    name: "add() fills batches up to capacity and close() flushes the rest",
    fn: async () => {
      const sent = recorder<number>();
      const buffer = new BatchBuffer<number>({ capacity: 3, flush: sent.flush });
      const running = buffer.run();
      for (let i = 0; i < 7; i++) await buffer.add(i);
      buffer.close();
      await running;
      assertEqual(sent.batches, [[0, 1, 2], [3, 4, 5], [6]], "batches");
      assertEqual(sent.reasons, ["full", "full", "close"], "reasons");
    },
  },
  {
    name: "a partial batch is flushed once flushInterval has passed",
    fn: async () => {
      let flushed!: (value: { batch: string[]; reason: FlushReason }) => void;
      const firstFlush = new Promise<{ batch: string[]; reason: FlushReason }>((resolve) =>
        flushed = resolve
      );
      const buffer = new BatchBuffer<string>({
        capacity: 100,
        flushInterval: 20,
        flush: (batch, { reason }) => flushed({ batch, reason }),
      });
      const running = buffer.run();
      await buffer.add("lonely");
      const { batch, reason } = await within(firstFlush, INTERVAL_DEADLINE_MS, "interval flush");
      assertEqual(batch, ["lonely"], "batch");
      assertEqual(reason, "interval", "reason");
      buffer.close();
      await running;
    },
  },
  {
    name: "flush() sends the partial batch and resolves after that flush settled",
    fn: async () => {
      const reasons: FlushReason[] = [];
      let settled = 0;
      const buffer = new BatchBuffer<number>({
        capacity: 100,
        flush: async (batch, { reason }) => {
          reasons.push(reason);
          await settleMicrotasks();
          settled += batch.length;
        },
      });
      const running = buffer.run();
      await buffer.add(1);
      await buffer.add(2);
      await buffer.flush();
      assertEqual(settled, 2, "items whose flush settled before flush() resolved");
      assertEqual(reasons, ["manual"], "reasons");
      buffer.close();
      await running;
    },
  },
  {
    name: "add() waits for room while the flush is busy and rejects when its signal aborts",
    fn: async () => {
      const sent = recorder<number>();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const buffer = new BatchBuffer<number>({
        capacity: 1,
        chanSize: 1,
        flush: async (batch, context) => {
          sent.flush(batch, context);
          await gate;
        },
      });
      const running = buffer.run();
      await buffer.add(1); // taken at once, its flush blocks on the gate
      await buffer.add(2); // fills the channel
      const controller = new AbortController();
      let settledEarly = false;
      const waiting = buffer.add(3, { signal: controller.signal });
      waiting.then(() => (settledEarly = true), () => (settledEarly = true));
      await settleMicrotasks();
      assertTrue(!settledEarly, "add(3) waits while the channel is full");
      const reason = new Error("gave up");
      controller.abort(reason);
      assertTrue((await rejection(waiting, "aborted add")) === reason, "rejects with the reason");
      assertEqual(buffer.stats().added, 2, "the aborted item was not added");
      release();
      buffer.close();
      await running;
      assertEqual(sent.batches, [[1], [2]], "batches");
    },
  },
  {
    name: "close() refuses waiting and later adds with BufferClosedError and keeps accepted items",
    fn: async () => {
      const sent = recorder<string>();
      const buffer = new BatchBuffer<string>({ capacity: 10, chanSize: 1, flush: sent.flush });
      await buffer.add("kept"); // waits in the channel: run() is not called yet
      const waiting = buffer.add("waiting");
      buffer.close();
      const refused = await rejection(waiting, "waiting add");
      assertTrue(refused instanceof BufferClosedError, "waiting add: BufferClosedError");
      assertEqual((refused as BufferClosedError).item, "waiting", "the refused item");
      const late = await rejection(buffer.add("late"), "add after close");
      assertTrue(late instanceof BufferClosedError, "add after close: BufferClosedError");
      await buffer.run();
      assertEqual(sent.batches, [["kept"]], "batches");
      assertEqual(sent.reasons, ["close"], "reasons");
    },
  },
  {
    name: "BatchStream turns a stream of items into a stream of batches",
    fn: async () => {
      const source = new ReadableStream<number>({
        start(controller) {
          for (let i = 1; i <= 5; i++) controller.enqueue(i);
          controller.close();
        },
      });
      const reader = source.pipeThrough(new BatchStream<number>({ capacity: 2 })).getReader();
      const batches: number[][] = [];
      for (let r = await reader.read(); !r.done; r = await reader.read()) batches.push(r.value);
      assertEqual(batches, [[1, 2], [3, 4], [5]], "batches");
    },
  },
  {
    name: "writable takes piped items and closing it closes the buffer",
    fn: async () => {
      const sent = recorder<number>();
      const buffer = new BatchBuffer<number>({ capacity: 2, flush: sent.flush });
      const running = buffer.run();
      const source = new ReadableStream<number>({
        start(controller) {
          for (let i = 1; i <= 5; i++) controller.enqueue(i);
          controller.close();
        },
      });
      await source.pipeTo(buffer.writable);
      await running;
      assertEqual(sent.batches, [[1, 2], [3, 4], [5]], "batches");
      const late = await rejection(buffer.add(6), "add after the stream closed");
      assertTrue(late instanceof BufferClosedError, "add after the stream closed");
    },
  },
  {
    name: "waitUntil receives a promise for every flush and every batch that opened",
    fn: async () => {
      const handed: Promise<unknown>[] = [];
      const buffer = new BatchBuffer<number>({
        capacity: 2,
        flush: async () => {
          await settleMicrotasks();
        },
        waitUntil: (promise) => handed.push(promise),
      });
      const running = buffer.run();
      for (let i = 0; i < 5; i++) await buffer.add(i);
      buffer.close();
      await running;
      // Three flushes, and a keep-alive for each of the three batches that opened.
      assertEqual(handed.length, 6, "promises handed to waitUntil");
      await Promise.all(handed);
      assertEqual(buffer.stats().flushes, 3, "flushes");
    },
  },
];

/** Runs every check in order, logging `CHECK ok <name>` or `CHECK FAIL <name>: <error>`. */
export async function runSmokeSuite(
  checks: SmokeCheck[] = smokeChecks,
  log: (line: string) => void = (line) => console.log(line),
): Promise<SmokeResult[]> {
  const results: SmokeResult[] = [];
  for (const check of checks) {
    try {
      await check.fn();
      results.push({ name: check.name, ok: true });
      log(`CHECK ok ${check.name}`);
    } catch (error) {
      const text = error instanceof Error ? error.stack ?? String(error) : String(error);
      results.push({ name: check.name, ok: false, error: text });
      log(`CHECK FAIL ${check.name}: ${text}`);
    }
  }
  return results;
}
