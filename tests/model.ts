// Model-based property checks for BatchBuffer, shared by tests/property*.test.ts
// and tests/faults.test.ts (normal runs) and tests/soak.ts (100x the runs). Not
// a test file itself.
//
// A scenario is a random config plus random producers, each a sequence of
// operations. fast-check's scheduler decides when each producer takes its next
// step, when each async flush settles, when aborts fire, when the fake clock
// ticks and when the buffer is closed; a recorder checks every invariant at
// each step and reconciles everything at the end.
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import {
  AddAllError,
  BatchBuffer,
  type BatchBufferConfig,
  type BatchBufferStats,
  BufferClosedError,
  type FlushContext,
} from "../mod.ts";
import { type Clock, installClock, track } from "./helpers.ts";
import { Ledger } from "./ledger.ts";

/** Runs per property in a normal test run; BATCHKIT_PROPERTY_RUNS overrides it. */
export const PROPERTY_RUNS: number = readRuns();

function readRuns(): number {
  let raw: string | undefined;
  try {
    raw = process.env.BATCHKIT_PROPERTY_RUNS;
  } catch {
    raw = undefined; // no env permission: keep the default
  }
  const runs = Number(raw);
  return raw !== undefined && Number.isSafeInteger(runs) && runs > 0 ? runs : 1000;
}

/** What one flush call does. */
export type FlushOutcome =
  | { kind: "sync" }
  | { kind: "syncThrow" }
  | { kind: "async" }
  | { kind: "asyncReject" }
  | { kind: "delayed"; ms: number }
  | { kind: "delayedReject"; ms: number }
  | { kind: "untilAbort" };

/** An item before it gets its id. */
export interface ItemSpec {
  readonly size: number;
  readonly poison: boolean;
}

/** The item type the scenarios push through the buffer. */
export interface Item extends ItemSpec {
  readonly id: number;
}

/** "before": the signal is aborted before the call; "later": the scheduler aborts it. */
export type AbortMode = "none" | "before" | "later";

/** One step of a producer. */
export type Op =
  | { readonly kind: "add"; readonly item: ItemSpec; readonly abort: AbortMode }
  | { readonly kind: "tryAdd"; readonly item: ItemSpec }
  | {
    readonly kind: "addAll";
    readonly items: readonly ItemSpec[];
    readonly abort: AbortMode;
    readonly generator: boolean;
    /** The generator throws before yielding this index. */
    readonly throwAt: number | undefined;
  }
  | { readonly kind: "flush" };

/**
 * What every model's scenario lays out on the scheduler, besides its config:
 * see {@linkcode scheduleClose}, {@linkcode scheduleProducers} and
 * {@linkcode runLifecycle}.
 */
export interface ScheduledScenario<O> {
  readonly ending: "close" | "dispose";
  /**
   * Closes after this many scheduled steps of its own (each released at a
   * random point, so larger numbers close later), or, when undefined, once
   * every producer is done.
   */
  readonly closeAfterSteps: number | undefined;
  /** Aborts the run signal at a random point (flushes "untilAbort" then reject). */
  readonly abortRunSignal: boolean;
  readonly producers: readonly (readonly O[])[];
  /** Fake-clock advances, each at a random point. */
  readonly ticks: readonly number[];
}

/** A {@linkcode ScheduledScenario} that also picks when run() starts. */
export interface LifecycleScenario<O> extends ScheduledScenario<O> {
  /** "now": run() before the producers start; "scheduled": at a random point. */
  readonly runStart: "now" | "scheduled";
}

/** Random {@linkcode LifecycleScenario} fields, to spread last into a scenario's fc.record. */
export function lifecycleArbs<O>(
  ops: fc.Arbitrary<O>,
  shape: { readonly maxOps?: number; readonly maxProducers?: number },
): { [K in keyof LifecycleScenario<O>]: fc.Arbitrary<LifecycleScenario<O>[K]> } {
  return {
    runStart: fc.constantFrom("now" as const, "now" as const, "scheduled" as const),
    ending: fc.constantFrom("close" as const, "dispose" as const),
    closeAfterSteps: fc.option(fc.integer({ min: 1, max: 16 }), { nil: undefined }),
    abortRunSignal: fc.boolean(),
    producers: fc.array(fc.array(ops, { maxLength: shape.maxOps ?? 10, size: "medium" }), {
      minLength: 1,
      maxLength: shape.maxProducers ?? 4,
    }),
    ticks: fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 4 }),
  };
}

/** A random config and workload. */
export interface Scenario extends LifecycleScenario<Op> {
  readonly capacity: number;
  readonly chanSize: number | undefined;
  readonly maxConcurrentFlushes: number;
  readonly flushInterval: number;
  readonly maxBatchBytes: number | undefined;
  readonly maxItemBytes: number | undefined;
  readonly rejectPoison: boolean;
  readonly withOnFlushError: boolean;
  readonly withWaitUntil: boolean;
  readonly outcomes: readonly FlushOutcome[];
}

/** Knobs for the scenario generator, so each property can aim somewhere. */
export interface ScenarioShape {
  readonly maxProducers?: number;
  readonly maxOps?: number;
  readonly budget?: "never" | "sometimes" | "always";
  readonly maxConcurrentFlushes?: number;
  readonly outcomes?: fc.Arbitrary<FlushOutcome>;
  readonly ops?: fc.Arbitrary<Op>;
}

