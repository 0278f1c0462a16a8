// Scenario 2: tryAdd() and addAll() against add(), in runs of 10,000 items (issue 5: at least
// 2×) and of 1,000,000 items in one buffer (issue 14.3: at least 2.5×); and addAll() with a
// synchronous flush against the physical limit, a bare loop that cuts an array into batches.
import { awaitAdd } from "./single_producer.ts";
import {
  CAPACITY,
  type Case,
  compare,
  ITEMS,
  noop,
  openBuffer,
  type Row,
  type Settings,
  throughputRow,
} from "./runner.ts";

const GROUP = "2 tryAdd and addAll";

export const tryAdd: Case = tryAddRun(ITEMS);

function tryAddRun(items: number): Case {
  return {
    name: `tryAdd(i) × ${items.toLocaleString("en")}, no-op flush`,
    items,
    setup: () => {
      const { buffer, close } = openBuffer<number>({ capacity: CAPACITY, flush: noop });
      return {
        run() {
          for (let i = 0; i < items; i++) {
            if (!buffer.tryAdd(i)) throw new Error("tryAdd refused an item");
          }
        },
        close,
      };
    },
  };
}

function addAllRun(items: number): Case {
  return {
    name: `await addAll(array of ${items.toLocaleString("en")}), no-op flush`,
    items,
    setup: () => {
      const { buffer, close } = openBuffer<number>({ capacity: CAPACITY, flush: noop });
      const array = Array.from({ length: items }, (_, i) => i);
      return { run: () => buffer.addAll(array), close };
    },
  };
}

function awaitAddRun(items: number): Case {
  return {
    name: `await add(i) × ${items.toLocaleString("en")}, no-op flush`,
    items,
    setup: () => {
      const { buffer, close } = openBuffer<number>({ capacity: CAPACITY, flush: noop });
      return {
        async run() {
          for (let i = 0; i < items; i++) await buffer.add(i);
        },
        close,
      };
    },
  };
}

/** The physical limit of batching an array: push into arrays of CAPACITY, hand each to a function. */
function bareSyncLoop(items: number): Case {
  return {
    name: `bare sync loop: array of ${items.toLocaleString("en")} cut into arrays of ${CAPACITY}`,
    items,
    setup: () => {
      const array = Array.from({ length: items }, (_, i) => i);
      return {
        run() {
          let batch: number[] = [];
          for (let i = 0; i < array.length; i++) {
            batch.push(array[i]);
            if (batch.length === CAPACITY) {
              noop();
              batch = [];
            }
          }
          if (batch.length > 0) noop();
        },
      };
    },
  };
}

export async function tryAddAddAll(settings: Settings): Promise<Row[]> {
  const small = [awaitAdd, tryAdd, addAllRun(ITEMS)];
  const ns = await compare(small, settings);
  const addNs = ns.get(awaitAdd.name)!;
  const vs = { vs: "await add(i)", vsNs: addNs, min: 2 };
  const rows = [
    throughputRow(GROUP, awaitAdd.name, addNs),
    throughputRow(GROUP, small[1].name, ns.get(small[1].name)!, vs),
    throughputRow(GROUP, small[2].name, ns.get(small[2].name)!, vs),
  ];
  // Long runs in one buffer: 1,000,000 items per run (a tenth of that in a quick run).
  const items = settings.quick ? 100_000 : 1_000_000;
  const long = [awaitAddRun(items), tryAddRun(items), addAllRun(items), bareSyncLoop(items)];
  const longNs = await compare(long, settings);
  const [add, tryAddNs, addAllNs, bare] = long.map((c) => longNs.get(c.name)!);
  const raised = { vs: `await add(i) × ${items.toLocaleString("en")}`, vsNs: add, min: 2.5 };
  rows.push(
    throughputRow(GROUP, long[0].name, add),
    { ...throughputRow(GROUP, long[1].name, tryAddNs, raised), goal: "14.3" },
    { ...throughputRow(GROUP, long[2].name, addAllNs, raised), goal: "14.3" },
    throughputRow(GROUP, long[3].name, bare),
    {
      ...throughputRow(
        GROUP,
        `${long[2].name} (synchronous flush)`,
        addAllNs,
        { vs: "bare sync loop", vsNs: bare, min: 0.6 },
        "the same run as two rows up, against the physical limit",
      ),
      goal: "14.3",
    },
  );
  return rows;
}
