// The hook fuzz of tests/fuzz.test.ts (and the x100 soak). Not a test file itself.
//
// A scenario is a random config whose every hook follows a random script: each
// call answers a random result (throws, odd values, promises that reject or
// never settle, thenables whose `then` throws) and may first call back into the
// buffer (add, tryAdd, addAll, flush, close, stats, dispose). fast-check's
// scheduler decides when producers step, when async results settle, when the
// fake clock ticks and when the buffer closes. A recorder checks, at every hook
// entry and every step, and then at the end:
// - every item reaches exactly one outcome: a flush that succeeded, a flush that
//   failed (then onFlushError, or a report through onError), onReject, or a
//   refusal to its caller; nothing is invented, duplicated or left behind;
// - every flush() promise keeps its contract: it settles, it rejects only before
//   run(), and when it resolves every item accepted before the call has settled;
// - the stats invariant holds inside every hook;
// - nothing throws synchronously out of add(), tryAdd() (but BufferClosedError),
//   addAll(), flush(), close(), stats() or dispose;
// - nothing is left unhandled, every error a hook throws is reported exactly
//   once, and every promise handed to waitUntil fulfils;
// - no item joins a batch that shouldFlush already called full, and a shared
//   AbortSignal carries at most one abort listener from the buffer.
import process from "node:process";
import fc from "fast-check";
import {
  AddAllError,
  BatchBuffer,
  type BatchBufferConfig,
  BufferClosedError,
  type FlushContext,
} from "../mod.ts";
import { type Clock, installClock } from "./helpers.ts";
import { scheduleClose, scheduleProducers } from "./model.ts";

/**
 * The inputs that hit a bug of issue 11 (or an "also fix" item) on the code the
 * review ran against. Excluding them shows the other checks raise no false
 * alarm there; including one at a time shows which check catches it.
 */
export const TRIGGERS = [
  "thenGetter", // 1: a flush result whose `then` getter throws
  "consoleThrows", // 2: console.error throws (with no onError)
  "primitiveIterator", // 3: addAll() of an iterator whose next() returns a primitive
  "sharedSignals", // 4: producers that share an AbortSignal
  "flushFromHooks", // 5: flush() called from hooks other than flush
  "reentryFromOnFlushError", // 6: items added from onFlushError
  "onErrorRejects", // 7: an async onError that rejects
  "badOptions", // add() with an options.signal getter that throws
  "syntheticAbort", // abort events dispatched on signals that have not aborted
  "infiniteBudget", // maxBatchBytes: Infinity without sizeOf
  "asyncPredicates", // predicates that answer with promises or thenables
] as const;

/** One of {@linkcode TRIGGERS}. */
export type Trigger = typeof TRIGGERS[number];

/** A call back into the buffer that a hook makes before it answers. */
export type Reentry = "add" | "tryAdd" | "addAll" | "flush" | "close" | "stats" | "dispose";

/** One call of a hook: what it does first, then what it answers. */
export interface Step<R> {
  readonly result: R;
  readonly reentry: Reentry | undefined;
}

/** What a flush answers. */
export type FlushResult =
  | "undefined"
  | "odd"
  | "throw"
  | "throwValue"
  | "resolve"
  | "reject"
  | "thenGetterThrows"
  | "thenThrows"
  | "thenResolves"
  | "thenRejects"
  | "thenSettlesTwice"
  | "untilAbort";

/** What willOverflow, canAdd or shouldFlush answers. */
export type PredicateResult =
  | "true"
  | "false"
  | "truthy"
  | "falsy"
  | "throw"
  | "promise"
  | "rejectedPromise"
  | "neverSettles"
  | "thenGetterThrows";

/** What sizeOf answers. */
export type SizeResult =
  | 0
  | 1
  | 2
  | 3
  | 5
  | "negative"
  | "nan"
  | "infinity"
  | "string"
  | "bigint"
  | "promise"
  | "throw";

/** What onReject, onFlushError, onError or waitUntil answers. */
export type VoidResult =
  | "undefined"
  | "odd"
  | "throw"
  | "resolve"
  | "reject"
  | "neverSettles"
  | "thenGetterThrows"
  | "thenThrows";

/**
 * The scripts of the configured hooks; an absent key leaves the hook out
 * (except onReject, which then answers undefined: it is how the fuzz sees rejects).
 */
export interface HookScripts {
  readonly flush: readonly Step<FlushResult>[];
  readonly sizeOf?: readonly Step<SizeResult>[];
  readonly willOverflow?: readonly Step<PredicateResult>[];
  readonly canAdd?: readonly Step<PredicateResult>[];
  readonly shouldFlush?: readonly Step<PredicateResult>[];
  readonly onReject?: readonly Step<VoidResult>[];
  readonly onFlushError?: readonly Step<VoidResult>[];
  readonly onError?: readonly Step<VoidResult>[];
  readonly waitUntil?: readonly Step<VoidResult>[];
}

/** "before": aborted before the call; "later": the scheduler aborts it; "synthetic": a fake abort event. */
export type AbortMode = "none" | "before" | "later" | "synthetic";

/** The signal of an add: its own, or one of the two shared by the scenario. */
export type SignalChoice = { readonly own: AbortMode } | { readonly shared: 0 | 1 };

/** One step of a producer. */
export type FuzzOp =
  | { readonly kind: "add"; readonly signal: SignalChoice }
  | { readonly kind: "badOptions" }
  | { readonly kind: "tryAdd" }
  | {
    readonly kind: "addAll";
    readonly count: number;
    readonly source: "array" | "generator" | "throws" | "primitive";
    /** Where "throws" throws and "primitive" answers 42 instead of an item. */
    readonly at: number;
    readonly signal: SignalChoice;
  }
  | { readonly kind: "flush" };

/** A random config, hook scripts and workload. */
export interface FuzzScenario {
  readonly capacity: number;
  readonly chanSize: number | undefined;
  readonly maxConcurrentFlushes: number;
  readonly flushInterval: number;
  /** undefined: no byte budget; Infinity: `maxBatchBytes: Infinity` without sizeOf. */
  readonly maxBatchBytes: number | undefined;
  readonly maxItemBytes: number | undefined;
  readonly hooks: HookScripts;
  readonly consoleThrows: boolean;
  readonly sharedAborts: readonly [AbortMode, AbortMode];
  /** The signal of the adds that hooks make: none, or one of the shared ones. */
  readonly reentrantAddSignal: "none" | 0 | 1;
  readonly runStart: "now" | "scheduled";
  readonly ending: "close" | "dispose";
  readonly closeAfterSteps: number | undefined;
  readonly abortRunSignal: boolean;
  readonly producers: readonly (readonly FuzzOp[])[];
  readonly ticks: readonly number[];
}