const abortModeArb: fc.Arbitrary<AbortMode> = fc.constantFrom<AbortMode>(
  "none",
  "none",
  "before",
  "later",
  "later",
);

/** Every flush outcome, successes more often than failures. */
export const anyOutcomeArb: fc.Arbitrary<FlushOutcome> = fc.oneof(
  { arbitrary: fc.constant<FlushOutcome>({ kind: "sync" }), weight: 3 },
  { arbitrary: fc.constant<FlushOutcome>({ kind: "async" }), weight: 4 },
  { arbitrary: fc.constant<FlushOutcome>({ kind: "syncThrow" }), weight: 1 },
  { arbitrary: fc.constant<FlushOutcome>({ kind: "asyncReject" }), weight: 1 },
  {
    arbitrary: fc.integer({ min: 0, max: 40 }).map((ms): FlushOutcome => ({ kind: "delayed", ms })),
    weight: 2,
  },
  {
    arbitrary: fc.integer({ min: 0, max: 40 }).map((ms): FlushOutcome => ({
      kind: "delayedReject",
      ms,
    })),
    weight: 1,
  },
  { arbitrary: fc.constant<FlushOutcome>({ kind: "untilAbort" }), weight: 1 },
);

function itemArb(maxSize: number): fc.Arbitrary<ItemSpec> {
  return fc.record({
    size: fc.integer({ min: 0, max: maxSize }),
    poison: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  });
}

/** Any operation a producer may take, items sized up to `maxSize`. */
export function opArb(maxSize: number): fc.Arbitrary<Op> {
  const item = itemArb(maxSize);
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
        throwAt: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined, freq: 4 }),
      }),
      weight: 2,
    },
    { arbitrary: fc.constant<Op>({ kind: "flush" }), weight: 1 },
  );
}

/** Random scenarios of the given shape. */
export function scenarioArb(shape: ScenarioShape = {}): fc.Arbitrary<Scenario> {
  const budgetMode = shape.budget ?? "sometimes";
  const budgetArb = fc.integer({ min: 1, max: 20 }).chain((maxBatchBytes) =>
    fc.record({
      maxBatchBytes: fc.constant(maxBatchBytes),
      maxItemBytes: fc.option(fc.integer({ min: 1, max: maxBatchBytes }), { nil: undefined }),
    })
  );
  const noBudget = fc.constant({ maxBatchBytes: undefined, maxItemBytes: undefined });
  const budget = budgetMode === "never"
    ? noBudget
    : budgetMode === "always"
    ? budgetArb
    : fc.oneof(noBudget, budgetArb);
  return budget.chain(({ maxBatchBytes, maxItemBytes }) => {
    const ops = shape.ops ?? opArb(maxBatchBytes === undefined ? 5 : maxBatchBytes + 3);
    return fc.record({
      capacity: fc.integer({ min: 1, max: 6 }),
      chanSize: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined, freq: 4 }),
      maxConcurrentFlushes: fc.integer({ min: 1, max: shape.maxConcurrentFlushes ?? 3 }),
      flushInterval: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 50 })),
      maxBatchBytes: fc.constant(maxBatchBytes),
      maxItemBytes: fc.constant(maxItemBytes),
      rejectPoison: fc.boolean(),
      withOnFlushError: fc.boolean(),
      withWaitUntil: fc.boolean(),
      outcomes: fc.array(shape.outcomes ?? anyOutcomeArb, { minLength: 1, maxLength: 6 }),
      ...lifecycleArbs(ops, shape),
    });
  });
}

/** What the scenarios exercised, summed over runs: shows the properties are not vacuous. */
export const coverage = {
  runs: 0,
  accepted: 0,
  refusedByAbort: 0,
  refusedByClose: 0,
  tryAddFalse: 0,
  rejected: 0,
  flushes: 0,
  failedFlushes: 0,
  maxInFlight: 0,
  reasons: { full: 0, overflow: 0, interval: 0, close: 0, manual: 0 } as Record<string, number>,
  manualFlushesResolved: 0,
  blockedAdds: 0,
};

/** When an item was handed to the buffer and when its acceptance was seen. */
export interface Acceptance {
  readonly calledAt: number;
  readonly seenAt: number;
  /** Items of one addAll share an acceptance and must keep their order. */
  readonly group: number;
  /**
   * The add had to wait in line (the channel was full, or, with keys, the
   * byte bound was reached): nothing called later may pass it.
   */
  readonly queued: boolean;
}

/**
 * Runs one scenario under the scheduler and checks every invariant. Throws
 * (an AssertionError) on the first violation.
 */
export async function runScenario(s: fc.Scheduler, scenario: Scenario): Promise<void> {
  const clock = installClock();
  try {
    await runUnderClock(s, scenario, clock);
  } finally {
    clock.uninstall();
  }
}

