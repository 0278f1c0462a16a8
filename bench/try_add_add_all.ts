// Scenario 2: tryAdd() and addAll() against add(); each should cost at most half.
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

export const tryAdd: Case = {
  name: "tryAdd(i), no-op flush",
  items: ITEMS,
  setup: () => {
    const { buffer, close } = openBuffer<number>({ capacity: CAPACITY, flush: noop });
    return {
      run() {
        for (let i = 0; i < ITEMS; i++) {
          if (!buffer.tryAdd(i)) throw new Error("tryAdd refused an item");
        }
      },
      close,
    };
  },
};

const addAll: Case = {
  name: "await addAll(array of 10,000), no-op flush",
  items: ITEMS,
  setup: () => {
    const { buffer, close } = openBuffer<number>({ capacity: CAPACITY, flush: noop });
    const items = Array.from({ length: ITEMS }, (_, i) => i);
    return { run: () => buffer.addAll(items), close };
  },
};

export async function tryAddAddAll(settings: Settings): Promise<Row[]> {
  const ns = await compare([awaitAdd, tryAdd, addAll], settings);
  const addNs = ns.get(awaitAdd.name)!;
  const vs = { vs: "await add(i)", vsNs: addNs, min: 2 };
  return [
    throughputRow(GROUP, awaitAdd.name, addNs),
    throughputRow(GROUP, tryAdd.name, ns.get(tryAdd.name)!, vs),
    throughputRow(GROUP, addAll.name, ns.get(addAll.name)!, vs),
  ];
}
