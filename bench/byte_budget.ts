// Scenario 4: byte budgets (sizeOf + maxBatchBytes) cost the same per item at any batch size;
// the Go original's style of predicate re-sums the batch for every item.
import {
  type Case,
  compare,
  judge,
  noop,
  openBuffer,
  type Row,
  type Settings,
  throughputRow,
} from "./runner.ts";

const GROUP = "4 byte budgets";
const ITEM = "x".repeat(100);
const ITEM_BYTES = ITEM.length;
/** Large enough that only the byte budget ends a batch. */
const NO_COUNT_LIMIT = Number.MAX_SAFE_INTEGER;
const sizeOf = (item: string) => item.length;

function budgeted(itemsPerBatch: number): Case {
  return {
    name: `sizeOf + maxBatchBytes, ${itemsPerBatch.toLocaleString("en")}-item batches`,
    items: 50_000,
    setup: () =>
      addLoop(50_000, {
        capacity: NO_COUNT_LIMIT,
        chanSize: 1_000,
        sizeOf,
        maxBatchBytes: itemsPerBatch * ITEM_BYTES,
      }),
  };
}

/** `willOverflow: totalBytes(batch) + size(item) > limit`, as the Go original's examples do. */
function goStyle(itemsPerBatch: number, items: number): Case {
  const limit = itemsPerBatch * ITEM_BYTES;
  const totalBytes = (batch: readonly string[]) => {
    let total = 0;
    for (const item of batch) total += sizeOf(item);
    return total;
  };
  return {
    name: `Go style willOverflow(totalBytes), ${itemsPerBatch.toLocaleString("en")}-item batches`,
    items,
    setup: () =>
      addLoop(items, {
        capacity: NO_COUNT_LIMIT,
        chanSize: 1_000,
        willOverflow: (batch, item) => totalBytes(batch) + sizeOf(item) > limit,
      }),
  };
}

function addLoop(items: number, config: Omit<Parameters<typeof openBuffer<string>>[0], "flush">) {
  const { buffer, close } = openBuffer<string>({ ...config, flush: noop });
  return {
    async run() {
      for (let i = 0; i < items; i++) await buffer.add(ITEM);
    },
    close,
  };
}

export async function byteBudget(settings: Settings): Promise<Row[]> {
  const cases = [budgeted(50), budgeted(5_000), goStyle(50, 50_000), goStyle(5_000, 10_000)];
  const ns = await compare(cases, settings);
  const [small, large, goSmall, goLarge] = cases.map((c) => ns.get(c.name)!);
  const costGrowth = large / small;
  return [
    throughputRow(GROUP, cases[0].name, small),
    {
      ...throughputRow(GROUP, cases[1].name, large),
      vs: "50-item batches",
      ...judge(small / large, 1 / 1.1),
      note: `per-item cost ${
        ((costGrowth - 1) * 100).toFixed(1)
      }% vs 50-item batches (target ≤ +10%)`,
    },
    throughputRow(GROUP, cases[2].name, goSmall, { vs: "sizeOf, 50-item", vsNs: small }),
    throughputRow(
      GROUP,
      cases[3].name,
      goLarge,
      { vs: "sizeOf, 5,000-item", vsNs: large },
      `info: per-item cost ${(goLarge / goSmall).toFixed(0)}× that at 50-item batches`,
    ),
  ];
}