async function runUnderClock(s: fc.Scheduler, scenario: Scenario, clock: Clock): Promise<void> {
  const capacity = scenario.capacity;
  const chanSize = scenario.chanSize ?? 2 * capacity;
  const maxFlushes = scenario.maxConcurrentFlushes;
  const budgeted = scenario.maxBatchBytes !== undefined;
  const maxBatchBytes = scenario.maxBatchBytes ?? Infinity;
  const maxItemBytes = scenario.maxItemBytes ?? maxBatchBytes;

  let seq = 0; // a logical clock for happens-before
  let nextId = 0;
  /** Fake time at which each item was handed to add/tryAdd/addAll. */
  const handedAt = new Map<number, number>();
  const makeItem = (spec: ItemSpec): Item => {
    const item = { id: nextId++, ...spec };
    handedAt.set(item.id, clock.now);
    return item;
  };

  const accepted = new Map<number, Acceptance>();
  const refused = new Set<number>(); // add/addAll/tryAdd that did not take the item
  /** Every item the buffer handed out, in the order it handed them out. */
  const processed: Item[] = [];
  const processedIds = new Set<number>();
  const rejectedIds = new Set<number>();
  const settledIds = new Set<number>();
  let flushCalls = 0;
  let openFlushes = 0;
  let okFlushes = 0;
  let okItems = 0;
  let failedFlushes = 0;
  let failedItems = 0;
  const failures = new Map<unknown[], unknown>(); // failed batch -> its error
  const flushErrors = new Set<unknown>();
  const reportedBatches = new Set<unknown[]>();
  let wrappedReports = 0;
  const waitUntilStates: ReturnType<typeof track>[] = [];
  let flushesNotHandedOver = 0;
  let keepAlives = 0;
  let manualFlushCalls = 0;
  const control = new RunControl();
  const log = violationLog();
  const guard = log.guard;

  const take = (item: Item, where: string) => {
    assert.ok(!processedIds.has(item.id), `item ${item.id} handed out twice (${where})`);
    processedIds.add(item.id);
    processed.push(item);
  };

  const settle = (batch: Item[], error: unknown, failed: boolean) => {
    openFlushes--;
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

  const checkFlushCall = (batch: Item[], context: FlushContext, ours: boolean) => {
    coverage.reasons[context.reason]++;
    coverage.maxInFlight = Math.max(coverage.maxInFlight, openFlushes);
    assert.ok(batch.length > 0, "empty flush");
    assert.ok(openFlushes <= maxFlushes, `${openFlushes} flushes open, limit ${maxFlushes}`);
    assert.ok(batch.length <= capacity, `batch of ${batch.length} over capacity ${capacity}`);
    const bytes = batch.reduce((sum, item) => sum + item.size, 0);
    if (budgeted) assert.ok(bytes <= maxBatchBytes, `batch of ${bytes} bytes > ${maxBatchBytes}`);
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
      take(item, "flush");
    }
    checkStats("inside flush");
    assert.ok(buffer.stats().flushesInFlight <= maxFlushes, "stats.flushesInFlight over limit");
  };

  const flush = (batch: Item[], context: FlushContext): void | Promise<void> => {
    const n = flushCalls++;
    if (scenario.withWaitUntil) flushesNotHandedOver++;
    openFlushes++;
    const ours = context.signal === control.controller.signal;
    guard(() => checkFlushCall(batch, context, ours));
    let outcome = scenario.outcomes[n % scenario.outcomes.length];
    if (outcome.kind === "untilAbort" && !ours) outcome = { kind: "async" };
    const error = new Error(`flush #${n} failed`);
    const succeed = () => settle(batch, undefined, false);
    const fail = (reason: unknown) => {
      settle(batch, reason, true);
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
      case "delayedReject":
        return new Promise<void>((resolve) => setTimeout(resolve, outcome.ms)).then(() =>
          fail(error)
        );
      case "untilAbort": {
        const signal = context.signal;
        return new Promise<void>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        }).catch(fail);
      }
    }
  };

  const rejectEligible = (item: Item) =>
    (scenario.rejectPoison && item.poison) || (budgeted && item.size > maxItemBytes);

  const config: BatchBufferConfig<Item> = {
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
        checkStats("inside onReject");
      }),
    onError: (error) =>
      guard(() => {
        wrappedReports++;
        assert.ok(!scenario.withOnFlushError, `onError called although onFlushError is set`);
        assert.ok(error instanceof Error, `onError got a non-Error: ${error}`);
        assert.ok(flushErrors.has(error.cause), `onError got an unknown error: ${error}`);
        assert.match(error.message, /flush failed; its \d+ items were not delivered/);
      }),
  };
  if (scenario.chanSize !== undefined) config.chanSize = scenario.chanSize;
  if (scenario.rejectPoison) config.canAdd = (_batch, item) => !item.poison;
  if (budgeted) {
    config.sizeOf = (item) => item.size;
    config.maxBatchBytes = scenario.maxBatchBytes;
    if (scenario.maxItemBytes !== undefined) config.maxItemBytes = scenario.maxItemBytes;
  }
  if (scenario.withOnFlushError) {
    config.onFlushError = (error, batch) =>
      guard(() => {
        assert.ok(failures.has(batch as Item[]), "onFlushError got a batch that did not fail");
        assert.equal(failures.get(batch as Item[]), error, "onFlushError got the wrong error");
        assert.ok(!reportedBatches.has(batch), "onFlushError called twice for one batch");
        reportedBatches.add(batch);
      });
  }
  if (scenario.withWaitUntil) {
    config.waitUntil = (promise) => {
      // The call right after a flush started hands over that flush; any other
      // call is the keep-alive of a batch that just opened.
      if (flushesNotHandedOver > 0) flushesNotHandedOver--;
      else keepAlives++;
      waitUntilStates.push(track(promise));
    };
  }

  const buffer = new BatchBuffer<Item>(config);

  function checkStats(where: string): void {
    const st = buffer.stats();
    assertStatsBounds(st, buffer.itemsInChannel, where, {
      chanSize,
      maxFlushes,
      accepted: accepted.size,
    });
    assert.ok(st.itemsInBatch <= capacity, `batch holds ${st.itemsInBatch} > ${capacity}`);
  }

  const accept = (item: Item, calledAt: number, group: number, queued = false) => {
    assert.ok(!refused.has(item.id), `item ${item.id} both refused and accepted`);
    accepted.set(item.id, { calledAt, seenAt: seq++, group, queued });
  };

  const refuse = (item: Item) => {
    assert.ok(!processedIds.has(item.id), `refused item ${item.id} was handed out`);
    refused.add(item.id);
  };

  const signalFor = (mode: AbortMode, label: string) => abortSignalFor(s, mode, label);

  const expectRefusal = (error: unknown, item: Item, reason: unknown, closedBefore: boolean) => {
    const why = assertRefusal(error, item, reason, closedBefore, control.closeCalled);
    if (why === "closed") coverage.refusedByClose++;
    else coverage.refusedByAbort++;
  };

  async function runOp(op: Op): Promise<void> {
    const calledAt = seq++;
    switch (op.kind) {
      case "add": {
        const item = makeItem(op.item);
        const { signal, reason } = signalFor(op.abort, `add #${item.id}`);
        const closedBefore = control.closeCalled;
        const queued = buffer.itemsInChannel >= chanSize;
        if (queued) coverage.blockedAdds++;
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
        try {
          if (buffer.tryAdd(item)) accept(item, calledAt, item.id);
          else {
            coverage.tryAddFalse++;
            refuse(item);
          }
          assert.ok(!closedBefore, "tryAdd did not throw after close()");
        } catch (error) {
          assert.ok(closedBefore && error instanceof BufferClosedError, `tryAdd threw ${error}`);
          assert.equal(error.item, item);
          refuse(item);
        }
        break;
      }
      case "addAll": {
        const items = op.items.map(makeItem);
        const group = items[0]?.id ?? -1;
        const { signal, reason } = signalFor(op.abort, `addAll from #${group}`);
        const iteratorError = new Error("iterable failed");
        const throwAt = op.throwAt !== undefined && op.throwAt < items.length
          ? op.throwAt
          : undefined;
        const generate = function* () {
          for (let i = 0; i < items.length; i++) {
            if (i === throwAt) throw iteratorError;
            yield items[i];
          }
        };
        const iterable = op.generator || throwAt !== undefined ? generate() : items;
        try {
          await buffer.addAll(iterable, signal === undefined ? undefined : { signal });
          assert.equal(throwAt, undefined, "addAll resolved although the iterable threw");
          for (const item of items) accept(item, calledAt, group);
        } catch (error) {
          const n = assertAddAllRejection(error, items, reason, control.closeCalled, {
            error: iteratorError,
            throwAt,
          });
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
          coverage.manualFlushesResolved++;
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
    checkStats(`after ${op.kind}`);
  }

  await runLifecycle(s, clock, scenario, buffer, control, { runOp, checkStats, log });

  // Reconcile.
  const st = buffer.stats();
  coverage.runs++;
  coverage.accepted += accepted.size;
  coverage.rejected += rejectedIds.size;
  coverage.flushes += flushCalls;
  coverage.failedFlushes += failedFlushes;
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
    [st.inFlightItems, st.itemsInChannel, st.itemsInBatch, st.flushesInFlight],
    [0, 0, 0, 0],
  );
  if (scenario.withOnFlushError) assert.equal(reportedBatches.size, failedFlushes);
  else assert.equal(wrappedReports, failedFlushes, "a failed flush was not reported");
  if (scenario.withWaitUntil) {
    assert.equal(flushesNotHandedOver, 0, "waitUntil missed a flush");
    assert.equal(waitUntilStates.length, flushCalls + keepAlives);
    assert.ok(
      waitUntilStates.every((w) => w.settled && !w.rejected),
      "a waitUntil promise did not fulfil",
    );
  }

  // Order: if X's acceptance was seen before Y's add was called, or X waited
  // in line for room before Y was called, X goes out first. Flushed items
  // (batches concatenated in call order), items refused by canAdd (in the run
  // loop) and items of a refused size (when admitted) are three streams: an
  // item waiting in line may be overtaken by a later one that is refused
  // at once.
  const refusedSize = (item: Item) => budgeted && item.size > maxItemBytes;
  const streams = [
    processed.filter((item) => !rejectedIds.has(item.id)),
    processed.filter((item) => rejectedIds.has(item.id) && !refusedSize(item)),
    processed.filter((item) => rejectedIds.has(item.id) && refusedSize(item)),
  ];
  assertStreamOrder(streams, accepted);

  await assertQuietAfterRun(buffer, clock, () => makeItem({ size: 0, poison: false }));
}

/** One named property over scenarios of one shape. */
export interface NamedProperty<S> {
  readonly name: string;
  readonly arbitrary: fc.Arbitrary<S>;
}

/** A property of this model's scenarios. */
export type ScenarioProperty = NamedProperty<Scenario>;

/** The properties that tests/property*.test.ts run and tests/soak.ts runs 100x more. */
export const PROPERTIES: readonly ScenarioProperty[] = [
  {
    name:
      "BatchBuffer loses, duplicates and reorders nothing under random schedules, configs and faults",
    arbitrary: scenarioArb(),
  },
  {
    name: "BatchBuffer keeps acceptance order with one flush at a time and one producer",
    arbitrary: scenarioArb({ maxConcurrentFlushes: 1, maxProducers: 1, maxOps: 12 }),
  },
  {
    name: "BatchBuffer never exceeds the byte budget and rejects only oversized or refused items",
    arbitrary: scenarioArb({ budget: "always" }),
  },
  {
    name: "BatchBuffer stays bounded while flushes stall until the run signal aborts",
    arbitrary: scenarioArb({
      maxProducers: 4,
      outcomes: fc.constantFrom<FlushOutcome>(
        { kind: "untilAbort" },
        { kind: "untilAbort" },
        { kind: "delayed", ms: 30 },
        { kind: "async" },
      ),
    }),
  },
];

/** Checks one property with `numRuns` scenarios; throws fast-check's report on failure. */
export async function checkProperty(
  property: ScenarioProperty,
  numRuns: number = PROPERTY_RUNS,
  seed?: number,
): Promise<void> {
  await checkScheduled(property, runScenario, numRuns, seed);
}

/**
 * Checks `property` with `numRuns` scenarios, each run by `run` under
 * fast-check's scheduler; throws fast-check's report on failure.
 */
export async function checkScheduled<S>(
  property: NamedProperty<S>,
  run: (s: fc.Scheduler, scenario: S) => Promise<void>,
  numRuns: number = PROPERTY_RUNS,
  seed?: number,
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(fc.scheduler(), property.arbitrary, (s, scenario) => run(s, scenario)),
    seed === undefined ? { numRuns } : { numRuns, seed },
  );
}

