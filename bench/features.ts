// Scenario 9 (issue 14.5): the newer features against plain add(), each row skipped when this
// build lacks the feature (detected by behaviour): keys (issue 12.2), maxBufferedBytes (12.3),
// send() and retry (13).
import { BatchBuffer, type BatchBufferConfig } from "../mod.ts";
import { supportsBufferedBytes } from "./memory.ts";
import {
  CAPACITY,
  type Case,
  compare,
  judge,
  noop,
  notInThisBuild,
  openBuffer,
  type Row,
  type Settings,
  throughputRow,
} from "./runner.ts";

const GROUP = "9 newer features";
const ITEM = "x".repeat(100);

/** Config options this build may not know yet; the types catch up when they land. */
type Extra = Record<string, unknown>;

function config<T>(flush: (batch: T[]) => void, extra: Extra): BatchBufferConfig<T> {
  return { capacity: CAPACITY, flush, ...extra } as BatchBufferConfig<T>;
}

function statsHave(extra: Extra, field: string): boolean {
  const buffer = new BatchBuffer<number>(config(noop, extra));
  return field in buffer.stats();
}

/** One producer, `await add(i)` in a loop, `items` items per run in one buffer. */
function addLoop(name: string, items: number, extra: Extra): Case {
  return {
    name,
    items,
    setup: () => {
      const { buffer, close } = openBuffer<number>(config(noop, extra));
      return {
        async run() {
          for (let i = 0; i < items; i++) await buffer.add(i);
        },
        close,
      };
    },
  };
}

/** 100 producers, so each batch of 100 fills from 100 waiting send()s (or add()s). */
function manyProducers(name: string, items: number, send: boolean): Case {
  const producers = 100;
  const each = items / producers;
  return {
    name,
    items,
    setup: () => {
      const { buffer, close } = openBuffer<number>(config(noop, {}));
      const call = send
        ? (buffer as unknown as { send(item: number): Promise<void> }).send.bind(buffer)
        : buffer.add.bind(buffer);
      const producer = async () => {
        for (let i = 0; i < each; i++) await call(i);
      };
      return {
        run: () => Promise.all(Array.from({ length: producers }, producer)),
        close,
      };
    },
  };
}

function sized(name: string, items: number, extra: Extra): Case {
  return {
    name,
    items,
    setup: () => {
      const { buffer, close } = openBuffer<string>(
        config(noop, { chanSize: 1_000, sizeOf: (item: string) => item.length, ...extra }),
      );
      return {
        async run() {
          for (let i = 0; i < items; i++) await buffer.add(ITEM);
        },
        close,
      };
    },
  };
}

async function keyRows(settings: Settings, items: number): Promise<Row[]> {
  const scenario = (keys: number) => `await add(i), key: i % ${keys.toLocaleString("en")}`;
  if (!statsHave({ key: () => 0 }, "openBatches")) {
    return [
      notInThisBuild(GROUP, scenario(10), "14.5"),
      notInThisBuild(GROUP, scenario(10_000), "14.5"),
    ];
  }
  const plain = addLoop(`await add(i) × ${items.toLocaleString("en")}, no key`, items, {});
  const ten = addLoop(scenario(10), items, { key: (i: number) => i % 10 });
  const many = addLoop(scenario(10_000), items, {
    key: (i: number) => i % 10_000,
    maxOpenBatches: 10_000,
  });
  const ns = await compare([plain, ten, many], settings);
  const [p, t, m] = [plain, ten, many].map((c) => ns.get(c.name)!);
  const vs = { vs: "no key", vsNs: p };
  return [
    throughputRow(GROUP, plain.name, p),
    { ...throughputRow(GROUP, ten.name, t, vs), goal: "14.5" },
    { ...throughputRow(GROUP, many.name, m, vs), goal: "14.5" },
    {
      group: GROUP,
      scenario: "keys: 10,000 against 10 (flat in the number of keys)",
      vs: "10 keys",
      ...judge(t / m, 0.8),
      goal: "14.5",
      note: "O(1) per item; the margin allows for 10,000 open batches missing the cache",
    },
  ];
}

async function byteBoundRows(settings: Settings, items: number): Promise<Row[]> {
  const on = "await add(item), sizeOf + maxBufferedBytes 16 MiB";
  if (!supportsBufferedBytes()) return [notInThisBuild(GROUP, on, "14.5")];
  const offCase = sized("await add(item), sizeOf, no maxBufferedBytes", items, {});
  const onCase = sized(on, items, { maxBufferedBytes: 16 * 1024 * 1024 });
  const ns = await compare([offCase, onCase], settings);
  const off = ns.get(offCase.name)!;
  return [
    throughputRow(GROUP, offCase.name, off),
    {
      ...throughputRow(GROUP, on, ns.get(on)!, { vs: "maxBufferedBytes off", vsNs: off }),
      goal: "14.5",
      note: "the bound never binds here: this is its bookkeeping",
    },
  ];
}

async function deliveryRows(settings: Settings, items: number): Promise<Row[]> {
  const sendName = "100 producers × await send(i), no-op flush";
  const retryName = "await add(i), retry configured";
  const probe = new BatchBuffer<number>(config(noop, {}));
  const hasSend = typeof (probe as unknown as { send?: unknown }).send === "function";
  const hasRetry = statsHave({ retry: {} }, "retries");
  const rows: Row[] = [];
  if (hasSend) {
    const add = manyProducers("100 producers × await add(i), no-op flush", items, false);
    const send = manyProducers(sendName, items, true);
    const ns = await compare([add, send], settings);
    const addNs = ns.get(add.name)!;
    rows.push(
      throughputRow(GROUP, add.name, addNs),
      {
        ...throughputRow(GROUP, send.name, ns.get(send.name)!, { vs: "add()", vsNs: addNs }),
        goal: "14.5",
        note: "send() resolves once its batch is flushed",
      },
    );
  } else rows.push(notInThisBuild(GROUP, sendName, "14.5"));
  if (hasRetry) {
    const add = addLoop(`await add(i) × ${items.toLocaleString("en")}, no retry`, items, {});
    const retry = addLoop(retryName, items, { retry: {} });
    const ns = await compare([add, retry], settings);
    const addNs = ns.get(add.name)!;
    rows.push(
      throughputRow(GROUP, add.name, addNs),
      {
        ...throughputRow(GROUP, retryName, ns.get(retryName)!, { vs: "add()", vsNs: addNs }),
        goal: "14.5",
      },
    );
  } else rows.push(notInThisBuild(GROUP, retryName, "14.5"));
  return rows;
}

export async function features(settings: Settings): Promise<Row[]> {
  const items = settings.quick ? 100_000 : 1_000_000;
  return [
    ...await keyRows(settings, items),
    ...await byteBoundRows(settings, items / 10),
    ...await deliveryRows(settings, items / 10),
  ];
}
