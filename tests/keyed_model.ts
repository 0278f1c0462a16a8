// Issue 12: batches by key and a byte bound on everything buffered. This file
// holds the model-based property run by tests/keyed_property.test.ts. Not a
// test file.
//
// The model follows tests/model.ts: a random config plus random producers;
// fast-check's scheduler decides when each producer steps, when each async
// flush settles, when aborts fire, when the fake clock ticks and when the
// buffer closes. At every step it checks conservation, order per key, at most
// one flight per key, the count and byte bounds and stats() reconciliation.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BatchBuffer,
  type BatchBufferConfig,
  BufferClosedError,
  type FlushContext,
} from "../mod.ts";
import { type Clock, installClock, track } from "./helpers.ts";
import {
  type AbortMode,
  abortSignalFor,
  type Acceptance,
  assertAddAllRejection,
  assertQuietAfterRun,
  assertRefusal,
  assertStatsBounds,
  assertStreamOrder,
  checkScheduled,
  lifecycleArbs,
  type LifecycleScenario,
  type NamedProperty,
  PROPERTY_RUNS,
  RunControl,
  runLifecycle,
  violationLog,
} from "./model.ts";

// -------------------------------------------------------------------- model

/** What one flush call does. */
export type KeyedFlushOutcome =
  | { readonly kind: "sync" }
  | { readonly kind: "syncThrow" }
  | { readonly kind: "async" }
  | { readonly kind: "asyncReject" }
  | { readonly kind: "delayed"; readonly ms: number }
  | { readonly kind: "untilAbort" };

/**
 * The keys items may carry: 0 and -0 are one key (SameValueZero), NaN is one
 * key, OBJECT_KEY is compared by identity, "0" is not 0.
 */
const OBJECT_KEY = { name: "object key" };
const KEY_VALUES: readonly unknown[] = [0, "a", -0, NaN, undefined, OBJECT_KEY, "0", 1];

/** An item before it gets its id. */
export interface KeyedItemSpec {
  /** Index into KEY_VALUES (taken modulo the scenario's number of keys). */
  readonly key: number;
  /** The key hook throws for this item, so it goes under the key undefined. */
  readonly throwKey: boolean;
  /** -1 stands for an invalid size (NaN). */
  readonly size: number;
  /** canAdd refuses it (when the scenario rejects poison). */
  readonly poison: boolean;
  /** willOverflow says yes for it (when the scenario splits). */
  readonly split: boolean;
}

/** The item type the scenarios push through the buffer. */
export interface KeyedItem extends KeyedItemSpec {
  readonly id: number;
}

/** One step of a producer. */
export type KeyedOp =
  | { readonly kind: "add"; readonly item: KeyedItemSpec; readonly abort: AbortMode }
  | { readonly kind: "tryAdd"; readonly item: KeyedItemSpec }
  | {
    readonly kind: "addAll";
    readonly items: readonly KeyedItemSpec[];
    readonly abort: AbortMode;
    readonly generator: boolean;
  }
  | { readonly kind: "flush" };

/** A random config and workload. */
export interface KeyedScenario extends LifecycleScenario<KeyedOp> {
  readonly capacity: number;
  readonly chanSize: number | undefined;
  readonly maxConcurrentFlushes: number;
  readonly flushInterval: number;
  /** False: no `key` hook, so every item is under the key undefined (today's behaviour). */
  readonly withKey: boolean;
  /** How many of KEY_VALUES the items use. */
  readonly keys: number;
  readonly maxOpenBatches: number | undefined;
  readonly sized: boolean;
  readonly maxBufferedBytes: number | undefined;
  readonly maxBatchBytes: number | undefined;
  readonly maxItemBytes: number | undefined;
  readonly rejectPoison: boolean;
  readonly splitMarked: boolean;
  readonly withOnFlushError: boolean;
  readonly withWaitUntil: boolean;
  readonly outcomes: readonly KeyedFlushOutcome[];
}

/** Knobs for the scenario generator, so each property can aim somewhere. */
export interface KeyedScenarioShape {
  readonly withKey?: "always" | "sometimes";
  readonly maxKeys?: number;
  readonly openBatches?: "always" | "sometimes";
  readonly bufferedBytes?: "always" | "sometimes";
  readonly maxConcurrentFlushes?: number;
  readonly maxProducers?: number;
  readonly maxOps?: number;
  readonly outcomes?: fc.Arbitrary<KeyedFlushOutcome>;
}