// ---------------------------------------------------------------- scheduler scaffolding
// Shared by this model, tests/keyed_model.ts, tests/delivery_model.ts and
// tests/fuzz_model.ts: how a scenario's producers, close, ticks and run signal
// are laid out on fast-check's scheduler, and the loop that drives it to the end.

/** Violations seen inside hooks, where a throw would be caught by the buffer. */
export interface ViolationLog {
  readonly violations: unknown[];
  /** Runs `check`, keeping what it throws instead of letting the buffer catch it. */
  readonly guard: (check: () => void) => void;
  /** Throws the first violation kept, if any. */
  readonly throwViolation: () => void;
}

/** An empty {@linkcode ViolationLog}. */
export function violationLog(): ViolationLog {
  const violations: unknown[] = [];
  return {
    violations,
    guard: (check) => {
      try {
        check();
      } catch (error) {
        violations.push(error);
      }
    },
    throwViolation: () => {
      if (violations.length > 0) throw violations[0];
    },
  };
}

/**
 * Calls `end` after `steps` scheduled steps of its own (each released at a
 * random point, so larger numbers close later); undefined when `steps` is.
 */
export function scheduleClose(
  s: fc.Scheduler,
  steps: number | undefined,
  end: () => void,
): Promise<void> | undefined {
  if (steps === undefined) return undefined;
  return (async () => {
    for (let i = steps; i > 0; i--) await s.schedule(Promise.resolve(), `close in ${i}`);
    end();
  })();
}

