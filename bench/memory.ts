// Scenario 6: memory stays bounded when the flush stalls, and flat when it keeps up; bytes per
// blocked producer beside the floor's, aborted waiters' items released (issue 14.4), and issue
// 12's Kinesis case with and without maxBufferedBytes.
import { BatchBuffer } from "../mod.ts";
import { Floor } from "./floor.ts";
import { bytesPerWaiter } from "./many_producers.ts";
import {
  CAPACITY,
  judge,
  median,
  nextMacrotask,
  noop,
  notInThisBuild,
  openBuffer,
  RESOLVED,
  type Row,
  type Settings,
  settledHeap,
  settledMemory,
  throughputRow,
} from "./runner.ts";

const GROUP = "6 memory";
const CHAN_SIZE = 2 * CAPACITY;
const MiB = 1024 * 1024;

interface Item {
  id: number;
}

/** A buffer whose flushes hang until `release()`, behind one interface for both designs. */
interface Stalled<T> {
  tryAdd(item: T): boolean;
  add(item: T, signal?: AbortSignal): Promise<void>;
  /** Lets the flushes finish. */
  release(): void;
  /** Closes and waits for the drain. */
  close(): Promise<void>;
}

function stall(): { flush: () => Promise<void> | undefined; release: () => void } {
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => (release = resolve));
  let stalling = true;
  return {
    flush: () => stalling ? stalled : undefined,
    release: () => {
      stalling = false;
      release();
    },
  };
}

function stalledLibrary<T>(): Stalled<T> {
  const { flush, release } = stall();
  const { buffer, close } = openBuffer<T>({ capacity: CAPACITY, chanSize: CHAN_SIZE, flush });
  return {
    tryAdd: (item) => buffer.tryAdd(item),
    add: (item, signal) => buffer.add(item, signal === undefined ? undefined : { signal }),
    release,
    close,
  };
}

function stalledFloor<T>(): Stalled<T> {
  const { flush, release } = stall();
  const floor = new Floor<T>({
    capacity: CAPACITY,
    chanSize: CHAN_SIZE,
    maxConcurrentFlushes: 1,
    flushInterval: 5_000,
    flush,
  });
  return {
    tryAdd: (item) => floor.tryAdd(item),
    add: (item, signal) => floor.add(item, signal),
    release,
    close: () => floor.close(),
  };
}

/** Fills the stalled buffer until tryAdd refuses; returns how many it took. */
function fill<T>(target: Stalled<T>, item: () => T): number {
  let held = 0;
  while (target.tryAdd(item())) held++;
  return held;
}

/**
 * Heap bytes per blocked producer (issue 14.4): the flush hangs, the buffer is
 * full, then `waiters` adds wait. Items exist beforehand (the producers own
 * them either way), so this is the design's own cost per waiting add.
 */
async function bytesPerBlocked(make: () => Stalled<Item>, waiters: number): Promise<number> {
  const target = make();
  fill(target, () => ({ id: -1 }));
  const items = Array.from({ length: waiters }, (_, id) => ({ id }));
  const pending = new Array<Promise<void>>(waiters).fill(RESOLVED);
  const before = settledHeap();
  for (let i = 0; i < waiters; i++) pending[i] = target.add(items[i]);
  const after = settledHeap();
  target.release();
  await Promise.all(pending);
  await target.close();
  return (after - before) / waiters;
}

/**
 * Memory held by `waiters` blocked adds of 10 KiB items, and what is left
 * once their signal aborts while the line is still stuck: an aborted waiter
 * must let go of its item at once, not when the line reaches it.
 */
async function abortedRelease(make: () => Stalled<Uint8Array>, waiters: number) {
  const target = make();
  fill(target, () => new Uint8Array(0));
  const controller = new AbortController();
  const before = settledMemory();
  const pending = new Array<Promise<void>>(waiters).fill(RESOLVED);
  // The items are made inside the call, so only the buffer holds them.
  for (let i = 0; i < waiters; i++) {
    pending[i] = target.add(new Uint8Array(10 * 1024), controller.signal).catch(() => {});
  }
  const held = settledMemory() - before;
  controller.abort();
  await Promise.all(pending);
  const left = settledMemory() - before;
  target.release();
  await target.close();
  return { held, left };
}

