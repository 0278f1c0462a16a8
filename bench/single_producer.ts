// Scenario 1: one producer awaiting add() against the bare await-and-push floor (issue 14.3
// raised its target from 0.7× to 0.8×).
import {
  bareProducer,
  CAPACITY,
  type Case,
  compare,
  ITEMS,
  noop,
  openBuffer,
  RESOLVED,
  type Row,
  type Settings,
  throughputRow,
} from "./runner.ts";

const GROUP = "1 single producer";

/** The floor: what any awaited add costs at least (an await, a push, a flush per batch). */
export const bareLoop: Case = {
  name: "bare loop: await + push + flush every 100",
  items: ITEMS,
  setup: () => ({ run: bareProducer(ITEMS) }),
};

/** `await buffer.add(i)` in a loop, capacity 100, no-op flush. */
export const awaitAdd: Case = awaitAddWith("await add(i), no-op flush", noop);

/** An async flush settles a microtask later, so items go through the channel meanwhile. */
const awaitAddAsyncFlush: Case = awaitAddWith(
  "await add(i), async no-op flush",
  () => RESOLVED,
);

function awaitAddWith(name: string, flush: () => void | Promise<void>): Case {
  return {
    name,
    items: ITEMS,
    setup: () => {
      const { buffer, close } = openBuffer<number>({ capacity: CAPACITY, flush });
      return {
        async run() {
          for (let i = 0; i < ITEMS; i++) await buffer.add(i);
        },
        close,
      };
    },
  };
}

export async function singleProducer(settings: Settings): Promise<Row[]> {
  const ns = await compare([bareLoop, awaitAdd, awaitAddAsyncFlush], settings);
  const floor = ns.get(bareLoop.name)!;
  const quoted = "quoted from issue 5, not measured";
  return [
    throughputRow(GROUP, bareLoop.name, floor),
    {
      ...throughputRow(GROUP, awaitAdd.name, ns.get(awaitAdd.name)!, {
        vs: "bare loop",
        vsNs: floor,
        min: 0.8,
      }),
      goal: "14.3",
    },
    throughputRow(
      GROUP,
      awaitAddAsyncFlush.name,
      ns.get(awaitAddAsyncFlush.name)!,
      { vs: "bare loop", vsNs: floor },
      "info: the flush settles before the next add, so items still take the direct path",
    ),
    throughputRow(GROUP, "Go original, single producer", 90, undefined, quoted),
    throughputRow(GROUP, "Go original, parallel (per op)", 78, undefined, quoted),
  ];
}
