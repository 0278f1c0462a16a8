// Scenario 6: memory stays bounded when the flush stalls, and flat when it keeps up.
import { bytesPerWaiter } from "./many_producers.ts";
import {
  CAPACITY,
  noop,
  openBuffer,
  RESOLVED,
  type Row,
  type Settings,
  settledHeap,
  throughputRow,
} from "./runner.ts";

const GROUP = "6 memory";
const CHAN_SIZE = 2 * CAPACITY;
const MiB = 1024 * 1024;

interface Item {
  id: number;
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