/** Runs each producer's ops in order, each after a scheduled step of its own. */
export function scheduleProducers<O extends { readonly kind: string }>(
  s: fc.Scheduler,
  producers: readonly (readonly O[])[],
  runOp: (op: O) => Promise<void>,
): Promise<void>[] {
  return producers.map(async (ops, p) => {
    for (const [i, op] of ops.entries()) {
      await s.schedule(Promise.resolve(), `producer ${p} op ${i}: ${op.kind}`);
      await runOp(op);
    }
  });
}

/** A signal for an op, and the reason it aborts with (if it does). */
export function abortSignalFor(
  s: fc.Scheduler,
  mode: AbortMode,
  label: string,
): { signal: AbortSignal | undefined; reason: Error | undefined } {
  if (mode === "none") return { signal: undefined, reason: undefined };
  const controller = new AbortController();
  const reason = new Error(`abort ${label}`);
  if (mode === "before") controller.abort(reason);
  else s.schedule(Promise.resolve(), `abort ${label}`).then(() => controller.abort(reason));
  return { signal: controller.signal, reason };
}

/**
 * Checks why add() refused `item`: a BufferClosedError for it after close(),
 * or else its own signal's `reason` while the buffer was open.
 */
export function assertRefusal(
  error: unknown,
  item: unknown,
  reason: unknown,
  closedBefore: boolean,
  closeCalled: boolean,
): "closed" | "aborted" {
  if (error instanceof BufferClosedError) {
    assert.ok(closeCalled, "BufferClosedError before close()");
    assert.equal(error.item, item, "BufferClosedError carries another item");
    return "closed";
  }
  assert.ok(reason !== undefined && error === reason, `add rejected with ${error}`);
  assert.ok(!closedBefore, "abort reason instead of BufferClosedError after close()");
  return "aborted";
}

