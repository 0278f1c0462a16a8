// Scenario 3: 100 and 10,000 concurrent producers, and what a waiting producer costs in memory.
import { awaitAdd } from "./single_producer.ts";
import {
  bareProducer,
  CAPACITY,
  type Case,
  compare,
  noop,
  openBuffer,
  RESOLVED,
  type Row,
  type Settings,
  settledHeap,
  throughputRow,
} from "./runner.ts";

const GROUP = "3 many producers";

function producers(count: number, eachAdds: number, flush: () => unknown): Case {
  const kind = flush === noop ? "no-op flush" : "async no-op flush";
  return {
    name: `${count.toLocaleString("en")} producers × ${eachAdds} adds, ${kind}`,
    items: count * eachAdds,
    setup: () => {
      const { buffer, close } = openBuffer<number>({
        capacity: CAPACITY,
        flush: flush as () => void,
      });
      const producer = async () => {
        for (let i = 0; i < eachAdds; i++) await buffer.add(i);
      };
      return {
        run: () => Promise.all(Array.from({ length: count }, producer)),
        close,
      };
    },
  };
}

/** The floor for many producers: the same async producers doing only `await` + push. */
function bareProducers(count: number, eachAdds: number): Case {
  return {
    name: `bare loop, ${count.toLocaleString("en")} producers × ${eachAdds}`,
    items: count * eachAdds,
    setup: () => {
      const producer = bareProducer(eachAdds);
      return { run: () => Promise.all(Array.from({ length: count }, producer)) };
    },
  };
}

/**
 * Heap bytes per add() waiting for room: the flush is stalled, the batch and
 * the channel are full, then `waiters` more adds wait. The items exist
 * beforehand (the producers own them either way), so this is the buffer's
 * own cost: the promise add() returns and its place in the line.
 */
export async function bytesPerWaiter(waiters: number): Promise<number> {
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => (release = resolve));
  let stalling = true;
  const { buffer, close } = openBuffer<{ id: number }>({
    capacity: CAPACITY,
    flush: () => stalling ? stalled : undefined,
  });
  const items = Array.from({ length: waiters }, (_, id) => ({ id }));
  for (let id = 0; id < 3 * CAPACITY; id++) await buffer.add({ id }); // a batch + the channel
  const pending = new Array<Promise<void>>(waiters).fill(RESOLVED);
  const before = settledHeap();
  for (let i = 0; i < waiters; i++) pending[i] = buffer.add(items[i]);
  const after = settledHeap();
  if (buffer.stats().itemsInChannel !== 2 * CAPACITY) throw new Error("the channel was not full");
  stalling = false;
  release();
  await Promise.all(pending);
  await close();
  return (after - before) / waiters;
}

export async function manyProducers(settings: Settings): Promise<Row[]> {
  const cases = [
    awaitAdd,
    producers(100, 100, noop),
    producers(10_000, 10, noop),
    producers(10_000, 10, () => RESOLVED),
    bareProducers(10_000, 10),
  ];
  const ns = await compare(cases, settings);
  const single = ns.get(awaitAdd.name)!;
  const vs = { vs: "1 producer", vsNs: single };
  const rows = [
    throughputRow(GROUP, awaitAdd.name, single),
    throughputRow(GROUP, cases[1].name, ns.get(cases[1].name)!, { ...vs, min: 0.5 }),
    throughputRow(GROUP, cases[2].name, ns.get(cases[2].name)!, { ...vs, min: 0.5 }),
    throughputRow(
      GROUP,
      cases[3].name,
      ns.get(cases[3].name)!,
      vs,
      "info: producers wait, so items travel through the channel's WritableStream",
    ),
    throughputRow(
      GROUP,
      cases[4].name,
      ns.get(cases[4].name)!,
      vs,
      "info: the floor of 10,000 async producers, with no buffer at all",
    ),
  ];
  const waiters = settings.quick ? 1_000 : 10_000;
  const bytes = await bytesPerWaiter(waiters);
  rows.push({
    group: GROUP,
    scenario: `heap per waiting add(), ${waiters.toLocaleString("en")} waiting`,
    note: `${bytes.toFixed(0)} B per waiting producer (flush stalled, channel full)`,
  });
  return rows;
}
