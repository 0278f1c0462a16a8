// Scenario 5: a backend where every flush takes 10 ms of real time; concurrent flushes overlap.
import {
  CAPACITY,
  judge,
  median,
  openBuffer,
  type Row,
  type Settings,
  throughputRow,
} from "./runner.ts";

const GROUP = "5 latency-bound backend";
const FLUSH_MS = 10;

/** Wall time per item for `items` adds through flushes that each take 10 ms. */
async function nsPerItem(items: number, maxConcurrentFlushes: number): Promise<number> {
  const { buffer, close } = openBuffer<number>({
    capacity: CAPACITY,
    maxConcurrentFlushes,
    flush: () => new Promise((resolve) => setTimeout(resolve, FLUSH_MS)),
  });
  const started = performance.now();
  for (let i = 0; i < items; i++) await buffer.add(i);
  await close();
  return ((performance.now() - started) * 1e6) / items;
}

export async function latency(settings: Settings): Promise<Row[]> {
  // One flush at a time moves 100 items per 10 ms: 16,000 items take about 1.6 s.
  const items = settings.quick ? 1_600 : 16_000;
  const serial: number[] = [];
  const overlapped: number[] = [];
  for (let round = 0; round < settings.rounds; round++) {
    serial.push(await nsPerItem(items, 1));
    overlapped.push(await nsPerItem(items, 8));
  }
  const one = median(serial);
  const eight = median(overlapped);
  const scenario = (n: number) =>
    `maxConcurrentFlushes ${n}, ${items.toLocaleString("en")} items, 10 ms flushes`;
  return [
    throughputRow(GROUP, scenario(1), one),
    {
      ...throughputRow(GROUP, scenario(8), eight),
      vs: "1 flush at a time",
      ...judge(one / eight, 6),
    },
  ];
}