/**
 * Checks addAll()'s rejection of `items`: an AddAllError that queued fewer
 * than all of them, caused by the iterable's own throw (at `throwAt`), a
 * BufferClosedError for the first item not queued, or the signal's `reason`.
 * Returns how many it queued.
 */
export function assertAddAllRejection(
  error: unknown,
  items: readonly unknown[],
  reason: unknown,
  closeCalled: boolean,
  iterator?: { readonly error: unknown; readonly throwAt: number | undefined },
): number {
  assert.ok(error instanceof AddAllError, `addAll rejected with ${error}`);
  const n = error.accepted;
  assert.ok(Number.isInteger(n) && n >= 0 && n < items.length, `accepted ${n}`);
  const cause = error.cause;
  if (iterator !== undefined && cause === iterator.error) {
    assert.equal(n, iterator.throwAt, "accepted != items before throw");
  } else if (cause instanceof BufferClosedError) {
    assert.ok(closeCalled, "BufferClosedError before close()");
    assert.equal(cause.item, items[n], "BufferClosedError carries another item");
  } else assert.ok(reason !== undefined && cause === reason, `addAll cause ${cause}`);
  return n;
}

/**
 * The stats() checks every model makes: the invariant, the channel and flight
 * bounds, buffer.itemsInChannel agreeing, and no fewer adds than `accepted`.
 */
export function assertStatsBounds(
  st: BatchBufferStats,
  itemsInChannel: number,
  where: string,
  limits: { readonly chanSize: number; readonly maxFlushes: number; readonly accepted: number },
): void {
  assert.equal(
    st.added,
    st.rejected + st.flushedItems + st.failedItems + st.inFlightItems + st.itemsInChannel +
      st.itemsInBatch,
    `stats invariant broken ${where}: ${JSON.stringify(st)}`,
  );
  const { chanSize, maxFlushes, accepted } = limits;
  assert.ok(st.itemsInChannel <= chanSize, `${st.itemsInChannel} items in channel > ${chanSize}`);
  assert.equal(itemsInChannel, st.itemsInChannel);
  assert.ok(st.flushesInFlight <= maxFlushes, `${st.flushesInFlight} flushes in flight`);
  assert.ok(st.added >= accepted, `stats.added ${st.added} < ${accepted} seen`);
  assert.ok(st.inFlightItems >= 0 && st.flushesInFlight >= 0, "negative in-flight count");
}

/**
 * Checks order within each stream (items in the order they went out): if X's
 * acceptance was seen before Y's add was called, X and Y came from one addAll
 * in that order, or X waited in line before Y was called, X went out first.
 */
export function assertStreamOrder(
  streams: readonly (readonly { readonly id: number }[])[],
  accepted: ReadonlyMap<number, Acceptance>,
  what = "",
): void {
  for (const stream of streams) {
    const position = new Map(stream.map((item, index) => [item.id, index]));
    for (const x of stream) {
      const ax = accepted.get(x.id)!;
      for (const y of stream) {
        const ay = accepted.get(y.id)!;
        const happensBefore = x.id !== y.id &&
          (ax.seenAt < ay.calledAt || (ax.group === ay.group && x.id < y.id) ||
            (ax.queued && ax.calledAt < ay.calledAt));
        if (happensBefore) {
          assert.ok(
            position.get(x.id)! < position.get(y.id)!,
            `item ${y.id} went out before item ${x.id}${what}`,
          );
        }
      }
    }
  }
}

/** After the run: the buffer refuses `late()` items politely and stays quiet. */
export async function assertQuietAfterRun<T>(
  buffer: BatchBuffer<T>,
  clock: Clock,
  late: () => T,
): Promise<void> {
  await assert.rejects(buffer.add(late()), BufferClosedError);
  assert.throws(() => buffer.tryAdd(late()), BufferClosedError);
  await buffer.flush();
  await buffer[Symbol.asyncDispose]();
  assert.equal(clock.countTimers(), 0, "a timer was left after dispose");
}

/** How {@linkcode driveToEnd} steps a scenario and what it checks between steps. */
export interface DriveHooks {
  readonly s: fc.Scheduler;
  readonly clock: Clock;
  /** Awaited before anything else while it returns a promise (clock ticks in progress). */
  readonly pending?: () => Promise<unknown> | undefined;
  /** After each scheduled step. */
  readonly afterStep: () => void;
  /** After each timer fired because nothing was scheduled. */
  readonly afterTimer?: () => void;
  /** With nothing scheduled and no timer: true when it got the run moving again. */
  readonly unstick?: () => boolean;
  readonly runAborted: () => boolean;
  readonly abortRun: () => void;
  /** The buffer's stats, for the deadlock message. */
  readonly stats: () => unknown;
  readonly throwViolation: () => void;
}

/**
 * Drives the scheduler until `work` settles: scheduled tasks first; when none
 * is left, lets time pass, then aborts the run signal; anything still pending
 * after that is a deadlock. Rethrows a violation, then `work`'s failure.
 */