/** Counts over all runs, to show the fuzz is not vacuous. */
export const fuzzCoverage = {
  runs: 0,
  accepted: 0,
  refused: 0,
  refusedByClose: 0,
  refusedByAbort: 0,
  tryAddFalse: 0,
  rejected: 0,
  okFlushes: 0,
  failedFlushes: 0,
  reentries: 0,
  reentrantFlushCalls: 0,
  hookErrorsReported: 0,
  flushCallsChecked: 0,
};

// ---------------------------------------------------------------- generators

function steps<R>(
  result: fc.Arbitrary<R>,
  reentries: readonly Reentry[],
): fc.Arbitrary<readonly Step<R>[]> {
  // Closing from a hook ends the run early, so it comes up less often than adding.
  const weights: Record<Reentry, number> = {
    add: 4,
    tryAdd: 3,
    addAll: 2,
    flush: 3,
    stats: 2,
    close: 1,
    dispose: 1,
  };
  const reentry = reentries.length === 0 ? fc.constant(undefined) : fc.option(
    fc.oneof(...reentries.map((r) => ({ arbitrary: fc.constant(r), weight: weights[r] }))),
    { nil: undefined, freq: 2 },
  );
  return fc.array(fc.record({ result, reentry }), { minLength: 1, maxLength: 5 });
}

const keep = <V>(values: readonly [V, Trigger | undefined][], without: ReadonlySet<Trigger>) =>
  values.filter(([, trigger]) => trigger === undefined || !without.has(trigger)).map(([v]) => v);

/**
 * Where the scenarios aim: "wide" draws every hook and result alike; "retry"
 * aims at the settle path: flushes that fail late, batches that overflow, and
 * onFlushError adding items back while the buffer is still open.
 */
export type FuzzShape = "wide" | "retry";

/** Random scenarios of a shape; `without` leaves out the inputs of those triggers. */
export function fuzzArb(
  without: ReadonlySet<Trigger> = new Set(),
  shape: FuzzShape = "wide",
): fc.Arbitrary<FuzzScenario> {
  const allReentries: Reentry[] = ["add", "tryAdd", "addAll", "flush", "close", "stats", "dispose"];
  const hookReentries = allReentries.filter((r) => r !== "flush" || !without.has("flushFromHooks"));
  const onFlushErrorReentries = hookReentries.filter((r) =>
    !without.has("reentryFromOnFlushError") || !["add", "tryAdd", "addAll"].includes(r)
  );
  const flushResult = fc.constantFrom<FlushResult>(
    ...keep<FlushResult>([
      ["undefined", undefined],
      ["undefined", undefined],
      ["odd", undefined],
      ["throw", undefined],
      ["throwValue", undefined],
      ["resolve", undefined],
      ["resolve", undefined],
      ["reject", undefined],
      ["thenGetterThrows", "thenGetter"],
      ["thenThrows", undefined],
      ["thenResolves", undefined],
      ["thenRejects", undefined],
      ["thenSettlesTwice", undefined],
      ["untilAbort", undefined],
    ], without),
  );
  const predicateResult = fc.constantFrom<PredicateResult>(
    ...keep<PredicateResult>([
      ["true", undefined],
      ["false", undefined],
      ["false", undefined],
      ["truthy", undefined],
      ["falsy", undefined],
      ["throw", undefined],
      ["promise", "asyncPredicates"],
      ["rejectedPromise", "asyncPredicates"],
      ["neverSettles", "asyncPredicates"],
      ["thenGetterThrows", "asyncPredicates"],
    ], without),
  );
  const sizeResult = fc.constantFrom<SizeResult>(
    0,
    1,
    1,
    2,
    3,
    5,
    "negative",
    "nan",
    "infinity",
    "string",
    "bigint",
    "promise",
    "throw",
  );
  const voidResults: VoidResult[] = [
    "undefined",
    "undefined",
    "odd",
    "throw",
    "resolve",
    "reject",
    "neverSettles",
    "thenGetterThrows",
    "thenThrows",
  ];
  const voidResult = fc.constantFrom(...voidResults);
  const onErrorResult = fc.constantFrom(
    ...voidResults.filter((r) => r !== "reject" || !without.has("onErrorRejects")),
  );
  const wideHooks: fc.Arbitrary<HookScripts> = fc.record({
    flush: steps(flushResult, allReentries),
    sizeOf: steps(sizeResult, hookReentries),
    willOverflow: steps(predicateResult, hookReentries),
    canAdd: steps(predicateResult, hookReentries),
    shouldFlush: steps(predicateResult, hookReentries),
    onReject: steps(voidResult, hookReentries),
    onFlushError: steps(voidResult, onFlushErrorReentries),
    onError: steps(onErrorResult, hookReentries),
    waitUntil: steps(voidResult, hookReentries),
  }, { requiredKeys: ["flush"] });
  const adds = onFlushErrorReentries.filter((r) => ["add", "tryAdd", "addAll"].includes(r));
  const retryHooks: fc.Arbitrary<HookScripts> = fc.record({
    flush: steps(
      fc.constantFrom<FlushResult>("reject", "reject", "thenRejects", "resolve", "undefined"),
      allReentries,
    ),
    sizeOf: steps(fc.constantFrom<SizeResult>(0, 1, 1, 2, 3), []),
    willOverflow: steps(fc.constantFrom<PredicateResult>("true", "false", "false"), []),
    shouldFlush: steps(fc.constantFrom<PredicateResult>("true", "false", "false", "throw"), []),
    onFlushError: fc.array(
      fc.record({
        result: fc.constantFrom<VoidResult>("undefined", "throw"),
        reentry: adds.length === 0 ? fc.constant(undefined) : fc.constantFrom(...adds),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  }, { requiredKeys: ["flush", "onFlushError"] });
  const hooks = shape === "retry" ? retryHooks : wideHooks;

  const ownAbort = fc.constantFrom<AbortMode>(
    ...keep<AbortMode>([
      ["none", undefined],
      ["none", undefined],
      ["before", undefined],
      ["later", undefined],
      ["synthetic", "syntheticAbort"],
    ], without),
  );
  const signalChoice: fc.Arbitrary<SignalChoice> = without.has("sharedSignals")
    ? ownAbort.map((own) => ({ own }))
    : fc.oneof(
      { arbitrary: ownAbort.map((own): SignalChoice => ({ own })), weight: 2 },
      {
        arbitrary: fc.constantFrom<0 | 1>(0, 1).map((shared): SignalChoice => ({ shared })),
        weight: 1,
      },
    );
  const sources = keep<"array" | "generator" | "throws" | "primitive">([
    ["array", undefined],
    ["generator", undefined],
    ["throws", undefined],
    ["primitive", "primitiveIterator"],
  ], without);
  const op: fc.Arbitrary<FuzzOp> = fc.oneof(
    {
      arbitrary: fc.record({ kind: fc.constant("add" as const), signal: signalChoice }),
      weight: 6,
    },
    { arbitrary: fc.constant<FuzzOp>({ kind: "tryAdd" }), weight: 2 },
    {
      arbitrary: fc.record({
        kind: fc.constant("addAll" as const),
        count: fc.integer({ min: 1, max: 5 }),
        source: fc.constantFrom(...sources),
        at: fc.integer({ min: 0, max: 4 }),
        signal: signalChoice,
      }),
      weight: 2,
    },
    { arbitrary: fc.constant<FuzzOp>({ kind: "flush" }), weight: 1 },
    ...(without.has("badOptions")
      ? []
      : [{ arbitrary: fc.constant<FuzzOp>({ kind: "badOptions" }), weight: 1 }]),
  );
  const sharedAbort = fc.constantFrom<AbortMode>(
    ...keep<AbortMode>([
      ["none", undefined],
      ["later", undefined],
      ["synthetic", "syntheticAbort"],
    ], without),
  );
  const budget = fc.oneof(
    { arbitrary: fc.constant({ maxBatchBytes: undefined, maxItemBytes: undefined }), weight: 3 },
    {
      arbitrary: fc.integer({ min: 1, max: 8 }).chain((maxBatchBytes) =>
        fc.record({
          maxBatchBytes: fc.constant<number | undefined>(maxBatchBytes),
          maxItemBytes: fc.option(fc.integer({ min: 1, max: maxBatchBytes }), { nil: undefined }),
        })
      ),
      weight: 2,
    },
    ...(without.has("infiniteBudget") ? [] : [{
      arbitrary: fc.constant({
        maxBatchBytes: Infinity as number | undefined,
        maxItemBytes: undefined,
      }),
      weight: 1,
    }]),
  );
  return fc.record({
    capacity: fc.integer({ min: 1, max: 4 }),
    chanSize: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined, freq: 3 }),
    maxConcurrentFlushes: fc.integer({ min: 1, max: 3 }),
    flushInterval: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 30 })),
    budget,
    hooks,
    consoleThrows: without.has("consoleThrows") ? fc.constant(false) : fc.boolean(),
    sharedAborts: fc.tuple(sharedAbort, sharedAbort),
    reentrantAddSignal: without.has("sharedSignals")
      ? fc.constant("none" as const)
      : fc.constantFrom("none" as const, 0 as const, 1 as const),
    runStart: fc.constantFrom("now" as const, "now" as const, "scheduled" as const),
    ending: fc.constantFrom("close" as const, "dispose" as const),
    closeAfterSteps: shape === "retry"
      ? fc.constant(undefined)
      : fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
    abortRunSignal: fc.boolean(),
    producers: fc.array(fc.array(op, { maxLength: shape === "retry" ? 10 : 6 }), {
      minLength: 1,
      maxLength: 3,
    }),
    ticks: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 3 }),
  }).map(({ budget, hooks, ...rest }): FuzzScenario => {
    // sizeOf is required with a finite budget, and left out with the infinite one.
    let scripts: HookScripts = hooks;
    const finite = budget.maxBatchBytes !== undefined && budget.maxBatchBytes !== Infinity;
    if (finite && hooks.sizeOf === undefined) {
      scripts = { ...hooks, sizeOf: [{ result: 1, reentry: undefined }] };
    }
    if (budget.maxBatchBytes === Infinity) {
      const { sizeOf: _, ...withoutSizeOf } = hooks;
      scripts = withoutSizeOf;
    }
    return { ...rest, ...budget, hooks: scripts };
  });
}

