// The shared runner: timing cases against each other in one run, heap sampling, result rows.
import process from "node:process";
import v8 from "node:v8";
import vm from "node:vm";
import { measure } from "mitata";
import { BatchBuffer, type BatchBufferConfig } from "../mod.ts";

/** Items per case where a scenario does not choose its own count. */
export const ITEMS = 10_000;
/** Batch capacity where a scenario does not measure capacity itself. */
export const CAPACITY = 100;
/** An already settled promise: an async no-op that allocates nothing per call. */
export const RESOLVED: Promise<void> = Promise.resolve();

/** How long to measure; `quick` only keeps the harness working. */
export interface Settings {
  readonly quick: boolean;
  /** A regular expression: only the waiting-path regimes whose label matches it run. */
  readonly filter?: string;
  /** Rounds of alternating cases; each case's figure is its median over the rounds. */
  readonly rounds: number;
  /** Options for mitata's `measure` (one sample is one `run()` of a case). */
  readonly mitata: {
    readonly min_cpu_time: number;
    readonly min_samples: number;
    readonly max_samples?: number;
  };
}

export function settingsFor(quick: boolean, filter?: string): Settings {
  return quick
    ? { quick, filter, rounds: 1, mitata: { min_cpu_time: 10e6, min_samples: 2, max_samples: 20 } }
    : { quick, filter, rounds: 5, mitata: { min_cpu_time: 200e6, min_samples: 8 } };
}

/** One line of the results table. Ratios compare throughput: above 1 is faster than `vs`. */
export interface Row {
  readonly group: string;
  readonly scenario: string;
  readonly nsPerItem?: number;
  readonly itemsPerSecond?: number;
  readonly ratio?: number;
  /** What the ratio compares with, measured in the same run. */
  readonly vs?: string;
  readonly target?: string;
  readonly met?: boolean;
  readonly note?: string;
  /** The issue 14 goal this row judges (e.g. "14.3"), for the summary of goals. */
  readonly goal?: string;
  /** A waiting-path regime (issue 14.2): printed in its own table. */
  readonly waiting?: WaitingFigures;
}

/** One regime of the waiting path: the library beside the floor, medians over the rounds. */
export interface WaitingFigures {
  readonly items: number;
  /** Flushes the library made (the floor makes the same number, batches of `capacity`). */
  readonly flushes: number;
  /** Process CPU of the empty-flush schedule, per item: what was subtracted from both. */
  readonly timerCpuNs: number;
  readonly libraryCpuNs: number;
  readonly floorCpuNs: number;
  /** libraryCpuNs / floorCpuNs; target ≤ 1.3. */
  readonly cpuRatio: number;
  /** The lowest and highest per-round ratio. */
  readonly cpuSpread: readonly [number, number];
  readonly libraryItemsPerSecond: number;
  readonly floorItemsPerSecond: number;
  /** Library throughput / floor throughput; target ≥ 0.9. */
  readonly wallRatio: number;
  readonly wallSpread: readonly [number, number];
}

/** A row for a feature this build lacks (detected by behaviour, never by version). */
export function notInThisBuild(group: string, scenario: string, goal?: string): Row {
  return { group, scenario, goal, note: "n/a: not in this build" };
}

/** Something to time: each `run()` handles `items` items. */
export interface Subject {
  run(): unknown;
  close?(): unknown;
}

export interface Case {
  readonly name: string;
  readonly items: number;
  /** A fresh subject per round, so no case inherits another's garbage or state. */
  setup(): Subject | Promise<Subject>;
}

/**
 * Times every case, alternating them for `settings.rounds` rounds (rotating
 * the order) so that drift on a shared machine hits all alike. Returns each
 * case's median over the rounds of mitata's p50, in ns per item.
 */