/** Resolves true if `promise` settles within a few microtask turns and one macrotask. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  for (let turn = 0; turn < 8 && !settled; turn++) await RESOLVED;
  if (!settled) await nextMacrotask();
  return settled;
}

/**
 * Issue 12's case: Kinesis limits (capacity 500, 5 MiB batches, 4 flushes) and
 * 100 KiB records, every flush hanging. One producer adds fresh records until
 * add() waits; returns the memory the buffer then holds (the waiting record
 * excluded) and how many records it accepted.
 */
async function kinesisStalled(maxBufferedBytes?: number) {
  const record = 100 * 1024;
  const { flush, release } = stall();
  const { buffer, close } = openBuffer<Uint8Array>(
    {
      capacity: 500,
      maxBatchBytes: 5 * MiB,
      maxConcurrentFlushes: 4,
      sizeOf: (item) => item.byteLength,
      ...(maxBufferedBytes === undefined ? {} : { maxBufferedBytes }),
      flush,
    } as Parameters<typeof openBuffer<Uint8Array>>[0],
  );
  const before = settledMemory();
  let accepted = 0;
  let waiting: Promise<void> = RESOLVED;
  for (;;) {
    waiting = buffer.add(new Uint8Array(record));
    if (!(await settlesSoon(waiting))) break;
    accepted++;
  }
  const held = settledMemory() - before - record;
  release();
  await waiting;
  await close();
  return { held, accepted };
}

/** Heap bytes of one small item held in an array: the allowance per held item. */
function bytesPerItem(): number {
  const count = 100_000;
  const before = settledHeap();
  const items = Array.from({ length: count }, (_, id) => ({ id }));
  const after = settledHeap();
  if (items.length !== count) throw new Error("unreachable");
  return (after - before) / count;
}

/**
 * Heap growth from an idle running buffer to: a stalled flush holding one
 * batch, a full channel and `waiters` adds waiting. Items exist beforehand.
 */
async function stalledGrowth(waiters: number, chanSize: number) {
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => (release = resolve));
  let stalling = true;
  const { buffer, close } = openBuffer<Item>({
    capacity: CAPACITY,
    chanSize,
    flush: () => stalling ? stalled : undefined,
  });
  const held = CAPACITY + chanSize;
  const items = Array.from({ length: held + waiters }, (_, id) => ({ id }));
  const pending = new Array<Promise<void>>(waiters).fill(RESOLVED);
  const before = settledHeap();
  for (let i = 0; i < held; i++) await buffer.add(items[i]);
  for (let i = 0; i < waiters; i++) pending[i] = buffer.add(items[held + i]);
  const after = settledHeap();
  const { itemsInChannel, inFlightItems } = buffer.stats();
  if (itemsInChannel + inFlightItems !== held) throw new Error("the buffer was not full");
  stalling = false;
  release();
  await Promise.all(pending);
  await close();
  return after - before;
}

/** Heap after every tenth of `total` adds of fresh items through a no-op flush. */
async function heapWhileFlowing(total: number): Promise<{ samples: number[]; ns: number }> {
  const { buffer, close } = openBuffer<Item>({ capacity: CAPACITY, flush: noop });
  const samples = [settledHeap()];
  const step = total / 10;
  let busy = 0;
  for (let id = 0; id < total;) {
    const started = performance.now();
    for (const end = id + step; id < end; id++) await buffer.add({ id });
    busy += performance.now() - started;
    samples.push(settledHeap());
  }
  await close();
  return { samples, ns: (busy * 1e6) / total };
}