const abortModeArb: fc.Arbitrary<AbortMode> = fc.constantFrom<AbortMode>(
  "none",
  "none",
  "before",
  "later",
  "later",
);

/** Every flush outcome, successes more often than failures. */
export const keyedOutcomeArb: fc.Arbitrary<KeyedFlushOutcome> = fc.oneof(
  { arbitrary: fc.constant<KeyedFlushOutcome>({ kind: "sync" }), weight: 3 },
  { arbitrary: fc.constant<KeyedFlushOutcome>({ kind: "async" }), weight: 4 },
  { arbitrary: fc.constant<KeyedFlushOutcome>({ kind: "syncThrow" }), weight: 1 },
  { arbitrary: fc.constant<KeyedFlushOutcome>({ kind: "asyncReject" }), weight: 1 },
  {
    arbitrary: fc.integer({ min: 0, max: 40 }).map((ms): KeyedFlushOutcome => ({
      kind: "delayed",
      ms,
    })),
    weight: 2,
  },
  { arbitrary: fc.constant<KeyedFlushOutcome>({ kind: "untilAbort" }), weight: 1 },
);

/** Items mostly within `maxItemBytes`, some just over it, a few of invalid size. */
function itemArb(maxItemBytes: number): fc.Arbitrary<KeyedItemSpec> {
  return fc.record({
    key: fc.integer({ min: 0, max: KEY_VALUES.length - 1 }),
    throwKey: fc.integer({ min: 0, max: 11 }).map((n) => n === 0),
    size: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: maxItemBytes }), weight: 12 },
      { arbitrary: fc.integer({ min: maxItemBytes + 1, max: maxItemBytes + 3 }), weight: 1 },
      { arbitrary: fc.constant(-1), weight: 1 },
    ),
    poison: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
    split: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
  });
}

function opArb(maxItemBytes: number): fc.Arbitrary<KeyedOp> {
  const item = itemArb(maxItemBytes);
  return fc.oneof(
    {
      arbitrary: fc.record({ kind: fc.constant("add" as const), item, abort: abortModeArb }),
      weight: 6,
    },
    { arbitrary: fc.record({ kind: fc.constant("tryAdd" as const), item }), weight: 2 },
    {
      arbitrary: fc.record({
        kind: fc.constant("addAll" as const),
        items: fc.array(item, { maxLength: 8 }),
        abort: abortModeArb,
        generator: fc.boolean(),
      }),
      weight: 2,
    },
    { arbitrary: fc.constant<KeyedOp>({ kind: "flush" }), weight: 1 },
  );
}

/** Byte limits: maxItemBytes is drawn no larger than either bound, as validation demands. */
interface Bytes {
  readonly sized: boolean;
  readonly maxBufferedBytes: number | undefined;
  readonly maxBatchBytes: number | undefined;
  readonly maxItemBytes: number | undefined;
}

function bytesArb(mode: "always" | "sometimes"): fc.Arbitrary<Bytes> {
  const buffered = mode === "always"
    ? fc.integer({ min: 1, max: 30 })
    : fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined });
  return fc.record({
    maxBufferedBytes: buffered,
    maxBatchBytes: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
    sizedAnyway: fc.boolean(),
  }).chain(({ maxBufferedBytes, maxBatchBytes, sizedAnyway }) => {
    const bound = Math.min(maxBufferedBytes ?? Infinity, maxBatchBytes ?? Infinity);
    const sized = sizedAnyway || bound !== Infinity;
    const maxItemBytes = bound === Infinity
      ? fc.constant(undefined)
      : fc.option(fc.integer({ min: 1, max: bound }), { nil: undefined });
    return maxItemBytes.map((maxItemBytes): Bytes => ({
      sized,
      maxBufferedBytes,
      maxBatchBytes,
      maxItemBytes,
    }));
  });
}