// ---------------------------------------------------------------- unhandled rejections

/** Unhandled rejections seen since {@linkcode watchUnhandled} started. */
export interface UnhandledWatch {
  readonly seen: unknown[];
  stop(): void;
}

/**
 * Records unhandled rejections without letting them end the process (Deno's
 * event is cancelled; in Node and Bun a process listener handles them).
 */
export function watchUnhandled(): UnhandledWatch {
  const seen: unknown[] = [];
  const g = globalThis as unknown as {
    Deno?: unknown;
    addEventListener(type: string, listener: (event: PromiseRejectionEvent) => void): void;
    removeEventListener(type: string, listener: (event: PromiseRejectionEvent) => void): void;
  };
  if (g.Deno !== undefined) {
    const listener = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      seen.push(event.reason);
    };
    g.addEventListener("unhandledrejection", listener);
    return { seen, stop: () => g.removeEventListener("unhandledrejection", listener) };
  }
  const listener = (reason: unknown) => void seen.push(reason);
  process.on("unhandledRejection", listener);
  return { seen, stop: () => process.off("unhandledRejection", listener) };
}

/** The real setTimeout, read before any test installs a fake clock. */
const realSetTimeout: typeof setTimeout = globalThis.setTimeout;

/**
 * One real macrotask, also under the fake clock (which leaves setImmediate
 * alone): unhandled rejections are reported once the microtask queue drains.
 */
function macrotask(): Promise<void> {
  const g = globalThis as { setImmediate?: (callback: () => void) => unknown };
  return new Promise<void>((resolve) =>
    g.setImmediate !== undefined ? g.setImmediate(resolve) : realSetTimeout(resolve, 0)
  );
}

// ---------------------------------------------------------------- one run

interface Item {
  readonly id: number;
}

/** A shared signal whose abort listeners are counted. */
interface WatchedSignal {
  readonly controller: AbortController;
  /** The buffer's live abort listeners, and whether each was added with `once`. */
  readonly live: Map<unknown, boolean>;
}

function watchSignal(controller: AbortController): WatchedSignal {
  const watched: WatchedSignal = { controller, live: new Map() };
  const signal = controller.signal;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    if (type === "abort") {
      const once = typeof options === "object" && options !== null &&
        (options as AddEventListenerOptions).once === true;
      watched.live.set(listener, once);
    }
    add(type, listener, options as AddEventListenerOptions);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    if (type === "abort") watched.live.delete(listener);
    remove(type, listener, options as EventListenerOptions);
  }) as typeof signal.removeEventListener;
  return watched;
}

/** Reentrant calls per run, and how deep hooks may nest. */
const MAX_REENTRIES = 8;
const MAX_DEPTH = 2;

const show = (value: unknown): string => {
  try {
    return typeof value === "symbol" ? value.toString() : String(value);
  } catch {
    return typeof value;
  }
};

/** What the runs of one property share: installing them per run would cost more than a run. */
export interface FuzzEnv {
  readonly unhandled: UnhandledWatch;
  readonly clock: Clock;
}