export async function memory(settings: Settings): Promise<Row[]> {
  const waiters = 10_000;
  const itemBytes = bytesPerItem();
  const waiterBytes = await bytesPerWaiter(waiters);
  const growth = await stalledGrowth(waiters, CHAN_SIZE);
  const allowance = (CHAN_SIZE + CAPACITY) * itemBytes + waiters * waiterBytes;
  const bigChannel = 10_000;
  const channelGrowth = await stalledGrowth(0, bigChannel);
  const total = settings.quick ? 200_000 : 10_000_000;
  const flowing = await heapWhileFlowing(total);
  // The first tenth warms up the engine; flat means no growth after it.
  const warm = flowing.samples.slice(1);
  const drift = warm.at(-1)! - warm[0];
  const spread = Math.max(...warm) - Math.min(...warm);
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
  return [
    ...await blockedRows(settings),
    ...await kinesisRows(),
    {
      group: GROUP,
      scenario: `flush stalled, ${waiters.toLocaleString("en")} producers blocked`,
      ratio: growth / allowance,
      vs: "allowance",
      target: "≤ 1.00×",
      met: growth <= allowance,
      note: `heap +${kb(growth)}; allowance ${kb(allowance)} = (${CHAN_SIZE} + ${CAPACITY}) × ` +
        `${itemBytes.toFixed(0)} B item + ${waiters} × ${waiterBytes.toFixed(0)} B waiter`,
    },
    {
      group: GROUP,
      scenario: `flush stalled, channel of ${bigChannel.toLocaleString("en")} full`,
      note: `info: ${(channelGrowth / (bigChannel + CAPACITY)).toFixed(0)} B per held item ` +
        `(items allocated beforehand; an item itself is ${itemBytes.toFixed(0)} B)`,
    },
    {
      ...throughputRow(GROUP, `healthy flush, ${total.toLocaleString("en")} items`, flowing.ns),
      target: "flat heap (drift ≤ 1 MiB)",
      met: Math.abs(drift) <= MiB,
      note: `heap after each tenth: ${warm.map((b) => (b / MiB).toFixed(1)).join(", ")} MiB; ` +
        `drift ${kb(drift)}, spread ${kb(spread)}`,
    },
  ];
}

async function blockedRows(settings: Settings): Promise<Row[]> {
  const rows: Row[] = [];
  const repeats = settings.quick ? 1 : 3;
  for (const waiters of settings.quick ? [2_000] : [10_000, 100_000]) {
    const library: number[] = [];
    const floor: number[] = [];
    for (let k = 0; k < repeats; k++) {
      library.push(await bytesPerBlocked(stalledLibrary, waiters));
      floor.push(await bytesPerBlocked(stalledFloor, waiters));
    }
    const [ours, theirs] = [median(library), median(floor)];
    rows.push({
      group: GROUP,
      scenario: `heap per blocked producer, ${waiters.toLocaleString("en")} blocked`,
      vs: "floor",
      ...judge(ours / theirs, undefined, 1.1),
      goal: "14.4",
      note: `library ${ours.toFixed(0)} B, floor ${theirs.toFixed(0)} B per blocked add() ` +
        `(heap / producers, median of ${repeats})`,
    });
  }
  const waiters = settings.quick ? 1_000 : 10_000;
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
  for (const [name, make] of [["library", stalledLibrary], ["floor", stalledFloor]] as const) {
    const { held, left } = await abortedRelease(make, waiters);
    const released = 1 - left / held;
    rows.push({
      group: GROUP,
      scenario: `${name}: ${waiters.toLocaleString("en")} blocked adds of 10 KiB items aborted`,
      vs: "held",
      ...(name === "library" ? { ...judge(released, 0.95), goal: "14.4" } : { ratio: released }),
      note: `released ${mib(held - left)} of ${mib(held)} while the line is still stuck ` +
        `(ratio: share released)`,
    });
  }
  return rows;
}

async function kinesisRows(): Promise<Row[]> {
  const scenario = (bound: string) =>
    `Kinesis limits, 100 KiB records, 4 flushes stalled, ${bound}`;
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
  const unbounded = await kinesisStalled();
  const rows: Row[] = [{
    group: GROUP,
    scenario: scenario("no maxBufferedBytes"),
    note: `info: holds ${mib(unbounded.held)} (${unbounded.accepted} records accepted)`,
  }];
  const bound = 16 * MiB;
  if (!supportsBufferedBytes()) {
    rows.push(notInThisBuild(GROUP, scenario("maxBufferedBytes 16 MiB"), "14.5"));
    return rows;
  }
  const bounded = await kinesisStalled(bound);
  const allowance = bound * 1.05;
  rows.push({
    group: GROUP,
    scenario: scenario("maxBufferedBytes 16 MiB"),
    ratio: bounded.held / bound,
    vs: "16 MiB",
    target: "≤ 1.05× (payload + overhead)",
    met: bounded.held <= allowance,
    goal: "14.5",
    note: `holds ${mib(bounded.held)} (${bounded.accepted} records accepted)`,
  });
  return rows;
}

/** True when this build has maxBufferedBytes (issue 12.3): stats() reports bufferedBytes. */
export function supportsBufferedBytes(): boolean {
  const buffer = new BatchBuffer<string>(
    {
      flush: noop,
      sizeOf: (item) => item.length,
      maxBufferedBytes: 1_000,
    } as ConstructorParameters<typeof BatchBuffer<string>>[0],
  );
  return "bufferedBytes" in buffer.stats();
}