export async function compare(
  cases: readonly Case[],
  settings: Settings,
): Promise<Map<string, number>> {
  const perRound = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let round = 0; round < settings.rounds; round++) {
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(k + round) % cases.length];
      const subject = await c.setup();
      const stats = await measure(() => subject.run(), { ...settings.mitata });
      await subject.close?.();
      perRound.get(c.name)!.push(stats.p50 / c.items);
    }
  }
  return new Map([...perRound].map(([name, figures]) => [name, median(figures)]));
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A throughput row; with `vs`, its ratio is `vsNs / ns` and `min`/`max` bound it. */
export function throughputRow(
  group: string,
  scenario: string,
  ns: number,
  compareWith?: { vs: string; vsNs: number; min?: number; max?: number },
  note?: string,
): Row {
  const row: Row = { group, scenario, nsPerItem: ns, itemsPerSecond: 1e9 / ns, note };
  if (compareWith === undefined) return row;
  const { vs, vsNs, min, max } = compareWith;
  return { ...row, vs, ...judge(vsNs / ns, min, max) };
}

/** A ratio with its target: `ratio >= min` and/or `ratio <= max`. */
export function judge(
  ratio: number,
  min?: number,
  max?: number,
): { ratio: number; target?: string; met?: boolean } {
  if (min === undefined && max === undefined) return { ratio };
  const target = min !== undefined ? `≥ ${min.toFixed(2)}×` : `≤ ${max!.toFixed(2)}×`;
  const met = (min === undefined || ratio >= min) && (max === undefined || ratio <= max);
  return { ratio, target, met };
}

/** A running buffer and how to shut it down. */
export function openBuffer<T>(
  config: BatchBufferConfig<T>,
): { buffer: BatchBuffer<T>; close(): Promise<void> } {
  const buffer = new BatchBuffer<T>(config);
  const running = buffer.run();
  return {
    buffer,
    close: async () => {
      buffer.close();
      await running;
    },
  };
}

/** A flush that does nothing, shared by every case so no case gets a cheaper call. */
export function noop(): void {}

/**
 * The floor of an awaited add, with no buffer at all: each call of the
 * returned producer does `await` + push `eachAdds` times and a no-op flush
 * every CAPACITY items. Every call shares one batch.
 */
export function bareProducer(eachAdds: number): () => Promise<void> {
  let batch: number[] = [];
  return async () => {
    for (let i = 0; i < eachAdds; i++) {
      await RESOLVED;
      batch.push(i);
      if (batch.length === CAPACITY) {
        noop();
        batch = [];
      }
    }
  };
}

/**
 * The engine's full garbage collection. `--v8-flags=--expose-gc` provides
 * `gc`; without it, the flag is set at run time and `gc` read from a fresh
 * context, which works in Deno and Node.
 */
export const collectGarbage: (() => void) | undefined = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === "function") return exposed;
  try {
    v8.setFlagsFromString("--expose-gc");
    return vm.runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
})();

/**
 * A scavenge: the young generation's garbage is collected, and nothing else.
 * Unlike a full collection, it leaves compiled code alone (see scenario 8).
 * Only V8's own `gc` (`--v8-flags=--expose-gc`, as `npm run bench` passes)
 * reads options: the one read from a fresh context always does a full,
 * memory-reducing collection, so without the flag this does nothing.
 */
export const collectYoungGarbage: () => void = (() => {
  const exposed = (globalThis as { gc?: (options: { type: string }) => void }).gc;
  return typeof exposed === "function" ? () => exposed({ type: "minor" }) : () => {};
})();

/** Live heap bytes after a full collection (when one is available). */
export function settledHeap(): number {
  collectGarbage?.();
  collectGarbage?.();
  return Deno.memoryUsage().heapUsed;
}

/**
 * Process CPU time (every thread, so GC helpers count) in ns: `Deno.cpuUsage` where it
 * exists, else `process.cpuUsage()` (Node, Bun, and Deno through node:process).
 */
export const cpuTime: () => number = (() => {
  const deno = (globalThis as { Deno?: { cpuUsage?: () => { user: number; system: number } } })
    .Deno?.cpuUsage;
  const usage = typeof deno === "function" ? deno : () => process.cpuUsage();
  return () => {
    const { user, system } = usage();
    return (user + system) * 1000;
  };
})();

/** Live heap bytes plus ArrayBuffer memory (which lives outside the heap). */
export function settledMemory(): number {
  collectGarbage?.();
  collectGarbage?.();
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}

/** A flush that awaits a real `ms` timer, as a flush awaiting `fetch` would. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets pending promise reactions and timers run. */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
