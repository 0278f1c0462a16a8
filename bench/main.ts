/**
 * Benchmarks of issue 5, side by side in one process.
 *
 *     deno run -A bench/main.ts [--quick] [--only <group>[,<group>]] [--json <path>]
 *
 * Every ratio compares two figures measured in this same run; speed is never
 * asserted, so `--quick` only keeps the harness working.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { byteBudget } from "./byte_budget.ts";
import { latency } from "./latency.ts";
import { manyProducers } from "./many_producers.ts";
import { memory } from "./memory.ts";
import { peers } from "./peers.ts";
import { collectGarbage, type Row, type Settings, settingsFor } from "./runner.ts";
import { singleProducer } from "./single_producer.ts";
import { tryAddAddAll } from "./try_add_add_all.ts";

const GROUPS: Record<string, (settings: Settings) => Promise<Row[]>> = {
  single_producer: singleProducer,
  try_add_add_all: tryAddAddAll,
  many_producers: manyProducers,
  byte_budget: byteBudget,
  latency,
  memory,
  peers,
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    json: { type: "string", default: "bench/results/latest.json" },
  },
});

const only = values.only?.split(",") ?? Object.keys(GROUPS);
const unknown = only.filter((name) => !(name in GROUPS));
if (unknown.length > 0) {
  console.error(`unknown group ${unknown.join(", ")}; groups: ${Object.keys(GROUPS).join(", ")}`);
  Deno.exit(2);
}

const machine = {
  runtime: `Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
  cpu: await cpuModel(),
  cores: navigator.hardwareConcurrency,
  date: new Date().toISOString(),
  mode: values.quick ? "quick" : "full",
  gc: collectGarbage !== undefined,
};
console.log(
  `${machine.runtime} · ${machine.cpu} · ${machine.cores} cores · ${machine.date} · ` +
    `${machine.mode} run${machine.gc ? "" : " · no gc(): heap figures are approximate"}`,
);

const settings = settingsFor(values.quick);
const rows: Row[] = [];
for (const name of only) {
  console.error(`running ${name}...`);
  const started = performance.now();
  rows.push(...await GROUPS[name](settings));
  console.error(`  ${name} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

console.log(markdownTable(rows));
const path = values.json;
await Deno.mkdir(path.replace(/[^/]*$/, "") || ".", { recursive: true });
await Deno.writeTextFile(path, JSON.stringify({ machine, rows }, null, 2) + "\n");
console.error(`wrote ${path}`);

function markdownTable(rows: readonly Row[]): string {
  const header = ["scenario", "ns/item", "items/s", "ratio", "vs", "target", "met?", "note"];
  const lines = rows.map((row) => [
    `${row.group.split(" ")[0]}. ${row.scenario}`,
    row.nsPerItem === undefined ? "" : formatNumber(row.nsPerItem),
    row.itemsPerSecond === undefined ? "" : formatCount(row.itemsPerSecond),
    row.ratio === undefined ? "" : `${row.ratio.toFixed(2)}×`,
    row.vs ?? "",
    row.target ?? "",
    row.met === undefined ? "" : row.met ? "yes" : "**no**",
    row.note ?? "",
  ]);
  return [header, header.map(() => "---"), ...lines]
    .map((cells) => `| ${cells.join(" | ")} |`)
    .join("\n");
}

function formatNumber(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function formatCount(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return value.toFixed(0);
}

async function cpuModel(): Promise<string> {
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    return info.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? "unknown CPU";
  } catch {
    return `unknown CPU (${Deno.build.os}/${Deno.build.arch})`;
  }
}