/** Random scenarios of the given shape. */
export function keyedScenarioArb(shape: KeyedScenarioShape = {}): fc.Arbitrary<KeyedScenario> {
  return bytesArb(shape.bufferedBytes ?? "sometimes").chain((bytes) => {
    const bound = bytes.maxItemBytes ??
      Math.min(bytes.maxBufferedBytes ?? Infinity, bytes.maxBatchBytes ?? Infinity);
    const ops = opArb(bound === Infinity ? 6 : bound);
    const maxOpenBatches = fc.integer({ min: 1, max: 4 });
    return fc.record({
      capacity: fc.integer({ min: 1, max: 5 }),
      chanSize: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined, freq: 4 }),
      maxConcurrentFlushes: fc.integer({ min: 1, max: shape.maxConcurrentFlushes ?? 3 }),
      flushInterval: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 50 })),
      withKey: shape.withKey === "always"
        ? fc.constant(true)
        : fc.constantFrom(true, true, true, false),
      keys: fc.integer({ min: 1, max: shape.maxKeys ?? KEY_VALUES.length }),
      maxOpenBatches: shape.openBatches === "always"
        ? maxOpenBatches
        : fc.option(maxOpenBatches, { nil: undefined }),
      sized: fc.constant(bytes.sized),
      maxBufferedBytes: fc.constant(bytes.maxBufferedBytes),
      maxBatchBytes: fc.constant(bytes.maxBatchBytes),
      maxItemBytes: fc.constant(bytes.maxItemBytes),
      rejectPoison: fc.boolean(),
      splitMarked: fc.boolean(),
      withOnFlushError: fc.boolean(),
      withWaitUntil: fc.boolean(),
      outcomes: fc.array(shape.outcomes ?? keyedOutcomeArb, { minLength: 1, maxLength: 6 }),
      ...lifecycleArbs(ops, shape),
    });
  });
}

/** What the scenarios exercised, summed over runs: shows the properties are not vacuous. */
export const keyedCoverage = {
  runs: 0,
  accepted: 0,
  rejected: 0,
  flushes: 0,
  reasons: { full: 0, overflow: 0, interval: 0, close: 0, manual: 0, evict: 0 } as Record<
    string,
    number
  >,
  /** Flushes that started while a flush of another key was in flight. */
  concurrentAcrossKeys: 0,
  /** add() calls that found the byte bound reached and waited. */
  waitedForBytes: 0,
  maxBufferedBytesSeen: 0,
  maxOpenBatchesSeen: 0,
  /** Stalls where bytes held in partial batches kept an add() waiting (see the driver). */
  byteStallsBrokenByFlush: 0,
};

/** The key an item's batch is under: SameValueZero, as Map compares keys. */
function sameKey(a: unknown, b: unknown): boolean {
  return a === b || (a !== a && b !== b);
}

/** Runs one scenario under the scheduler; throws an AssertionError on the first violation. */
export async function runKeyedScenario(s: fc.Scheduler, scenario: KeyedScenario): Promise<void> {
  const clock = installClock();
  try {
    await runUnderClock(s, scenario, clock);
  } finally {
    clock.uninstall();
  }
}