/** Runs one scenario; throws an Error listing the violations, if any. */
export async function runFuzz(
  s: fc.Scheduler,
  scenario: FuzzScenario,
  { unhandled, clock }: FuzzEnv,
): Promise<void> {
  const unhandledBefore = unhandled.seen.length;
  const violations: string[] = [];
  const violate = (message: string) => void violations.push(message);
  const originalConsoleError = console.error;
  clock.reset(); // no timer left by an earlier run, and the time back at 0
  let outcome: { failure?: unknown } = {};
  try {
    outcome = await runUnderClock(s, scenario, clock, violate);
  } finally {
    console.error = originalConsoleError;
  }
  await macrotask();
  if (unhandled.seen.length > unhandledBefore) {
    violate(
      `unhandled rejection: ${unhandled.seen.slice(unhandledBefore).map(show).join("; ")}`,
    );
  }
  if (outcome.failure !== undefined) violate(show(outcome.failure));
  if (violations.length > 0) {
    throw new Error(
      `${violations.length} violation(s); first: ${violations[0]}\nall: ${
        [...new Set(violations)].slice(0, 12).join("\n     ")
      }`,
    );
  }
}

async function runUnderClock(
  s: fc.Scheduler,
  scenario: FuzzScenario,
  clock: Clock,
  violate: (message: string) => void,
): Promise<{ failure?: unknown }> {
  const hooks = scenario.hooks;
  const capacity = scenario.capacity;
  const chanSize = scenario.chanSize ?? 2 * capacity;
  const maxFlushes = scenario.maxConcurrentFlushes;
  const budgeted = scenario.maxBatchBytes !== undefined && scenario.maxBatchBytes !== Infinity;

  // ------------------------------------------------------------ bookkeeping
  let nextId = 0;
  const items = new Map<number, Item>();
  const newItem = (): Item => {
    const item = { id: nextId++ };
    items.set(item.id, item);
    return item;
  };
  const isOurs = (value: unknown): value is Item =>
    typeof value === "object" && value !== null &&
    items.get((value as Item).id) === value;
  const accepted = new Set<number>();
  const refused = new Set<number>();
  const handedOut = new Set<number>();
  const settledIds = new Set<number>();
  const outcomeOf = new Map<number, "ok" | "failed" | "rejected">();
  const sizes = new Map<number, number>();
  const settledBatches = new Set<unknown[]>();
  const failedBatches = new Map<unknown[], unknown>();
  const reportedBatches = new Set<unknown[]>();
  /** For each batch, the lengths at which shouldFlush called it full. */
  const fullAt = new Map<readonly unknown[], Set<number>>();
  let okFlushes = 0;
  let failedFlushes = 0;
  let openFlushes = 0;
  let flushCalls = 0;
  let flushDepth = 0;
  let hookDepth = 0;
  let reentries = 0;
  let closeCalled = false;
  let manualFlushCalls = 0;
  let runStartedBy: "test" | "dispose" | undefined;
  /** Errors that hooks threw (or rejected with) and that must be reported exactly once. */
  const mustReport = new Set<unknown>();
  const reportCount = new Map<unknown, number>();
  let wrappedReports = 0;
  const waitUntilStates: { settled: boolean; fulfilled: boolean }[] = [];
  /** Calls whose promise must settle before the end, by label. */
  const pending = new Set<string>();
  const tracked: Promise<void>[] = [];
  let label = 0;
  const runController = new AbortController();
  const runAbortReason = new Error("run signal aborted by the scenario");
  const shared = [new AbortController(), new AbortController()].map(watchSignal);

  const receive = (error: unknown) => {
    reportCount.set(error, (reportCount.get(error) ?? 0) + 1);
    if (
      error instanceof Error && "cause" in error &&
      /^flush failed; its \d+ items were not delivered/.test(error.message)
    ) {
      wrappedReports++;
    }
  };
  const consoleError = new Error("console.error is not allowed in this test setup");
  console.error = (...args: unknown[]) => {
    receive(args[0]);
    if (scenario.consoleThrows) throw consoleError;
  };

  // ------------------------------------------------------------ checks
  let buffer!: BatchBuffer<Item>;

  const checkStats = (where: string) => {
    let st;
    try {
      st = buffer.stats();
    } catch (error) {
      return violate(`stats() threw ${where}: ${show(error)}`);
    }
    const sum = st.rejected + st.flushedItems + st.failedItems + st.inFlightItems +
      st.itemsInChannel + st.itemsInBatch;
    if (st.added !== sum) violate(`stats invariant broken ${where}: ${JSON.stringify(st)}`);
    if (st.itemsInChannel > chanSize) violate(`${st.itemsInChannel} items in channel ${where}`);
    if (buffer.itemsInChannel !== st.itemsInChannel) violate(`itemsInChannel disagrees ${where}`);
    if (st.flushesInFlight > maxFlushes) violate(`${st.flushesInFlight} flushes in flight`);
    if (hooks.shouldFlush === undefined && st.itemsInBatch > capacity) {
      violate(`the batch holds ${st.itemsInBatch} items > capacity ${capacity} ${where}`);
    }
    if (st.inFlightItems < 0 || st.flushesInFlight < 0) violate(`negative counts ${where}`);
    if (st.added < accepted.size) violate(`stats.added ${st.added} < ${accepted.size} accepted`);
  };
  const checkSignals = (where: string) => {
    for (const [i, watched] of shared.entries()) {
      if (!watched.controller.signal.aborted && watched.live.size > 1) {
        violate(`shared signal ${i} carries ${watched.live.size} abort listeners ${where}`);
      }
    }
  };
  const handOut = (value: unknown, where: string): value is Item => {
    if (!isOurs(value)) {
      violate(`${where} received ${show(value)}, which nobody added (an invented item)`);
      return false;
    }
    if (handedOut.has(value.id)) violate(`item ${value.id} handed out twice (${where})`);
    if (refused.has(value.id)) violate(`item ${value.id} was refused, yet reached ${where}`);
    handedOut.add(value.id);
    return true;
  };
  const accept = (item: Item) => {
    if (refused.has(item.id)) violate(`item ${item.id} both refused and accepted`);
    accepted.add(item.id);
  };
  const refuse = (item: Item) => {
    if (accepted.has(item.id)) violate(`item ${item.id} both accepted and refused`);
    if (handedOut.has(item.id)) violate(`item ${item.id} was refused, yet handed out`);
    refused.add(item.id);
  };
  /** Calls a buffer method that must not throw synchronously. */
  const noThrow = <R>(what: string, call: () => R): R | undefined => {
    try {
      return call();
    } catch (error) {
      violate(`${what} threw synchronously: ${show(error)}`);
      return undefined;
    }
  };
  const track = (what: string, promise: Promise<unknown> | undefined) => {
    if (promise === undefined) return Promise.resolve();
    const id = `${what} #${label++}`;
    pending.add(id);
    const settled = Promise.resolve(promise).finally(() => pending.delete(id)).then(
      () => {},
      () => {},
    );
    tracked.push(settled);
    return settled;
  };

  // ------------------------------------------------------------ calls into the buffer
  const signalFor = (choice: SignalChoice, name: string): AbortSignal | undefined => {
    if ("shared" in choice) return shared[choice.shared].controller.signal;
    if (choice.own === "none") return undefined;
    const controller = new AbortController();
    const reason = new Error(`abort ${name}`);
    if (choice.own === "before") controller.abort(reason);
    else if (choice.own === "later") {
      s.schedule(Promise.resolve(), `abort ${name}`).then(() => controller.abort(reason));
    } else {
      s.schedule(Promise.resolve(), `fake abort event ${name}`).then(() =>
        controller.signal.dispatchEvent(new Event("abort"))
      );
    }
    return controller.signal;
  };
  const checkRefusal = (what: string, error: unknown, item: Item, signal?: AbortSignal) => {
    if (error instanceof BufferClosedError) {
      fuzzCoverage.refusedByClose++;
      if (!closeCalled) violate(`${what} rejected with BufferClosedError before close()`);
      if (error.item !== item) violate(`${what}'s BufferClosedError carries another item`);
    } else if (signal?.aborted && error === signal.reason) {
      fuzzCoverage.refusedByAbort++;
    } else {
      violate(`${what} of item ${item.id} rejected with ${show(error)}`);
    }
  };

  const callAdd = (signal: AbortSignal | undefined) => {
    const item = newItem();
    const what = `add(${item.id})`;
    const promise = noThrow(what, () => buffer.add(item, signal && { signal }));
    if (promise === undefined) return Promise.resolve(); // counted: the throw is the violation
    return track(
      what,
      promise.then(() => accept(item), (error) => {
        checkRefusal(what, error, item, signal);
        refuse(item);
      }),
    );
  };
  const callBadOptions = () => {
    const item = newItem();
    const options = {
      get signal(): AbortSignal {
        throw new Error("options.signal getter failed");
      },
    };
    const promise = noThrow(
      `add(${item.id}, a throwing options.signal)`,
      () => buffer.add(item, options),
    );
    if (promise === undefined) return Promise.resolve();
    return track(
      "add with bad options",
      promise.then(() => {
        violate(`add(${item.id}) with a throwing options.signal getter resolved`);
        accept(item);
      }, () => refuse(item)),
    );
  };
  const callTryAdd = () => {
    const item = newItem();
    const closedBefore = closeCalled;
    try {
      if (buffer.tryAdd(item)) accept(item);
      else {
        fuzzCoverage.tryAddFalse++;
        refuse(item);
      }
    } catch (error) {
      if (!(closedBefore && error instanceof BufferClosedError)) {
        violate(`tryAdd(${item.id}) threw ${show(error)}`);
      }
      refuse(item);
    }
  };
  const callAddAll = (op: Extract<FuzzOp, { kind: "addAll" }>) => {
    const batch = Array.from({ length: op.count }, newItem);
    const at = Math.min(op.at, op.count - 1);
    const iteratorError = new Error("the iterable failed on purpose");
    let iterable: Iterable<Item>;
    if (op.source === "array") iterable = batch;
    else if (op.source === "generator" || op.source === "throws") {
      iterable = (function* () {
        for (const [i, item] of batch.entries()) {
          if (op.source === "throws" && i === at) throw iteratorError;
          yield item;
        }
      })();
    } else {
      let i = 0;
      iterable = {
        [Symbol.iterator]: () => ({
          next: () => {
            if (i === at) {
              i = op.count;
              return 42 as unknown as IteratorResult<Item>;
            }
            return i < op.count
              ? { done: false, value: batch[i++] }
              : { done: true, value: undefined };
          },
        }),
      };
    }
    const signal = signalFor(op.signal, `addAll from ${batch[0].id}`);
    const what = `addAll(${batch[0].id}..${batch.at(-1)!.id}, ${op.source})`;
    const promise = noThrow(what, () => buffer.addAll(iterable, signal && { signal }));
    if (promise === undefined) return Promise.resolve();
    return track(
      what,
      promise.then(() => {
        if (op.source === "throws" || op.source === "primitive") {
          violate(`${what} resolved although its iterator failed at ${at}`);
        }
        batch.forEach(accept);
      }, (error) => {
        if (!(error instanceof AddAllError)) {
          violate(`${what} rejected with ${show(error)}, not an AddAllError`);
          return batch.forEach(refuse);
        }
        const n = error.accepted;
        const cause = error.cause;
        if (cause === iteratorError || (op.source === "primitive" && cause instanceof TypeError)) {
          if (n !== at) violate(`${what}: accepted ${n}, the iterator failed at ${at}`);
        } else if (cause instanceof BufferClosedError) {
          if (!closeCalled) violate(`${what}: BufferClosedError before close()`);
          if (cause.item !== batch[n]) violate(`${what}: BufferClosedError carries another item`);
        } else if (!(signal?.aborted && cause === signal.reason)) {
          violate(`${what} stopped with cause ${show(cause)}`);
        }
        batch.slice(0, n).forEach(accept);
        batch.slice(n).forEach(refuse);
      }),
    );
  };
  const callFlush = (where: string) => {
    manualFlushCalls++;
    const before = [...accepted];
    const insideFlush = flushDepth > 0;
    const runStartedAtCall = runStartedBy !== undefined;
    const promise = noThrow(`flush() ${where}`, () => buffer.flush());
    return track(
      `flush() ${where}`,
      promise?.then(() => {
        fuzzCoverage.flushCallsChecked++;
        if (insideFlush) return; // documented: resolves at once from inside flush
        const early = before.filter((id) => !settledIds.has(id));
        if (early.length > 0) {
          violate(`flush() called ${where} resolved before items ${early.join(", ")} settled`);
        }
      }, (error) => {
        if (runStartedAtCall || !/call run\(\) first/.test(show(error))) {
          violate(`flush() called ${where} rejected with ${show(error)}`);
        }
      }),
    );
  };
  const callClose = (where: string) => {
    closeCalled = true;
    noThrow(`close() ${where}`, () => buffer.close());
  };
  const callDispose = (where: string) => {
    closeCalled = true;
    runStartedBy ??= "dispose";
    const promise = noThrow(`dispose ${where}`, () => buffer[Symbol.asyncDispose]());
    return track(
      `dispose ${where}`,
      promise?.catch((error) => violate(`dispose ${where} rejected with ${show(error)}`)),
    );
  };

  const reenter = (reentry: Reentry | undefined, where: string) => {
    if (reentry === undefined || hookDepth > MAX_DEPTH || reentries >= MAX_REENTRIES) return;
    reentries++;
    fuzzCoverage.reentries++;
    const at = `from ${where}`;
    switch (reentry) {
      case "add": {
        const choice = scenario.reentrantAddSignal;
        return void callAdd(choice === "none" ? undefined : shared[choice].controller.signal);
      }
      case "tryAdd":
        return callTryAdd();
      case "addAll":
        return void callAddAll({
          kind: "addAll",
          count: 2,
          source: "array",
          at: 0,
          signal: { own: "none" },
        });
      case "flush":
        fuzzCoverage.reentrantFlushCalls++;
        return void callFlush(at);
      case "close":
        return callClose(at);
      case "stats":
        return checkStats(`in stats() ${at}`);
      case "dispose":
        return void callDispose(at);
    }
  };

  // ------------------------------------------------------------ hooks
  const callCounts = new Map<string, number>();
  const nextStep = <R>(name: string, script: readonly Step<R>[]): Step<R> => {
    const n = callCounts.get(name) ?? 0;
    callCounts.set(name, n + 1);
    return script[n % script.length];
  };
  /** Runs a hook body with the checks every hook entry makes. */
  const hook = <R>(name: string, body: () => R): R => {
    hookDepth++;
    try {
      checkStats(`inside ${name}`);
      checkSignals(`inside ${name}`);
      return body();
    } finally {
      hookDepth--;
    }
  };
  const hookError = (name: string, report = true) => {
    const error = new Error(`${name} failed on purpose`);
    if (report) mustReport.add(error);
    return error;
  };
  const throwingThen = (error: unknown) => ({
    get then() {
      throw error;
    },
  });

  const settleBatch = (batch: unknown[], failed: boolean, error?: unknown) => {
    if (settledBatches.has(batch)) return;
    settledBatches.add(batch);
    openFlushes--;
    for (const item of batch) {
      if (!isOurs(item)) continue;
      settledIds.add(item.id);
      outcomeOf.set(item.id, failed ? "failed" : "ok");
    }
    if (failed) {
      failedFlushes++;
      failedBatches.set(batch, error);
    } else okFlushes++;
  };

  const flushResult = (result: FlushResult, batch: Item[], context: FlushContext) => {
    const error = new Error(`flush of ${batch.length} failed on purpose`);
    const ok = () => settleBatch(batch, false);
    const fail = (reason: unknown) => {
      settleBatch(batch, true, reason);
      throw reason;
    };
    const ours = context.signal === runController.signal;
    switch (result) {
      case "undefined":
        return ok();
      case "odd":
        ok();
        return [42, "sent", null, {}, { then: 5 }][batch.length % 5] as unknown as void;
      case "throw":
        return fail(error);
      case "throwValue":
        return fail([undefined, "a string", 0][batch.length % 3]);
      case "resolve":
        return s.schedule(Promise.resolve(), `flush of ${batch[0]?.id} resolves`).then(ok);
      case "reject":
        return s.schedule(Promise.resolve(), `flush of ${batch[0]?.id} rejects`).then(() =>
          fail(error)
        );
      case "thenGetterThrows":
        return {
          get then() {
            settleBatch(batch, true, error);
            throw error;
          },
        } as unknown as void;
      case "thenThrows":
        return {
          then() {
            settleBatch(batch, true, error);
            throw error;
          },
        } as unknown as void;
      case "thenResolves":
        return { then: (resolve: () => void) => (ok(), resolve()) } as unknown as void;
      case "thenRejects":
        return {
          then: (_: unknown, reject: (e: unknown) => void) => {
            settleBatch(batch, true, error);
            reject(error);
          },
        } as unknown as void;
      case "thenSettlesTwice":
        return {
          then: (resolve: () => void, reject: (e: unknown) => void) => {
            ok();
            resolve();
            reject(error);
            resolve();
          },
        } as unknown as void;
      case "untilAbort": {
        if (!ours) {
          return s.schedule(Promise.resolve(), `flush of ${batch[0]?.id} resolves`).then(ok);
        }
        const signal = context.signal;
        return new Promise<void>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        }).catch(fail);
      }
    }
  };

  const flush = (batch: Item[], context: FlushContext): void | Promise<void> => {
    flushCalls++;
    openFlushes++;
    flushDepth++;
    try {
      return hook("flush", () => {
        if (!Array.isArray(batch) || batch.length === 0) violate("flush got an empty batch");
        if (openFlushes > maxFlushes) violate(`${openFlushes} flushes open, limit ${maxFlushes}`);
        // No item may join a batch once it is full (by shouldFlush, capacity or bytes).
        let prefixBytes = 0;
        for (let k = 1; k < batch.length; k++) {
          prefixBytes += sizes.get(batch[k - 1]?.id) ?? 0;
          const byCount = hooks.shouldFlush === undefined
            ? k >= capacity
            : fullAt.get(batch)?.has(k) === true;
          const byBytes = budgeted && prefixBytes >= scenario.maxBatchBytes!;
          if (byCount || byBytes) {
            violate(
              `a batch was full at ${k} items (by ${byBytes ? "bytes" : "count"}), ` +
                `yet went out with ${batch.length}`,
            );
            break;
          }
        }
        if (budgeted) {
          const bytes = batch.reduce((sum, item) => sum + (sizes.get(item?.id) ?? 0), 0);
          if (bytes > scenario.maxBatchBytes!) {
            violate(`a batch of ${bytes} bytes went out, limit ${scenario.maxBatchBytes}`);
          }
        }
        if (context.reason === "close" && !closeCalled) violate("a close flush before close()");
        if (context.reason === "manual" && manualFlushCalls === 0) {
          violate("a manual flush unasked");
        }
        for (const item of batch) handOut(item, "flush");
        const step = nextStep("flush", hooks.flush);
        reenter(step.reentry, "flush");
        return flushResult(step.result, batch, context);
      });
    } finally {
      flushDepth--;
    }
  };

  const predicate =
    (name: "willOverflow" | "canAdd" | "shouldFlush", script: readonly Step<PredicateResult>[]) =>
    (batch: readonly Item[]): boolean =>
      hook(name, () => {
        const step = nextStep(name, script);
        reenter(step.reentry, name);
        const length = batch.length;
        const full = (answer: boolean) => {
          if (name !== "shouldFlush" || !answer) return;
          const lengths = fullAt.get(batch) ?? new Set<number>();
          fullAt.set(batch, lengths.add(length));
        };
        let answer: unknown;
        switch (step.result) {
          case "true":
            answer = true;
            full(true);
            break;
          case "false":
            answer = false;
            break;
          case "truthy":
            answer = ["yes", 1, {}, []][length % 4];
            full(true);
            break;
          case "falsy":
            answer = [0, "", null, undefined, NaN][length % 5];
            break;
          case "throw":
            full(length >= capacity);
            throw hookError(name);
          case "promise":
            answer = Promise.resolve(length % 2 === 0);
            break;
          case "rejectedPromise":
            answer = Promise.reject(new Error(`async ${name} failed on purpose`));
            break;
          case "neverSettles":
            answer = new Promise(() => {});
            break;
          case "thenGetterThrows":
            answer = throwingThen(new Error(`${name}'s then getter failed on purpose`));
            break;
        }
        return answer as boolean;
      });

  const sizeOf = (script: readonly Step<SizeResult>[]) => (item: Item): number =>
    hook("sizeOf", () => {
      const step = nextStep("sizeOf", script);
      reenter(step.reentry, "sizeOf");
      const result = step.result;
      if (typeof result === "number") {
        if (isOurs(item)) sizes.set(item.id, result);
        return result;
      }
      switch (result) {
        case "negative":
          return -1;
        case "nan":
          return NaN;
        case "infinity":
          return Infinity;
        case "string":
          return "3" as unknown as number;
        case "bigint":
          return 1n as unknown as number;
        case "promise":
          return Promise.resolve(1) as unknown as number;
        case "throw":
          throw hookError("sizeOf");
      }
    });

  const voidHook = <A extends unknown[]>(
    name: "onReject" | "onFlushError" | "onError" | "waitUntil",
    script: readonly Step<VoidResult>[],
    before: (...args: A) => void,
  ) =>
  (...args: A): void =>
    hook(name, () => {
      before(...args);
      const step = nextStep(name, script);
      reenter(step.reentry, name);
      // onError's own failures go to console.error; only its throw and rejection are
      // documented (the rest of its results are not checked for a report).
      const counted = name !== "onError";
      switch (step.result) {
        case "undefined":
          return;
        case "odd":
          return 42 as unknown as void;
        case "throw":
          throw hookError(name);
        case "resolve":
          return Promise.resolve() as unknown as void;
        case "reject":
          return Promise.reject(hookError(name)) as unknown as void;
        case "neverSettles":
          // The buffer waits for an async onFlushError (a dead-letter write must
          // not be cut off), so one that never settles would hang the run, as a
          // flush would: like the fuzz's flushes, it gives up when the run signal aborts.
          if (name === "onFlushError") {
            return new Promise<void>((resolve) => {
              if (runController.signal.aborted) resolve();
              else runController.signal.addEventListener("abort", () => resolve());
            }) as unknown as void;
          }
          return new Promise(() => {}) as unknown as void;
        case "thenGetterThrows":
          return throwingThen(hookError(name, counted)) as unknown as void;
        case "thenThrows": {
          const error = hookError(name, counted);
          return {
            then() {
              throw error;
            },
          } as unknown as void;
        }
      }
    });

  const config: BatchBufferConfig<Item> = {
    flush,
    capacity,
    maxConcurrentFlushes: maxFlushes,
    flushInterval: scenario.flushInterval,
  };
  if (scenario.chanSize !== undefined) config.chanSize = scenario.chanSize;
  if (scenario.maxBatchBytes !== undefined) config.maxBatchBytes = scenario.maxBatchBytes;
  if (scenario.maxItemBytes !== undefined) config.maxItemBytes = scenario.maxItemBytes;
  if (hooks.sizeOf) config.sizeOf = sizeOf(hooks.sizeOf);
  if (hooks.willOverflow) config.willOverflow = predicate("willOverflow", hooks.willOverflow);
  if (hooks.canAdd) config.canAdd = predicate("canAdd", hooks.canAdd);
  if (hooks.shouldFlush) config.shouldFlush = predicate("shouldFlush", hooks.shouldFlush);
  const onRejectScript = hooks.onReject ?? [{ result: "undefined" as const, reentry: undefined }];
  config.onReject = voidHook("onReject", onRejectScript, (item: Item) => {
    if (handOut(item, "onReject")) {
      settledIds.add(item.id);
      outcomeOf.set(item.id, "rejected");
    }
  });
  if (hooks.onFlushError) {
    config.onFlushError = voidHook(
      "onFlushError",
      hooks.onFlushError,
      (error: unknown, batch: Item[]) => {
        if (!failedBatches.has(batch)) violate("onFlushError got a batch whose flush did not fail");
        else if (failedBatches.get(batch) !== error) {
          violate(
            `onFlushError got ${show(error)}, the flush failed with ${
              show(failedBatches.get(batch))
            }`,
          );
        }
        if (reportedBatches.has(batch)) violate("onFlushError called twice for one batch");
        reportedBatches.add(batch);
      },
    );
  }
  if (hooks.onError) config.onError = voidHook("onError", hooks.onError, receive);
  if (hooks.waitUntil) {
    config.waitUntil = voidHook("waitUntil", hooks.waitUntil, (promise: Promise<unknown>) => {
      const state = { settled: false, fulfilled: false };
      waitUntilStates.push(state);
      if (typeof promise?.then !== "function") return violate("waitUntil got no promise");
      promise.then(
        () => Object.assign(state, { settled: true, fulfilled: true }),
        () => Object.assign(state, { settled: true }),
      );
    });
  }

  try {
    buffer = new BatchBuffer<Item>(config);
  } catch (error) {
    violate(`the constructor threw: ${show(error)}`);
    return {};
  }

  // ------------------------------------------------------------ the workload
  const runOp = async (op: FuzzOp) => {
    switch (op.kind) {
      case "add":
        return await callAdd(signalFor(op.signal, `add #${nextId}`));
      case "badOptions":
        return await callBadOptions();
      case "tryAdd":
        return callTryAdd();
      case "addAll":
        return await callAddAll(op);
      case "flush":
        return await callFlush("by a producer");
    }
  };
  const startRun = () => {
    if (runStartedBy !== undefined) return;
    runStartedBy = "test";
    track("run()", noThrow("run()", () => buffer.run(runController.signal)));
  };
  const end = () => {
    if (scenario.ending === "close") callClose("at the end");
    else void callDispose("at the end");
  };

  const runScheduled = scenario.runStart === "now"
    ? Promise.resolve(startRun())
    : s.schedule(Promise.resolve(), "run()").then(startRun);
  for (const [i, mode] of scenario.sharedAborts.entries()) {
    if (mode === "none") continue;
    s.schedule(Promise.resolve(), `${mode} abort of shared signal ${i}`).then(() => {
      const watched = shared[i];
      if (mode === "later") return watched.controller.abort(new Error(`shared ${i} aborted`));
      watched.controller.signal.dispatchEvent(new Event("abort"));
      // Listeners added with `once` are gone after any abort event, fake or not.
      for (const [listener, once] of watched.live) if (once) watched.live.delete(listener);
    });
  }
  for (const ms of scenario.ticks) {
    s.schedule(Promise.resolve(), `tick ${ms} ms`).then(() => clock.tick(ms));
  }
  if (scenario.abortRunSignal) {
    s.schedule(Promise.resolve(), "abort the run signal").then(() =>
      runController.abort(runAbortReason)
    );
  }
  const closer = scheduleClose(s, scenario.closeAfterSteps, end);
  const producers = scheduleProducers(s, scenario.producers, async (op) => {
    await runOp(op);
    checkStats(`after ${op.kind}`);
    checkSignals(`after ${op.kind}`);
  });

  let finished = false;
  let failure: unknown;
  const done = (async () => {
    await Promise.all(producers);
    await closer;
    end();
    await runScheduled;
    // Every tracked call (run() and dispose among them) settles, also those made meanwhile.
    for (let waited = 0; waited < tracked.length;) {
      const batch = tracked.slice(waited);
      waited = tracked.length;
      await Promise.all(batch);
    }
  })().then(() => (finished = true), (error) => {
    finished = true;
    failure = error;
  });

  // Drive: release scheduled tasks; when none is left, let time pass, then abort
  // the run signal; anything still pending after that is a deadlock.
  while (!finished) {
    if (s.count() > 0) {
      await s.waitOne();
      checkStats("after a scheduled step");
      checkSignals("after a scheduled step");
      continue;
    }
    for (let i = 0; i < 10 && !finished && s.count() === 0; i++) await Promise.resolve();
    if (finished || s.count() > 0) continue;
    // Quiet for now: a real macrotask lets every pending job (stream steps among them)
    // run, which is cheaper than many more microtask turns when a test runner hooks
    // promises, as node:test does.
    await macrotask();
    if (finished || s.count() > 0) continue;
    if (clock.countTimers() > 0) clock.next();
    else if (!runController.signal.aborted) runController.abort(runAbortReason);
    else {
      violate(
        `deadlock: nothing scheduled, no timer, still waiting for ${[...pending].join(", ")}; ` +
          `stats ${JSON.stringify(buffer.stats())}`,
      );
      break;
    }
  }
  if (!finished) return { failure };
  await done;
  await noThrow("a second run()", () => buffer.run())?.then(
    () => violate("a second run() call resolved"),
    (error) => {
      if (!/already called/.test(show(error))) violate(`a second run() rejected with ${error}`);
    },
  );
  // Let the hooks' rejected promises reach onError before counting reports.
  for (let i = 0; i < 20; i++) await Promise.resolve();

  // ------------------------------------------------------------ reconcile
  const st = buffer.stats();
  fuzzCoverage.runs++;
  fuzzCoverage.accepted += accepted.size;
  fuzzCoverage.refused += refused.size;
  fuzzCoverage.okFlushes += okFlushes;
  fuzzCoverage.failedFlushes += failedFlushes;
  for (const item of items.values()) {
    const id = item.id;
    if (!accepted.has(id) && !refused.has(id)) {
      violate(`item ${id} was neither accepted nor refused`);
    }
    if (accepted.has(id) && !handedOut.has(id)) {
      violate(`accepted item ${id} reached no flush and no onReject`);
    }
    if (handedOut.has(id) && !settledIds.has(id)) violate(`item ${id}'s flush never settled`);
  }
  const rejectedSeen = [...outcomeOf.values()].filter((o) => o === "rejected").length;
  fuzzCoverage.rejected += st.rejected;
  if (st.rejected !== rejectedSeen) {
    violate(`stats.rejected ${st.rejected}, onReject saw ${rejectedSeen}`);
  }
  if (handedOut.size !== accepted.size) {
    violate(`${handedOut.size} items handed out, ${accepted.size} accepted`);
  }
  if (st.added !== accepted.size) violate(`stats.added ${st.added}, ${accepted.size} accepted`);
  const okItems = [...outcomeOf.values()].filter((o) => o === "ok").length;
  const failedItems = [...outcomeOf.values()].filter((o) => o === "failed").length;
  if (st.flushedItems !== okItems) violate(`stats.flushedItems ${st.flushedItems} != ${okItems}`);
  if (st.failedItems !== failedItems) {
    violate(`stats.failedItems ${st.failedItems} != ${failedItems}`);
  }
  if (st.flushes !== okFlushes) violate(`stats.flushes ${st.flushes} != ${okFlushes}`);
  if (st.failedFlushes !== failedFlushes) {
    violate(`stats.failedFlushes ${st.failedFlushes} != ${failedFlushes}`);
  }
  if (okFlushes + failedFlushes !== flushCalls) {
    violate(`${flushCalls} flushes called, ${okFlushes + failedFlushes} settled`);
  }
  const left = [st.inFlightItems, st.itemsInChannel, st.itemsInBatch, st.flushesInFlight];
  if (left.some((n) => n !== 0)) violate(`something is left after the run: ${JSON.stringify(st)}`);
  if (hooks.onFlushError !== undefined) {
    if (reportedBatches.size !== failedFlushes) {
      violate(`${failedFlushes} flushes failed, onFlushError saw ${reportedBatches.size}`);
    }
    if (wrappedReports !== 0) violate("a failed flush was reported although onFlushError is set");
  } else if (wrappedReports !== failedFlushes) {
    violate(`${failedFlushes} flushes failed, ${wrappedReports} were reported`);
  }
  for (const error of mustReport) {
    const n = reportCount.get(error) ?? 0;
    if (n !== 1) violate(`"${show(error)}" was reported ${n} times, not once`);
    else fuzzCoverage.hookErrorsReported++;
  }
  if (hooks.waitUntil !== undefined) {
    // One promise per flush, and at most one keep-alive per batch that opened.
    if (waitUntilStates.length < flushCalls || waitUntilStates.length > 2 * flushCalls) {
      violate(`${flushCalls} flushes, waitUntil got ${waitUntilStates.length} promises`);
    }
    const unfulfilled = waitUntilStates.filter((w) => !w.fulfilled).length;
    if (unfulfilled > 0) violate(`${unfulfilled} waitUntil promises did not fulfil`);
  }
  if (clock.countTimers() !== 0) violate("a timer is left after run() resolved");
  return { failure };
}