export async function driveToEnd(work: Promise<void>, hooks: DriveHooks): Promise<void> {
  const { s, clock } = hooks;
  let finished = false;
  let failure: unknown;
  const done = work.then(() => (finished = true), (error) => {
    finished = true;
    failure = error;
  });
  while (!finished) {
    const pending = hooks.pending?.();
    if (pending !== undefined) {
      await pending;
      continue;
    }
    if (s.count() > 0) {
      await s.waitOne();
      hooks.afterStep();
      continue;
    }
    for (let i = 0; i < 100 && !finished && s.count() === 0; i++) await Promise.resolve();
    if (finished || s.count() > 0) continue;
    if (clock.countTimers() > 0) {
      clock.next();
      hooks.afterTimer?.();
    } else if (hooks.unstick?.()) continue;
    else if (!hooks.runAborted()) hooks.abortRun();
    else {
      assert.fail(
        `deadlock: nothing scheduled, no timer, run not finished; stats ${
          JSON.stringify(hooks.stats())
        }`,
      );
    }
  }
  await done;
  hooks.throwViolation();
  if (failure !== undefined) throw failure;
}

/**
 * Who started run(), whether close() was called, and the run signal: the
 * state a model's hooks check against while {@linkcode runLifecycle} drives.
 */
export class RunControl {
  closeCalled = false;
  /** "dispose": the scenario never called run(), so [Symbol.asyncDispose]() did. */
  runStartedBy: "test" | "dispose" | undefined;
  readonly controller: AbortController = new AbortController();
  readonly abortReason: Error = new Error("run signal aborted by the scenario");
}

/** What {@linkcode runLifecycle} needs from a model besides the buffer. */
export interface LifecycleHooks<O> {
  readonly runOp: (op: O) => Promise<void>;
  readonly checkStats: (where: string) => void;
  readonly log: ViolationLog;
  readonly unstick?: () => boolean;
}

/**
 * Runs a scenario's lifecycle: starts run() now or at a scheduled point
 * (a second call must reject), schedules the producers, the close or dispose,
 * the ticks and the run signal's abort, and drives it all to the end.
 */
export async function runLifecycle<T, O extends { readonly kind: string }>(
  s: fc.Scheduler,
  clock: Clock,
  scenario: LifecycleScenario<O>,
  buffer: BatchBuffer<T>,
  control: RunControl,
  hooks: LifecycleHooks<O>,
): Promise<void> {
  const signal = control.controller.signal;
  let runPromise: Promise<void> | undefined;
  let disposePromise: Promise<void> | undefined;
  const startRun = () => {
    if (control.runStartedBy === undefined) {
      control.runStartedBy = "test";
      runPromise = buffer.run(signal);
      return Promise.resolve();
    }
    return assert.rejects(buffer.run(signal), /already called/);
  };
  const end = () => {
    if (control.closeCalled) return;
    control.closeCalled = true;
    if (scenario.ending === "close") return buffer.close();
    if (control.runStartedBy === undefined) control.runStartedBy = "dispose";
    disposePromise = buffer[Symbol.asyncDispose]();
  };
  const abortRun = () => control.controller.abort(control.abortReason);

  if (scenario.runStart === "now") await startRun();
  const runStarted = scenario.runStart === "now"
    ? Promise.resolve()
    : s.schedule(Promise.resolve(), "run()").then(startRun);
  const closer = scheduleClose(s, scenario.closeAfterSteps, end);
  for (const ms of scenario.ticks) {
    s.schedule(Promise.resolve(), `tick ${ms}ms`).then(() => clock.tick(ms)).catch((error) =>
      hooks.log.violations.push(error)
    );
  }
  if (scenario.abortRunSignal) s.schedule(Promise.resolve(), "abort run signal").then(abortRun);
  const producers = scheduleProducers(s, scenario.producers, hooks.runOp);

  await driveToEnd(
    (async () => {
      await Promise.all(producers);
      await closer;
      end();
      await runStarted;
      if (control.runStartedBy === "test" && scenario.ending === "close") {
        await runPromise;
      } else {
        await disposePromise;
        if (control.runStartedBy === "test") await runPromise; // the same run
      }
    })(),
    {
      s,
      clock,
      afterStep: () => {
        hooks.log.throwViolation();
        hooks.checkStats("after a scheduled step");
      },
      ...(hooks.unstick === undefined ? {} : { unstick: hooks.unstick }),
      runAborted: () => signal.aborted,
      abortRun,
      stats: () => buffer.stats(),
      throwViolation: hooks.log.throwViolation,
    },
  );
  await Promise.resolve();
  await Promise.resolve();
}

/** The name tests/faults.test.ts gives {@linkcode checkRandomFaults}. */
export const RANDOM_FAULTS_NAME =
  "with random hooks that throw or answer nonsense, every item is accounted for and every error reported once";

// ---------------------------------------------------------------- random faults (tests/faults.test.ts)

/** What a hook does for one item: throw, or answer a value from the pool. */
type Answer = { throws: true } | { throws: false; value: unknown };

const answerArb = (pool: unknown[]): fc.Arbitrary<Answer> =>
  fc.oneof(
    fc.constant<Answer>({ throws: true }),
    fc.constantFrom(...pool).map((value): Answer => ({ throws: false, value })),
  );

const predicatePool: unknown[] = [true, false, 0, 1, "", "yes", null, undefined, NaN, {}, []];
const sizePool: unknown[] = [
  0,
  1,
  3,
  7,
  10,
  11,
  -1,
  NaN,
  Infinity,
  1e300,
  0.5,
  "5",
  null,
  true,
  1n,
];

