// A small driver for CPU profiles of one waiting-path regime, library or floor:
//
//   npx esbuild bench/profile.ts --bundle --format=esm --platform=node --outfile=.tmp/profile.mjs
//   node --cpu-prof --cpu-prof-dir=.tmp/prof .tmp/profile.mjs library 10000 500 4 100000 1
//   node --trace-gc .tmp/profile.mjs floor 10000 500 4 100000 1 | grep -c Scavenge
//   npx deno run -A bench/profile.ts library 1 500 4 100000 1
//
// Arguments: library|floor, producers, capacity, maxConcurrentFlushes, items, flush ms.
// Prints process CPU per item (timer wake-ups included) and wall time for six runs.
import process from "node:process";
import { BatchBuffer } from "../mod.ts";
import { Floor } from "./floor.ts";

const [which = "library", ...numbers] = process.argv.slice(2);
const [producers = 1, capacity = 500, flushes = 4, items = 100_000, ms = 1] = numbers.map(Number);
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};
const flush = () => new Promise<void>((resolve) => setTimeout(resolve, ms));
const each = items / producers;
const config = { capacity, chanSize: 2 * capacity, maxConcurrentFlushes: flushes, flush };

for (let run = 0; run < 6; run++) {
  const started = cpu();
  const t0 = performance.now();
  if (which === "library") {
    const buffer = new BatchBuffer<number>(config);
    const running = buffer.run();
    const producer = async () => {
      for (let i = 0; i < each; i++) await buffer.add(i);
    };
    await Promise.all(Array.from({ length: producers }, producer));
    buffer.close();
    await running;
  } else {
    const floor = new Floor<number>({ ...config, flushInterval: 5_000 });
    const producer = async () => {
      for (let i = 0; i < each; i++) await floor.add(i);
    };
    await Promise.all(Array.from({ length: producers }, producer));
    await floor.close();
  }
  const ns = (cpu() - started) / items;
  console.log(
    `${which}: ${ns.toFixed(0)} ns CPU an item, ${(performance.now() - t0).toFixed(0)} ms`,
  );
}