/**
 * Checks the fuzz property with `numRuns` scenarios, drawn evenly from the
 * given shapes; throws fast-check's report on failure.
 */
export async function checkFuzz(
  numRuns: number,
  shapes: readonly FuzzShape[] = ["wide", "retry"],
  without: ReadonlySet<Trigger> = new Set(),
  seed?: number,
): Promise<void> {
  const unhandled = watchUnhandled();
  const clock = installClock();
  // The runs create and throw thousands of errors, whose stack traces would cost
  // more than the rest of a run; the reports name what failed without them.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.oneof(...shapes.map((shape) => fuzzArb(without, shape))),
        (s, scenario) => runFuzz(s, scenario, { unhandled, clock }),
      ),
      seed === undefined ? { numRuns } : { numRuns, seed },
    );
  } catch (error) {
    // Some runners print only the message: put the violation (fast-check's cause) in it.
    const cause = (error as Error).cause;
    if (cause instanceof Error) (error as Error).message += `\n${cause.message}`;
    throw error;
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    clock.uninstall();
    unhandled.stop();
  }
}

/** The name of the fuzz property, in tests/fuzz.test.ts and tests/soak.ts. */
export const FUZZ_NAME =
  "hooks that throw, answer nonsense or call back into the buffer lose, invent and leak nothing";