/**
 * The random-fault property of tests/faults.test.ts (kept here so that
 * tests/soak.ts can run it 100x): random hooks that throw or answer nonsense,
 * checked with a {@linkcode Ledger}.
 */
export async function checkRandomFaults(numRuns: number = PROPERTY_RUNS): Promise<void> {
  const scenario = fc.record({
    capacity: fc.integer({ min: 1, max: 5 }),
    chanSize: fc.integer({ min: 1, max: 5 }),
    maxConcurrentFlushes: fc.integer({ min: 1, max: 3 }),
    budget: fc.boolean(),
    items: fc.integer({ min: 0, max: 30 }),
    willOverflow: fc.option(fc.array(answerArb(predicatePool), { minLength: 1, maxLength: 5 })),
    canAdd: fc.option(fc.array(answerArb(predicatePool), { minLength: 1, maxLength: 5 })),
    shouldFlush: fc.option(fc.array(answerArb(predicatePool), { minLength: 1, maxLength: 5 })),
    sizeOf: fc.array(answerArb(sizePool), { minLength: 1, maxLength: 5 }),
    onRejectThrows: fc.boolean(),
    onFlushError: fc.constantFrom("absent", "records", "throws"),
    waitUntilThrows: fc.option(fc.boolean()),
    flushes: fc.array(fc.constantFrom("ok", "throw", "reject", "asyncOk"), {
      minLength: 1,
      maxLength: 4,
    }),
  });
  await fc.assert(
    fc.asyncProperty(scenario, async (sc) => {
      const thrown = new Set<unknown>();
      const reported: unknown[] = [];
      const ledger = new Ledger<number>();
      const pick = <A>(answers: A[], n: number) => answers[n % answers.length];
      const answer = (answers: Answer[], n: number): unknown => {
        const a = pick(answers, n);
        if (!a.throws) return a.value;
        const error = new Error(`hook threw for item ${n}`);
        thrown.add(error);
        throw error;
      };
      const maxBatchBytes = 10;
      const sizeValid = (n: number) => {
        const a = pick(sc.sizeOf, n);
        if (a.throws || !sc.budget) return sc.budget ? false : true;
        const v = a.value;
        return typeof v === "number" && v >= 0 && v <= maxBatchBytes;
      };
      const canAddSays = (n: number) => {
        if (sc.canAdd === null) return true;
        const a = pick(sc.canAdd, n);
        return a.throws ? true : Boolean(a.value);
      };
      let flushCalls = 0;
      let failed = 0;
      const config: BatchBufferConfig<number> = {
        capacity: sc.capacity,
        chanSize: sc.chanSize,
        maxConcurrentFlushes: sc.maxConcurrentFlushes,
        flushInterval: Infinity,
        onReject: (item) => {
          ledger.rejected.push(item);
          if (sc.onRejectThrows) answer([{ throws: true }], item);
        },
        onError: (error) => void reported.push(error),
        flush: ledger.flush(() => {
          const kind = pick(sc.flushes, flushCalls++);
          if (kind === "throw" || kind === "reject") failed++;
          if (kind === "throw") throw new Error("flush threw");
          if (kind === "reject") return Promise.reject(new Error("flush rejected"));
          if (kind === "asyncOk") return Promise.resolve();
        }),
      };
      if (sc.willOverflow) {
        const answers = sc.willOverflow;
        config.willOverflow = (_b, item) => answer(answers, item) as boolean;
      }
      if (sc.canAdd) {
        const answers = sc.canAdd;
        config.canAdd = (_b, item) => answer(answers, item) as boolean;
      }
      if (sc.shouldFlush) {
        const answers = sc.shouldFlush;
        config.shouldFlush = (batch) => answer(answers, batch.at(-1)!) as boolean;
      }
      if (sc.budget) {
        config.maxBatchBytes = maxBatchBytes;
        config.sizeOf = (item) => answer(sc.sizeOf, item) as number;
      }
      if (sc.onFlushError === "records") config.onFlushError = () => {};
      if (sc.onFlushError === "throws") {
        config.onFlushError = () => answer([{ throws: true }], -1);
      }
      if (sc.waitUntilThrows !== null) {
        config.waitUntil = () => {
          if (sc.waitUntilThrows) answer([{ throws: true }], -2);
        };
      }
      const buffer = new BatchBuffer<number>(config);
      const running = buffer.run();
      for (let i = 0; i < sc.items; i++) await ledger.add(buffer, i);
      buffer.close();
      await running;

      ledger.assertConserved(buffer);
      const expectedRejects = Array.from({ length: sc.items }, (_, i) => i)
        .filter((i) => !sizeValid(i) || !canAddSays(i));
      assert.deepEqual(ledger.rejected.toSorted((a, b) => a - b), expectedRejects);
      assert.equal(failed, ledger.flushes.filter((f) => f.failed).length);
      // Every hook error reached onError exactly once; failed flushes without
      // onFlushError arrive wrapped, with the flush error as cause.
      const direct = reported.filter((e) => thrown.has(e));
      assert.equal(direct.length, thrown.size);
      assert.equal(new Set(direct).size, thrown.size);
      const wrapped = reported.filter((e) => !thrown.has(e));
      assert.equal(wrapped.length, sc.onFlushError === "absent" ? failed : 0);
      for (const e of wrapped) assert.match((e as Error).message, /^flush failed; its \d+ items/);
    }),
    { numRuns },
  );
}
