// The fault-injection model for delivery (issue 13), used by
// tests/delivery_property.test.ts. Not a test file itself.
//
// A random backend answers each try: success (sync, after a scheduler step or
// after some fake ms, possibly later than flushTimeout), a thrown or rejected
// error (with or without retryAfter, retryable or not), a partial failure of a
// random subset (outcome.retry, with or without error and retryAfter), a hang
// past flushTimeout, or a hang until context.signal aborts. Producers add(),
// send(), tryAdd() and flush() under fast-check's scheduler, while the fake
// clock ticks, the run signal may abort and the buffer closes. A recorder
// checks the invariants at every step and reconciles everything at the end.
//
// "Delivered" is the buffer's view: the item's last try resolved in time with
// the item not in outcome.retry. A try that resolved after its flushTimeout is
// late: the backend saw it, the buffer did not, so it may be tried again.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BatchBuffer,
  BufferClosedError,
  DeliveryError,
  type FlushFunc,
  type FlushOutcome,
  type RetryOptions,
} from "../mod.ts";
import { type Clock, installClock, track } from "./helpers.ts";
import {
  type AbortMode,
  abortSignalFor,
  checkScheduled,
  driveToEnd,
  type NamedProperty,
  PROPERTY_RUNS,
  scheduleClose,
  type ScheduledScenario,
  scheduleProducers,
  violationLog,
} from "./model.ts";
import { accountedFor } from "./delivery_helpers.ts";

/** When a try settles. */
export type Timing =
  | { readonly kind: "sync" }
  | { readonly kind: "scheduled" }
  | { readonly kind: "delay"; readonly ms: number };

/** What the backend does with one try. */
export type Behaviour =
  | { readonly kind: "ok"; readonly timing: Timing; readonly value: "none" | "response" }
  | {
    readonly kind: "fail";
    readonly timing: Timing;
    readonly retryAfter: number | undefined;
    readonly permanent: boolean;
  }
  | {
    readonly kind: "partial";
    readonly timing: Timing;
    /** Bit i set: the batch's item i is in outcome.retry. */
    readonly mask: number;
    readonly withError: boolean;
    readonly retryAfter: number | undefined;
  }
  | { readonly kind: "hang" }
  | { readonly kind: "untilAbort" };

/** An item before it gets its id. */
export interface ItemSpec {
  readonly poison: boolean;
}

/** What the scenarios push through the buffer (objects, so identity is unique). */
export interface Item extends ItemSpec {
  readonly id: number;
}

/** One step of a producer. */
export type Op =
  | { readonly kind: "add"; readonly item: ItemSpec; readonly abort: AbortMode }
  | { readonly kind: "send"; readonly item: ItemSpec; readonly abort: AbortMode }
  | { readonly kind: "tryAdd"; readonly item: ItemSpec }
  | { readonly kind: "flush" };

/** Retry options as data (the retryable hook is built from `permanentStops`). */
export interface RetrySpec {
  readonly attempts: number;
  readonly initialDelay: number;
  readonly multiplier: number;
  readonly maxDelay: number;
  readonly jitter: boolean;
  readonly maxElapsed: number;
  /** retryable() says no to errors the backend marked permanent. */
  readonly permanentStops: boolean;
}

/** A random config, backend and workload. */
export interface DeliveryScenario extends ScheduledScenario<Op> {
  readonly capacity: number;
  readonly chanSize: number | undefined;
  readonly maxConcurrentFlushes: number;
  readonly flushInterval: number;
  readonly retry: RetrySpec | undefined;
  readonly flushTimeout: number | undefined;
  readonly rejectPoison: boolean;
  readonly asyncOnFlushError: boolean;
  readonly behaviours: readonly Behaviour[];
}

/** Knobs for the generator. */
export interface DeliveryShape {
  readonly maxProducers?: number;
  readonly maxConcurrentFlushes?: number;
  readonly timeout?: "never" | "sometimes" | "always";
  readonly behaviours?: fc.Arbitrary<Behaviour>;
}