async function runUnderClock(
  s: fc.Scheduler,
  scenario: KeyedScenario,
  clock: Clock,
): Promise<void> {
  const capacity = scenario.capacity;
  const chanSize = scenario.chanSize ?? 2 * capacity;
  const maxFlushes = scenario.maxConcurrentFlushes;
  const maxBuffered = scenario.maxBufferedBytes ?? Infinity;
  const maxBatchBytes = scenario.maxBatchBytes ?? Infinity;
  const maxItemBytes = scenario.maxItemBytes ?? Math.min(maxBatchBytes, maxBuffered);
  const keyPool = KEY_VALUES.slice(0, scenario.keys);

  let seq = 0; // a logical clock for happens-before
  let nextId = 0;
  const handedAt = new Map<number, number>();
  const makeItem = (spec: KeyedItemSpec): KeyedItem => {
    const item = { id: nextId++, ...spec };
    handedAt.set(item.id, clock.now);
    return item;
  };
  const keyValue = (item: KeyedItem): unknown => keyPool[item.key % keyPool.length];
  /** The key the item's batch must be under. */
  const batchKey = (item: KeyedItem): unknown =>
    scenario.withKey && !item.throwKey ? keyValue(item) : undefined;
  const sizeValue = (item: KeyedItem): number => (item.size < 0 ? NaN : item.size);
  /** Goes to onReject when admitted, without waiting. */
  const badSize = (item: KeyedItem) =>
    scenario.sized && (item.size < 0 || item.size > maxItemBytes);
  /** Goes to onReject when the run loop places it. */
  const refusedByCanAdd = (item: KeyedItem) => scenario.rejectPoison && item.poison;
  const rejectEligible = (item: KeyedItem) => badSize(item) || refusedByCanAdd(item);
  /** What the item weighs in bufferedBytes while it is buffered. */
  const weight = (item: KeyedItem) => (scenario.sized && !badSize(item) ? item.size : 0);

  const called = new Map<number, KeyedItem>(); // every item handed to add/tryAdd/addAll
  const accepted = new Map<number, Acceptance>();
  const refused = new Set<number>();
  const processed: KeyedItem[] = [];
  const processedIds = new Set<number>();
  const rejectedIds = new Set<number>();
  const settledIds = new Set<number>();
  const keyCalls = new Map<number, number>();
  /** Flushes in flight by key (SameValueZero, like the buffer). */
  const inFlightByKey = new Map<unknown, number>();
  let flushCalls = 0;
  let openFlushes = 0;
  let okFlushes = 0;
  let okItems = 0;
  let failedFlushes = 0;
  let failedItems = 0;
  const failures = new Map<unknown[], unknown>();
  const flushErrors = new Set<unknown>();
  const keyErrors = new Set<unknown>();
  const reportedKeyErrors = new Set<unknown>();
  /** The item onReject is being called for: the buffer may still count its bytes. */
  let rejecting: number | undefined;
  const reportedBatches = new Set<unknown[]>();
  let wrappedReports = 0;
  const waitUntilStates: ReturnType<typeof track>[] = [];
  let manualFlushCalls = 0;
  /** add() and addAll() calls that have not settled yet. */
  let unsettledAdds = 0;
  const control = new RunControl();
  const log = violationLog();
  const { violations, guard } = log;

  const take = (item: KeyedItem, where: string) => {
    assert.ok(!processedIds.has(item.id), `item ${item.id} handed out twice (${where})`);
    processedIds.add(item.id);
    processed.push(item);
  };

  const settleBatch = (batch: KeyedItem[], key: unknown, error: unknown, failed: boolean) => {
    openFlushes--;
    if (scenario.withKey) inFlightByKey.set(key, inFlightByKey.get(key)! - 1);
    for (const item of batch) settledIds.add(item.id);
    if (failed) {
      failedFlushes++;
      failedItems += batch.length;
      failures.set(batch, error);
      flushErrors.add(error);
    } else {
      okFlushes++;
      okItems += batch.length;
    }
  };

  /** The batch a hook was given must be the item's own key's batch. */
  const checkHookBatch = (hook: string, batch: readonly KeyedItem[], item: KeyedItem) => {
    for (const other of batch) {
      assert.ok(
        sameKey(batchKey(other), batchKey(item)),
        `${hook} for item ${item.id} got a batch holding item ${other.id} of another key`,
      );
    }
  };

  const checkFlushCall = (batch: KeyedItem[], context: FlushContext, ours: boolean) => {
    keyedCoverage.reasons[context.reason]++;
    assert.ok(batch.length > 0, "empty flush");
    assert.ok(openFlushes <= maxFlushes, `${openFlushes} flushes open, limit ${maxFlushes}`);
    assert.ok(batch.length <= capacity, `batch of ${batch.length} over capacity ${capacity}`);
    const bytes = batch.reduce((sum, item) => sum + weight(item), 0);
    assert.ok(bytes <= maxBatchBytes, `batch of ${bytes} bytes > ${maxBatchBytes}`);
    const key = batchKey(batch[0]);
    for (const item of batch) {
      assert.ok(sameKey(batchKey(item), key), `batch mixes keys: items ${batch[0].id}, ${item.id}`);
    }
    if (scenario.withKey) {
      assert.ok(sameKey(context.key, key), `context.key ${String(context.key)} for this batch`);
      const before = inFlightByKey.get(key) ?? 0;
      assert.equal(before, 0, `a second flush of key ${String(key)} while one is in flight`);
      if (openFlushes > 1) keyedCoverage.concurrentAcrossKeys++;
      inFlightByKey.set(key, before + 1);
    } else {
      assert.equal(context.key, undefined, "context.key without a key hook");
    }
    if (context.reason === "evict") {
      assert.ok(
        scenario.withKey && scenario.maxOpenBatches !== undefined,
        "evict without a reached maxOpenBatches",
      );
    }
    if (context.reason === "close") assert.ok(control.closeCalled, "close flush before close()");
    if (context.reason === "interval") {
      const waited = clock.now - handedAt.get(batch[0].id)!;
      assert.ok(waited >= scenario.flushInterval, `interval flush after ${waited} ms`);
    }
    if (context.reason === "manual") assert.ok(manualFlushCalls > 0, "manual flush unasked");
    assert.ok(ours || control.runStartedBy === "dispose", "flush got a signal that is not run()'s");
    for (const item of batch) {
      assert.ok(accepted.has(item.id) || !refused.has(item.id), `refused item ${item.id} flushed`);
      if (rejectEligible(item)) assert.fail(`item ${item.id} should have gone to onReject`);
      if (scenario.withKey) assert.equal(keyCalls.get(item.id), 1, `key calls for ${item.id}`);
      take(item, "flush");
    }
    checkStats("inside flush");
  };

  const flush = (batch: KeyedItem[], context: FlushContext): void | Promise<void> => {
    const n = flushCalls++;
    openFlushes++;
    const key = batch.length > 0 ? batchKey(batch[0]) : undefined;
    const ours = context.signal === control.controller.signal;
    guard(() => checkFlushCall(batch, context, ours));
    let outcome = scenario.outcomes[n % scenario.outcomes.length];
    if (outcome.kind === "untilAbort" && !ours) outcome = { kind: "async" };
    const error = new Error(`flush #${n} failed`);
    const succeed = () => settleBatch(batch, key, undefined, false);
    const fail = (reason: unknown) => {
      settleBatch(batch, key, reason, true);
      throw reason;
    };
    switch (outcome.kind) {
      case "sync":
        return succeed();
      case "syncThrow":
        return fail(error);
      case "async":
        return s.schedule(Promise.resolve(), `flush #${n} resolves`).then(succeed);
      case "asyncReject":
        return s.schedule(Promise.resolve(), `flush #${n} rejects`).then(() => fail(error));
      case "delayed":
        return new Promise<void>((resolve) => setTimeout(resolve, outcome.ms)).then(succeed);
      case "untilAbort": {
        const signal = context.signal;
        return new Promise<void>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        }).catch(fail);
      }
    }
  };

  const config: BatchBufferConfig<KeyedItem> = {
    flush,
    capacity,
    maxConcurrentFlushes: maxFlushes,
    flushInterval: scenario.flushInterval,
    onReject: (item) =>
      guard(() => {
        assert.ok(rejectEligible(item), `item ${item.id} rejected without cause`);
        rejectedIds.add(item.id);
        settledIds.add(item.id);
        take(item, "onReject");
        rejecting = item.id;
        try {
          checkStats("inside onReject");
        } finally {
          rejecting = undefined;
        }
      }),
    onError: (error) =>
      guard(() => {
        if (keyErrors.has(error)) {
          assert.ok(!reportedKeyErrors.has(error), "a key error reported twice");
          reportedKeyErrors.add(error);
          return;
        }
        wrappedReports++;
        assert.ok(!scenario.withOnFlushError, `onError called although onFlushError is set`);
        assert.ok(error instanceof Error, `onError got a non-Error: ${error}`);
        assert.ok(flushErrors.has(error.cause), `onError got an unknown error: ${error}`);
      }),
  };
  if (scenario.chanSize !== undefined) config.chanSize = scenario.chanSize;
  if (scenario.withKey) {
    config.key = (item) => {
      const calls = (keyCalls.get(item.id) ?? 0) + 1;
      keyCalls.set(item.id, calls);
      guard(() => assert.equal(calls, 1, `key called ${calls} times for item ${item.id}`));
      if (item.throwKey) {
        const error = new Error(`key of item ${item.id} failed`);
        keyErrors.add(error);
        throw error;
      }
      return keyValue(item);
    };
    if (scenario.maxOpenBatches !== undefined) config.maxOpenBatches = scenario.maxOpenBatches;
  }
  if (scenario.sized) config.sizeOf = sizeValue;
  if (scenario.maxBufferedBytes !== undefined) config.maxBufferedBytes = scenario.maxBufferedBytes;
  if (scenario.maxBatchBytes !== undefined) config.maxBatchBytes = scenario.maxBatchBytes;
  if (scenario.maxItemBytes !== undefined) config.maxItemBytes = scenario.maxItemBytes;
  if (scenario.rejectPoison) {
    config.canAdd = (batch, item) => {
      guard(() => checkHookBatch("canAdd", batch, item));
      return !item.poison;
    };
  }
  if (scenario.splitMarked) {
    config.willOverflow = (batch, item) => {
      guard(() => checkHookBatch("willOverflow", batch, item));
      return item.split;
    };
  }
  if (scenario.withOnFlushError) {
    config.onFlushError = (error, batch) =>
      guard(() => {
        assert.ok(failures.has(batch as KeyedItem[]), "onFlushError got a batch that did not fail");
        assert.equal(failures.get(batch as KeyedItem[]), error, "onFlushError: wrong error");
        assert.ok(!reportedBatches.has(batch), "onFlushError called twice for one batch");
        reportedBatches.add(batch);
      });
  }
  if (scenario.withWaitUntil) {
    config.waitUntil = (promise) => {
      waitUntilStates.push(track(promise));
    };
  }

  const buffer = new BatchBuffer<KeyedItem>(config);

  /**
   * stats() against the model. bufferedBytes is pinned between what must
   * still count (accepted, not yet settled as the flush itself saw it) and
   * what may (handed in, not refused, not rejected): the buffer admits before
   * the caller's continuation runs, and settles after the flush's own.
   */
  function checkStats(where: string): void {
    const st = buffer.stats();
    assertStatsBounds(st, buffer.itemsInChannel, where, {
      chanSize,
      maxFlushes,
      accepted: accepted.size,
    });

    assert.ok(Number.isSafeInteger(st.openBatches) && st.openBatches >= 0, `openBatches ${where}`);
    const openLimit = scenario.withKey ? scenario.maxOpenBatches ?? 1000 : 1;
    assert.ok(st.openBatches <= openLimit, `${st.openBatches} open batches > ${openLimit}`);
    assert.ok(st.openBatches <= st.itemsInBatch, `${st.openBatches} open batches, fewer items`);
    assert.ok(
      st.itemsInBatch <= capacity * Math.max(1, st.openBatches) + 1,
      `${st.itemsInBatch} items in ${st.openBatches} batches of capacity ${capacity}`,
    );
    keyedCoverage.maxOpenBatchesSeen = Math.max(keyedCoverage.maxOpenBatchesSeen, st.openBatches);

    assert.ok(typeof st.bufferedBytes === "number", `bufferedBytes ${where}`);
    assert.ok(st.bufferedBytes <= maxBuffered, `${st.bufferedBytes} bytes > ${maxBuffered}`);
    let must = 0;
    let may = 0;
    for (const [id, item] of called) {
      if (refused.has(id) || (rejectedIds.has(id) && id !== rejecting)) continue;
      may += weight(item);
      if (accepted.has(id) && !settledIds.has(id)) must += weight(item);
    }
    assert.ok(
      must <= st.bufferedBytes && st.bufferedBytes <= may,
      `bufferedBytes ${st.bufferedBytes} outside [${must}, ${may}] ${where}`,
    );
    keyedCoverage.maxBufferedBytesSeen = Math.max(
      keyedCoverage.maxBufferedBytesSeen,
      st.bufferedBytes,
    );
  }

  const accept = (item: KeyedItem, calledAt: number, group: number, queued = false) => {
    assert.ok(!refused.has(item.id), `item ${item.id} both refused and accepted`);
    accepted.set(item.id, { calledAt, seenAt: seq++, group, queued });
  };

  const refuse = (item: KeyedItem) => {
    assert.ok(!processedIds.has(item.id), `refused item ${item.id} was handed out`);
    refused.add(item.id);
  };

  /** True when add(item) cannot be admitted now and joins the line of waiting producers. */
  const mustWait = (item: KeyedItem): boolean => {
    if (badSize(item)) return false; // rejected at admission, without waiting
    if (buffer.itemsInChannel >= chanSize) return true;
    const waits = buffer.stats().bufferedBytes + weight(item) > maxBuffered;
    if (waits) keyedCoverage.waitedForBytes++;
    return waits;
  };

  const signalFor = (mode: AbortMode, label: string) => abortSignalFor(s, mode, label);

  const expectRefusal = (
    error: unknown,
    item: KeyedItem,
    reason: unknown,
    closedBefore: boolean,
  ) => void assertRefusal(error, item, reason, closedBefore, control.closeCalled);

  async function runOp(op: KeyedOp): Promise<void> {
    const calledAt = seq++;
    if (op.kind === "add" || op.kind === "addAll") unsettledAdds++;
    try {
      await runOpCounted(op, calledAt);
    } finally {
      if (op.kind === "add" || op.kind === "addAll") unsettledAdds--;
    }
    checkStats(`after ${op.kind}`);
  }

  async function runOpCounted(op: KeyedOp, calledAt: number): Promise<void> {
    switch (op.kind) {
      case "add": {
        const item = makeItem(op.item);
        const { signal, reason } = signalFor(op.abort, `add #${item.id}`);
        const closedBefore = control.closeCalled;
        const queued = mustWait(item);
        called.set(item.id, item);
        try {
          await buffer.add(item, signal === undefined ? undefined : { signal });
          assert.ok(!closedBefore, "add resolved after close()");
          accept(item, calledAt, item.id, queued);
        } catch (error) {
          expectRefusal(error, item, reason, closedBefore);
          refuse(item);
        }
        break;
      }
      case "tryAdd": {
        const item = makeItem(op.item);
        const closedBefore = control.closeCalled;
        const mustRefuse = !closedBefore && mustWait(item);
        called.set(item.id, item);
        try {
          if (buffer.tryAdd(item)) {
            assert.ok(!mustRefuse, `tryAdd took item ${item.id} past a reached bound`);
            accept(item, calledAt, item.id);
          } else refuse(item);
          assert.ok(!closedBefore, "tryAdd did not throw after close()");
        } catch (error) {
          assert.ok(closedBefore && error instanceof BufferClosedError, `tryAdd threw ${error}`);
          refuse(item);
        }
        break;
      }
      case "addAll": {
        const items = op.items.map(makeItem);
        for (const item of items) called.set(item.id, item);
        const group = items[0]?.id ?? -1;
        const { signal, reason } = signalFor(op.abort, `addAll from #${group}`);
        const iterable = op.generator ? items.values() : items;
        try {
          await buffer.addAll(iterable, signal === undefined ? undefined : { signal });
          for (const item of items) accept(item, calledAt, group);
        } catch (error) {
          const n = assertAddAllRejection(error, items, reason, control.closeCalled);
          for (const item of items.slice(0, n)) accept(item, calledAt, group);
          for (const item of items.slice(n)) refuse(item);
        }
        break;
      }
      case "flush": {
        manualFlushCalls++;
        const before = [...accepted.keys()];
        const running = control.runStartedBy !== undefined;
        try {
          await buffer.flush();
          for (const id of before) {
            assert.ok(settledIds.has(id), `flush() resolved before item ${id} settled`);
          }
        } catch (error) {
          assert.ok(!running, `flush() rejected while running: ${error}`);
          assert.match(String(error), /call run\(\) first/);
        }
        break;
      }
    }
  }

  // The issue does not say what frees bytes held in partial batches that no
  // interval will flush: an add() waiting for them would wait forever. The
  // driver does what a user would: it calls flush().
  const unstick = () => {
    const stalled = buffer.stats();
    if (
      !(unsettledAdds > 0 && maxBuffered !== Infinity && stalled.openBatches > 0 &&
        stalled.flushesInFlight === 0 && stalled.itemsInChannel < chanSize)
    ) return false;
    keyedCoverage.byteStallsBrokenByFlush++;
    manualFlushCalls++;
    buffer.flush().catch((error) => violations.push(error));
    return true;
  };
  await runLifecycle(s, clock, scenario, buffer, control, { runOp, checkStats, log, unstick });

  // Reconcile.
  const st = buffer.stats();
  keyedCoverage.runs++;
  keyedCoverage.accepted += accepted.size;
  keyedCoverage.rejected += rejectedIds.size;
  keyedCoverage.flushes += flushCalls;
  assert.equal(clock.countTimers(), 0, "a timer is left after run() resolved");
  assert.equal(st.added, accepted.size, "stats.added != items whose add succeeded");
  assert.equal(processed.length, accepted.size, "items handed out != items accepted");
  for (const id of accepted.keys()) assert.ok(processedIds.has(id), `item ${id} lost`);
  for (const id of refused) assert.ok(!processedIds.has(id), `refused item ${id} handed out`);
  assert.equal(settledIds.size, accepted.size, "some flush never settled");
  for (const item of processed) {
    assert.equal(rejectedIds.has(item.id), rejectEligible(item), `item ${item.id} misrouted`);
  }
  assert.equal(st.rejected, rejectedIds.size);
  assert.equal(st.flushedItems, okItems);
  assert.equal(st.failedItems, failedItems);
  assert.equal(st.flushes, okFlushes);
  assert.equal(st.failedFlushes, failedFlushes);
  assert.equal(okFlushes + failedFlushes, flushCalls);
  assert.deepEqual(
    [
      st.inFlightItems,
      st.itemsInChannel,
      st.itemsInBatch,
      st.flushesInFlight,
      st.openBatches,
      st.bufferedBytes,
    ],
    [0, 0, 0, 0, 0, 0],
    "counters left after run() resolved",
  );
  assert.equal(reportedKeyErrors.size, keyErrors.size, "a throwing key hook was not reported");
  if (scenario.withOnFlushError) assert.equal(reportedBatches.size, failedFlushes);
  else assert.equal(wrappedReports, failedFlushes, "a failed flush was not reported");
  if (scenario.withWaitUntil) {
    assert.ok(waitUntilStates.length >= flushCalls, "waitUntil missed a flush");
    assert.ok(
      waitUntilStates.every((w) => w.settled && !w.rejected),
      "a waitUntil promise did not fulfil",
    );
  }

  // Order. If X's acceptance was seen before Y's add was called, or X waited
  // in line before Y was called, X goes out before Y when both are flushed
  // under one key, and when both are refused by canAdd (the run loop takes
  // items in line order). Items of other keys may overtake each other, and so
  // may items rejected at admission and items flushed.
  const flushed = processed.filter((item) => !rejectedIds.has(item.id));
  const byKey = new Map<unknown, KeyedItem[]>();
  for (const item of flushed) {
    const key = Object.is(batchKey(item), -0) ? 0 : batchKey(item);
    byKey.set(key, [...(byKey.get(key) ?? []), item]);
  }
  const streams = [
    ...byKey.values(),
    processed.filter((item) => rejectedIds.has(item.id) && !badSize(item)),
  ];
  assertStreamOrder(streams, accepted, " of the same key");

  await assertQuietAfterRun(
    buffer,
    clock,
    () => makeItem({ key: 0, throwKey: false, size: 0, poison: false, split: false }),
  );
}