const timingArb: fc.Arbitrary<Timing> = fc.oneof(
  fc.constant<Timing>({ kind: "sync" }),
  fc.constant<Timing>({ kind: "scheduled" }),
  fc.integer({ min: 0, max: 80 }).map((ms): Timing => ({ kind: "delay", ms })),
);

const retryAfterArb = fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined, freq: 2 });

/** Every backend behaviour, successes about as often as failures. */
export const anyBehaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("ok" as const),
      timing: timingArb,
      value: fc.constantFrom("none" as const, "response" as const),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("fail" as const),
      timing: timingArb,
      retryAfter: retryAfterArb,
      permanent: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("partial" as const),
      timing: timingArb,
      mask: fc.integer({ min: 0, max: 31 }),
      withError: fc.boolean(),
      retryAfter: retryAfterArb,
    }),
    weight: 3,
  },
  { arbitrary: fc.constant<Behaviour>({ kind: "hang" }), weight: 1 },
  { arbitrary: fc.constant<Behaviour>({ kind: "untilAbort" }), weight: 1 },
);

const abortModeArb = fc.constantFrom<AbortMode>("none", "none", "none", "before", "later");
const itemArb: fc.Arbitrary<ItemSpec> = fc.record({
  poison: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
});

/** Any producer step. */
export const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({ kind: fc.constant("add" as const), item: itemArb, abort: abortModeArb }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("send" as const),
      item: itemArb,
      abort: abortModeArb,
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant("tryAdd" as const), item: itemArb }), weight: 1 },
  { arbitrary: fc.constant<Op>({ kind: "flush" }), weight: 1 },
);

const retrySpecArb: fc.Arbitrary<RetrySpec> = fc.record({
  attempts: fc.integer({ min: 1, max: 4 }),
  initialDelay: fc.integer({ min: 1, max: 30 }),
  multiplier: fc.integer({ min: 1, max: 3 }),
  maxDelay: fc.integer({ min: 1, max: 60 }),
  jitter: fc.boolean(),
  maxElapsed: fc.oneof(fc.constant(Infinity), fc.integer({ min: 10, max: 200 })),
  permanentStops: fc.boolean(),
});

/** Random scenarios of the given shape. */
export function deliveryScenarioArb(shape: DeliveryShape = {}): fc.Arbitrary<DeliveryScenario> {
  const timeout = shape.timeout ?? "sometimes";
  const timeoutArb = fc.integer({ min: 5, max: 60 });
  return fc.record({
    capacity: fc.integer({ min: 1, max: 5 }),
    chanSize: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined, freq: 3 }),
    maxConcurrentFlushes: fc.integer({ min: 1, max: shape.maxConcurrentFlushes ?? 3 }),
    flushInterval: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 50 })),
    retry: fc.option(retrySpecArb, { nil: undefined, freq: 5 }),
    flushTimeout: timeout === "never"
      ? fc.constant(undefined)
      : timeout === "always"
      ? timeoutArb
      : fc.option(timeoutArb, { nil: undefined }),
    rejectPoison: fc.boolean(),
    asyncOnFlushError: fc.boolean(),
    behaviours: fc.array(shape.behaviours ?? anyBehaviourArb, { minLength: 1, maxLength: 8 }),
    ending: fc.constantFrom("close" as const, "dispose" as const),
    closeAfterSteps: fc.option(fc.integer({ min: 1, max: 16 }), { nil: undefined }),
    abortRunSignal: fc.boolean(),
    producers: fc.array(fc.array(opArb, { maxLength: 10 }), {
      minLength: 1,
      maxLength: shape.maxProducers ?? 3,
    }),
    ticks: fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 5 }),
  });
}

/** What the scenarios exercised, summed over runs: shows the property is not vacuous. */
export const deliveryCoverage = {
  runs: 0,
  tries: 0,
  retries: 0,
  delivered: 0,
  failed: 0,
  rejected: 0,
  lateResults: 0,
  timeouts: 0,
  sendsResolved: 0,
  sendsRejected: 0,
};