/** A property of the keyed scenarios. */
export type KeyedProperty = NamedProperty<KeyedScenario>;

/** The properties tests/keyed_property.test.ts runs (tests/soak.ts may run them 100x). */
export const KEYED_PROPERTIES: readonly KeyedProperty[] = [
  {
    name:
      "BatchBuffer with keys loses and duplicates nothing, keeps each key's order and one flight per key",
    arbitrary: keyedScenarioArb(),
  },
  {
    name: "BatchBuffer evicts to stay within maxOpenBatches and keeps each key's order",
    arbitrary: keyedScenarioArb({
      withKey: "always",
      openBatches: "always",
      maxConcurrentFlushes: 4,
    }),
  },
  {
    name: "BatchBuffer never buffers more than maxBufferedBytes while flushes stall",
    arbitrary: keyedScenarioArb({
      bufferedBytes: "always",
      outcomes: fc.constantFrom<KeyedFlushOutcome>(
        { kind: "untilAbort" },
        { kind: "delayed", ms: 30 },
        { kind: "async" },
        { kind: "sync" },
      ),
    }),
  },
];

/** Checks one property with `numRuns` scenarios; throws fast-check's report on failure. */
export async function checkKeyedProperty(
  property: KeyedProperty,
  numRuns: number = PROPERTY_RUNS,
  seed?: number,
): Promise<void> {
  await checkScheduled(property, runKeyedScenario, numRuns, seed);
}