/** A try as the backend saw it. */
interface TryRecord {
  readonly index: number;
  readonly batch: number;
  readonly items: readonly Item[];
  readonly attempt: number;
  readonly reason: string;
  readonly startedAt: number;
  /** When the buffer times it out (Infinity without flushTimeout). */
  readonly deadline: number;
  settledAt: number | undefined;
  /** The try's answer, once settled: the items it failed and the error it gave. */
  outcome: { failed: readonly Item[]; error: unknown; anyError: boolean } | undefined;
}

/** A batch: the items of its first try, and all its tries. */
interface BatchRecord {
  readonly items: readonly Item[];
  readonly tries: TryRecord[];
}

/** The error class a backend throws for errors that retryable() should refuse. */
class PermanentError extends Error {}

/** A backend error, with the property the buffer reads for a requested wait. */
class BackendFailure extends Error {
  readonly retryAfter: number | undefined;
  constructor(message: string, retryAfter: number | undefined) {
    super(message);
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}

/** Runs one scenario under the scheduler; throws on the first violation. */
export async function runDeliveryScenario(
  s: fc.Scheduler,
  scenario: DeliveryScenario,
): Promise<void> {
  const clock = installClock();
  try {
    await runUnderClock(s, scenario, clock);
  } finally {
    clock.uninstall();
  }
}

async function runUnderClock(s: fc.Scheduler, scenario: DeliveryScenario, clock: Clock) {
  const capacity = scenario.capacity;
  const chanSize = scenario.chanSize ?? 2 * capacity;
  const maxFlushes = scenario.maxConcurrentFlushes;
  const retry = scenario.retry;
  const attempts = retry === undefined ? 1 : retry.attempts;
  const timeout = scenario.flushTimeout;

  let nextId = 0;
  const makeItem = (spec: ItemSpec): Item => ({ id: nextId++, ...spec });
  /** Items in the order their add/send/tryAdd was called. */
  const called: Item[] = [];
  const acceptedByAdd = new Set<Item>();
  const refused = new Set<Item>();
  const sends = new Map<Item, { settled: boolean; rejected: boolean; error: unknown }>();
  /** The abort reason each send's signal had, if any. */
  const sendAbortReasons = new Map<Item, unknown>();
  const tries: TryRecord[] = [];
  const batches: BatchRecord[] = [];
  const batchOf = new Map<Item, number>();
  const failedWith = new Map<Item, { error: unknown; at: number }>();
  const rejected = new Set<Item>();
  let abortedAt: number | undefined;
  /** The backend's own pending timers (delayed answers), which the buffer does not own. */
  let backendTimers = 0;
  /** Dead-letter writes (async onFlushError) not settled yet. */
  let pendingDeadLetters = 0;
  const arraysSeen = new WeakSet<Item[]>();
  let closeCalled = false;
  let disposePromise: Promise<void> | undefined;
  const runController = new AbortController();
  const runAbortReason = new Error("run signal aborted by the scenario");

  const { violations, guard, throwViolation } = violationLog();

  const checkStats = (where: string) => {
    const st = buffer.stats();
    assert.equal(st.added, accountedFor(st), `${where}: invariant broken ${JSON.stringify(st)}`);
    assert.ok(st.itemsInChannel <= chanSize, `${where}: ${st.itemsInChannel} > chanSize`);
    assert.ok(buffer.itemsInChannel <= chanSize, `${where}: itemsInChannel > chanSize`);
    assert.ok(
      st.flushesInFlight <= maxFlushes,
      `${where}: ${st.flushesInFlight} flushes in flight`,
    );
    assert.ok(st.retries >= 0 && st.retries <= tries.length, `${where}: retries ${st.retries}`);
  };

  /**
   * The items a settled try failed, from the buffer's point of view: all of
   * them when it threw, rejected, hung or came back late; outcome.retry
   * otherwise. Undefined when a tie with the deadline makes it ambiguous.
   */
  const failedBy = (t: TryRecord): readonly Item[] | undefined => {
    if (t.settledAt === undefined || t.settledAt > t.deadline) return t.items;
    if (t.settledAt === t.deadline && t.outcome!.failed.length < t.items.length) return undefined;
    return t.outcome!.failed;
  };

  const checkTry = (t: TryRecord) => {
    assert.ok(t.items.length > 0, "empty try");
    assert.ok(Number.isInteger(t.attempt) && t.attempt >= 1, `attempt ${t.attempt}`);
    assert.ok(t.attempt <= attempts, `attempt ${t.attempt} > ${attempts} attempts`);
    if (abortedAt !== undefined && t.attempt > 1) {
      assert.ok(t.startedAt <= abortedAt, `a retry started at ${t.startedAt}, after the abort`);
    }
    for (const item of t.items) {
      assert.ok(!refused.has(item), `refused item ${item.id} flushed`);
      assert.ok(!rejected.has(item), `rejected item ${item.id} flushed`);
      assert.ok(!failedWith.has(item), `item ${item.id} flushed after onFlushError`);
      assert.ok(!(scenario.rejectPoison && item.poison), `poison item ${item.id} flushed`);
    }
    if (t.attempt === 1) {
      assert.ok(t.items.length <= capacity, `batch of ${t.items.length} > capacity`);
      for (const item of t.items) {
        assert.ok(!batchOf.has(item), `item ${item.id} in a new batch twice`);
      }
      return;
    }
    const batch = batches[t.batch];
    const previous = batch.tries.at(-2)!;
    assert.equal(previous.attempt, t.attempt - 1, "attempts count up by one");
    assert.equal(t.reason, batch.tries[0].reason, "a retry keeps the original reason");
    const expected = failedBy(previous);
    const ids = (items: readonly Item[]) => items.map((item) => item.id);
    if (expected !== undefined) {
      assert.deepEqual(ids(t.items), ids(expected), "a retry carries exactly the failed items");
    } else {
      const okEither = [previous.items, previous.outcome!.failed].some((x) =>
        ids(x).join() === ids(t.items).join()
      );
      assert.ok(okEither, "a retry carries the failed items");
    }
  };

  const flush: FlushFunc<Item> = (batchArray, context) => {
    const items = [...batchArray];
    // The array is the flush's to keep and change: the buffer must not reuse it.
    guard(() => assert.ok(!arraysSeen.has(batchArray), "a try got an array handed out before"));
    arraysSeen.add(batchArray);
    batchArray.reverse();
    const attempt = context.attempt;
    const batchIndex = attempt === 1 || batchOf.get(items[0]) === undefined
      ? batches.length
      : batchOf.get(items[0])!;
    const t: TryRecord = {
      index: tries.length,
      batch: batchIndex,
      items,
      attempt,
      reason: context.reason,
      startedAt: clock.now,
      deadline: timeout === undefined ? Infinity : clock.now + timeout,
      settledAt: undefined,
      outcome: undefined,
    };
    tries.push(t);
    if (batchIndex === batches.length) batches.push({ items, tries: [] });
    batches[batchIndex].tries.push(t);
    guard(() => {
      checkTry(t);
      checkStats(`inside try ${t.index}`);
    });
    if (attempt === 1) { for (const item of items) batchOf.set(item, batchIndex); }

    let behaviour = scenario.behaviours[t.index % scenario.behaviours.length];
    if (behaviour.kind === "hang" && timeout === undefined) behaviour = { kind: "untilAbort" };
    const settle = (failed: readonly Item[], error: unknown, anyError = false) => {
      t.settledAt = clock.now;
      t.outcome = { failed, error, anyError };
      if (t.settledAt > t.deadline) deliveryCoverage.lateResults++;
    };
    const signal = context.signal;
    // unknown: a synchronous non-outcome value (a Response-like object) is not in
    // FlushFunc's return type, but the buffer must still count it as a success.
    const answer = (): unknown => {
      switch (behaviour.kind) {
        case "ok":
          settle([], undefined);
          return behaviour.value === "response" ? { status: 200, ok: true } : undefined;
        case "fail": {
          const error = behaviour.permanent
            ? new PermanentError(`try ${t.index} failed for good`)
            : new BackendFailure(`try ${t.index} failed`, behaviour.retryAfter);
          settle(items, error);
          throw error;
        }
        case "partial": {
          const mask = behaviour.mask;
          const retryItems = items.filter((_, i) => ((mask >> i) & 1) === 1);
          const error = behaviour.withError ? new Error(`try ${t.index} failed some`) : undefined;
          settle(retryItems, error, error === undefined);
          const outcome: FlushOutcome<Item> = { retry: retryItems };
          if (error !== undefined) outcome.error = error;
          if (behaviour.retryAfter !== undefined) outcome.retryAfter = behaviour.retryAfter;
          return outcome;
        }
        default:
          throw new Error("unreachable");
      }
    };
    switch (behaviour.kind) {
      case "hang":
        return new Promise(() => {});
      case "untilAbort":
        return new Promise((_, reject) => {
          const fail = () => {
            settle(items, signal.reason);
            reject(signal.reason);
          };
          if (signal.aborted) fail();
          else signal.addEventListener("abort", fail, { once: true });
        });
      default: {
        const timing = behaviour.timing;
        if (timing.kind === "sync") return answer() as void | FlushOutcome<Item>;
        const later = timing.kind === "scheduled"
          ? s.schedule(Promise.resolve(), `try ${t.index} settles`)
          : new Promise<void>((resolve) => {
            backendTimers++;
            setTimeout(() => {
              backendTimers--;
              resolve();
            }, timing.ms);
          });
        return later.then(answer);
      }
    }
  };

  const retryOptions: RetryOptions | undefined = retry === undefined ? undefined : {
    attempts: retry.attempts,
    initialDelay: retry.initialDelay,
    multiplier: retry.multiplier,
    maxDelay: retry.maxDelay,
    jitter: retry.jitter,
    maxElapsed: retry.maxElapsed,
    ...(retry.permanentStops ? { retryable: (e: unknown) => !(e instanceof PermanentError) } : {}),
  };

  const buffer: BatchBuffer<Item> = new BatchBuffer<Item>({
    capacity,
    chanSize: scenario.chanSize,
    maxConcurrentFlushes: maxFlushes,
    flushInterval: scenario.flushInterval,
    ...(retryOptions === undefined ? {} : { retry: retryOptions }),
    ...(timeout === undefined ? {} : { flushTimeout: timeout }),
    ...(scenario.rejectPoison
      ? { canAdd: (_batch: readonly Item[], item: Item) => !item.poison }
      : {}),
    onReject: (item) =>
      guard(() => {
        assert.ok(!rejected.has(item), `item ${item.id} rejected twice`);
        assert.ok(scenario.rejectPoison && item.poison, `item ${item.id} rejected without cause`);
        rejected.add(item);
      }),
    onFlushError: (error, failedBatch) => {
      guard(() => {
        assert.ok(failedBatch.length > 0, "onFlushError with no items");
        for (const item of failedBatch) {
          assert.ok(!failedWith.has(item), `item ${item.id} reached onFlushError twice`);
          assert.ok(batchOf.has(item), `item ${item.id} failed without a try`);
          failedWith.set(item, { error, at: clock.now });
        }
        checkStats("inside onFlushError");
      });
      if (scenario.asyncOnFlushError) {
        pendingDeadLetters++;
        return s.schedule(Promise.resolve(), "dead-letter write").then(() => {
          pendingDeadLetters--;
        });
      }
    },
    onError: (error) => guard(() => assert.fail(`onError: ${error}`)),
    flush,
  });

  const signalFor = (mode: AbortMode, label: string) => abortSignalFor(s, mode, label);

  const refusal = (error: unknown, item: Item, reason: unknown) => {
    if (error instanceof BufferClosedError) {
      assert.ok(closeCalled, "BufferClosedError before close()");
      assert.equal(error.item, item);
    } else assert.equal(error, reason, `refused with ${error}`);
  };

  async function runOp(op: Op): Promise<void> {
    switch (op.kind) {
      case "add": {
        const item = makeItem(op.item);
        called.push(item);
        const { signal, reason } = signalFor(op.abort, `add #${item.id}`);
        try {
          await buffer.add(item, signal === undefined ? undefined : { signal });
          acceptedByAdd.add(item);
        } catch (error) {
          refusal(error, item, reason);
          refused.add(item);
        }
        break;
      }
      case "send": {
        const item = makeItem(op.item);
        called.push(item);
        const { signal, reason } = signalFor(op.abort, `send #${item.id}`);
        // Not awaited: send() settles on delivery, which may need the close.
        sends.set(
          item,
          track(buffer.send(item, signal === undefined ? undefined : { signal })),
        );
        sendAbortReasons.set(item, reason);
        break;
      }
      case "tryAdd": {
        const item = makeItem(op.item);
        called.push(item);
        try {
          if (buffer.tryAdd(item)) acceptedByAdd.add(item);
          else refused.add(item);
        } catch (error) {
          assert.ok(closeCalled && error instanceof BufferClosedError, `tryAdd threw ${error}`);
          refused.add(item);
        }
        break;
      }
      case "flush": {
        await buffer.flush();
        break;
      }
    }
    checkStats(`after ${op.kind}`);
  }

  const end = () => {
    if (closeCalled) return;
    closeCalled = true;
    if (scenario.ending === "close") buffer.close();
    else disposePromise = buffer[Symbol.asyncDispose]();
  };
  const abortRun = () => {
    if (runController.signal.aborted) return;
    abortedAt = clock.now;
    runController.abort(runAbortReason);
  };

  const runPromise = buffer.run(runController.signal);
  const closer = scheduleClose(s, scenario.closeAfterSteps, end);
  const ticks = new Set<Promise<void>>();
  for (const ms of scenario.ticks) {
    // tickAsync, not tick: promise jobs run between timers, as they do for real
    // timers (a try that settles in time must be seen before its deadline fires).
    s.schedule(Promise.resolve(), `tick ${ms}ms`).then(() => {
      const ticking = clock.tickAsync(ms).then(() => void ticks.delete(ticking));
      ticks.add(ticking);
    }).catch((error) => violations.push(error));
  }
  if (scenario.abortRunSignal) s.schedule(Promise.resolve(), "abort run").then(abortRun);
  const producers = scheduleProducers(s, scenario.producers, runOp);

  await driveToEnd(
    (async () => {
      await Promise.all(producers);
      await closer;
      end();
      await runPromise;
      assert.equal(pendingDeadLetters, 0, "run() resolved before onFlushError's promise settled");
      await disposePromise;
      assert.equal(pendingDeadLetters, 0, "dispose resolved before onFlushError's promise settled");
    })(),
    {
      s,
      clock,
      // One clock operation at a time.
      pending: () => (ticks.size > 0 ? Promise.all(ticks) : undefined),
      afterStep: () => {
        throwViolation();
        checkStats("after a scheduled step");
      },
      afterTimer: () => checkStats(`after a timer at ${clock.now} ms`),
      runAborted: () => runController.signal.aborted,
      abortRun,
      stats: () => buffer.stats(),
      throwViolation,
    },
  );
  for (let i = 0; i < 5; i++) await Promise.resolve();
  throwViolation();
  assert.equal(clock.countTimers(), backendTimers, "a timer is left after run() resolved");
  // Late answers still due arrive now; the buffer must ignore them.
  await clock.runAllAsync();
  throwViolation();

  // Reconcile, item by item.
  const delivered = new Set<Item>();
  for (const item of called) {
    const inTries = batchOf.has(item);
    const wasRejected = rejected.has(item);
    const failed = failedWith.get(item);
    assert.ok(!(inTries && wasRejected), `item ${item.id} both flushed and rejected`);
    const acceptedBySend = sends.has(item) && (inTries || wasRejected);
    const accepted = acceptedByAdd.has(item) || acceptedBySend;
    if (!accepted) {
      assert.ok(!inTries && !wasRejected, `item ${item.id} handed out but not accepted`);
      const sent = sends.get(item);
      if (sent !== undefined) {
        assert.ok(
          sent.settled && sent.rejected,
          `send of unaccepted item ${item.id} did not reject`,
        );
        refusal(sent.error, item, sendAbortReasons.get(item));
        deliveryCoverage.sendsRejected++;
      }
      continue;
    }
    assert.ok(inTries || wasRejected, `accepted item ${item.id} lost`);
    if (wasRejected) {
      deliveryCoverage.rejected++;
    } else {
      // The item's last try decides: delivered if it succeeded for the item in time.
      const itsTries = batches[batchOf.get(item)!].tries.filter((t) => t.items.includes(item));
      assert.ok(itsTries.length <= attempts, `item ${item.id} tried ${itsTries.length} times`);
      const last = itsTries.at(-1)!;
      const lastFailed = failedBy(last);
      if (failed === undefined) {
        delivered.add(item);
        deliveryCoverage.delivered++;
        if (lastFailed !== undefined) {
          assert.ok(
            !lastFailed.includes(item),
            `item ${item.id} counted delivered, its last try failed`,
          );
        }
      } else {
        deliveryCoverage.failed++;
        if (lastFailed !== undefined) {
          assert.ok(
            lastFailed.includes(item),
            `item ${item.id} in onFlushError, its last try succeeded`,
          );
        }
        const early = itsTries.length < attempts;
        const permanent = last.outcome?.error instanceof PermanentError && retry?.permanentStops;
        const excused = retry === undefined || !early || permanent ||
          retry.maxElapsed !== Infinity ||
          (abortedAt !== undefined && abortedAt <= failed.at);
        assert.ok(
          excused,
          `item ${item.id} given up after ${itsTries.length} of ${attempts} tries`,
        );
        checkLastError(failed.error, last);
      }
    }
    const sent = sends.get(item);
    if (sent === undefined) continue;
    assert.ok(sent.settled, `send of item ${item.id} never settled`);
    if (delivered.has(item)) {
      assert.ok(!sent.rejected, `send of delivered item ${item.id} rejected: ${sent.error}`);
      deliveryCoverage.sendsResolved++;
    } else {
      assert.ok(sent.rejected, `send of undelivered item ${item.id} resolved`);
      const error = sent.error;
      assert.ok(error instanceof DeliveryError, `send of item ${item.id} rejected with ${error}`);
      assert.equal(error.item, item);
      if (failed !== undefined) assert.equal(error.cause, failed.error, "cause: the last error");
      else assert.ok(error.cause instanceof Error, "a refused send says why");
      deliveryCoverage.sendsRejected++;
    }
  }

  const st = buffer.stats();
  const acceptedCount =
    called.filter((item) =>
      acceptedByAdd.has(item) || (sends.has(item) && (batchOf.has(item) || rejected.has(item)))
    ).length;
  assert.equal(st.added, acceptedCount, "stats.added");
  assert.equal(st.rejected, rejected.size, "stats.rejected");
  assert.equal(st.flushedItems, delivered.size, "stats.flushedItems: each item once");
  assert.equal(st.failedItems, failedWith.size, "stats.failedItems: each item once");
  assert.equal(st.retries, tries.filter((t) => t.attempt > 1).length, "stats.retries");
  const batchFailed = batches.map((b) => b.items.some((item) => failedWith.has(item)));
  assert.equal(st.flushes, batchFailed.filter((f) => !f).length, "stats.flushes");
  assert.equal(st.failedFlushes, batchFailed.filter((f) => f).length, "stats.failedFlushes");
  assert.deepEqual(
    [st.inFlightItems, st.itemsInChannel, st.itemsInBatch, st.flushesInFlight],
    [0, 0, 0, 0],
    "nothing pending at the end",
  );

  // Order with one flush at a time: batches never interleave and keep call order.
  if (maxFlushes === 1) {
    const batchSequence = tries.map((t) => t.batch);
    assert.deepEqual(batchSequence, batchSequence.toSorted((a, b) => a - b), "batches interleaved");
    if (scenario.producers.length === 1) {
      const firstTries = tries.filter((t) => t.attempt === 1).flatMap((t) => t.items);
      const expected = called.filter((item) => batchOf.has(item));
      assert.deepEqual(firstTries.map((i) => i.id), expected.map((i) => i.id), "call order");
    }
  }

  deliveryCoverage.runs++;
  deliveryCoverage.tries += tries.length;
  deliveryCoverage.retries += st.retries;
  deliveryCoverage.timeouts +=
    tries.filter((t) => t.settledAt === undefined || t.settledAt > t.deadline).length;

  // After the run the buffer refuses politely and stays quiet.
  await assert.rejects(buffer.send(makeItem({ poison: false })), BufferClosedError);
  await buffer.flush();
  assert.equal(clock.countTimers(), 0, "a timer was left after the run");
}

/** Checks the error onFlushError got against the item's last try. */
function checkLastError(error: unknown, last: TryRecord): void {
  const timeoutError = error instanceof DOMException && error.name === "TimeoutError";
  if (last.settledAt === undefined || last.settledAt > last.deadline) {
    assert.ok(timeoutError, `a timed-out try gave onFlushError ${error}`);
    return;
  }
  const outcome = last.outcome!;
  const matches = outcome.anyError ? error instanceof Error : error === outcome.error;
  // Settled just as the deadline passed: either answer may have come first.
  const tie = last.settledAt === last.deadline;
  assert.ok(matches || (tie && timeoutError), `onFlushError got ${error}, not the last error`);
}

/** A property of the delivery scenarios. */
export type DeliveryProperty = NamedProperty<DeliveryScenario>;

/** The properties tests/delivery_property.test.ts runs. */
export const DELIVERY_PROPERTIES: readonly DeliveryProperty[] = [
  {
    name:
      "a faulty backend: every item is delivered once or reaches onFlushError once, and every send() settles accordingly",
    arbitrary: deliveryScenarioArb(),
  },
  {
    name: "a faulty backend with one flush at a time and one producer: order holds through retries",
    arbitrary: deliveryScenarioArb({ maxConcurrentFlushes: 1, maxProducers: 1 }),
  },
  {
    name:
      "hung and late tries: flushTimeout frees the slot, late results count nowhere, shutdown ends",
    arbitrary: deliveryScenarioArb({
      timeout: "always",
      behaviours: fc.oneof(
        fc.constant<Behaviour>({ kind: "hang" }),
        fc.constant<Behaviour>({ kind: "untilAbort" }),
        fc.integer({ min: 0, max: 120 }).map((ms): Behaviour => ({
          kind: "ok",
          timing: { kind: "delay", ms },
          value: "none",
        })),
        fc.integer({ min: 0, max: 31 }).chain((mask) =>
          fc.integer({ min: 0, max: 120 }).map((ms): Behaviour => ({
            kind: "partial",
            timing: { kind: "delay", ms },
            mask,
            withError: true,
            retryAfter: undefined,
          }))
        ),
      ),
    }),
  },
];

/** Checks one property with `numRuns` scenarios; throws fast-check's report on failure. */
export async function checkDeliveryProperty(
  property: DeliveryProperty,
  numRuns: number = PROPERTY_RUNS,
  seed?: number,
): Promise<void> {
  await checkScheduled(property, runDeliveryScenario, numRuns, seed);
}
