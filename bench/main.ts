/**
 * Benchmarks of issues 5 and 14, side by side in one process.
 *
 *     deno run -A --v8-flags=--expose-gc bench/main.ts [--quick] [--only <group>[,<group>]]
 *                               [--json <path>] [--filter <regexp on waiting-path regimes>]
 *                               [--in-process]
 *     deno run -A bench/main.ts --print bench/results/latest.json   # the tables of a past run
 *
 * Every ratio compares two figures measured in the same process; speed is
 * never asserted, so `--quick` only keeps the harness working. Each group
 * runs in a process of its own (unless `--in-process`): the JIT's type
 * feedback from one group (keys, sizes, send() tickets) must not slow the
 * library down in the next, where the floor it is compared with never ran
 * them. Prints the main table, the waiting-path table (the library beside
 * bench/floor.ts) and a summary of issue 14's goals.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { byteBudget } from "./byte_budget.ts";
import { features } from "./features.ts";
import { latency } from "./latency.ts";
import { manyProducers } from "./many_producers.ts";
import { memory } from "./memory.ts";
import { peers } from "./peers.ts";
import {
  collectGarbage,
  type Row,
  type Settings,
  settingsFor,
  type WaitingFigures,
} from "./runner.ts";
import { singleProducer } from "./single_producer.ts";
import { tryAddAddAll } from "./try_add_add_all.ts";
import { waiting } from "./waiting.ts";

const GROUPS: Record<string, (settings: Settings) => Promise<Row[]>> = {
  single_producer: singleProducer,
  try_add_add_all: tryAddAddAll,
  many_producers: manyProducers,
  byte_budget: byteBudget,
  latency,
  memory,
  peers,
  waiting,
  features,
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    json: { type: "string", default: "bench/results/latest.json" },
    filter: { type: "string" },
    print: { type: "string" },
    "in-process": { type: "boolean", default: false },
    /** Internal: run the groups here and write their rows to this path (the parent's child). */
    "rows-to": { type: "string" },
  },
});

if (values.print !== undefined) {
  const saved = JSON.parse(await Deno.readTextFile(values.print));
  printRun(saved.machine, saved.rows);
  Deno.exit(0);
}

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
  /** V8's own gc(), which can collect the young generation alone (scenario 8 needs it). */
  youngGc: typeof (globalThis as { gc?: unknown }).gc === "function",
  commit: await commit(),
};

const settings = settingsFor(values.quick, values.filter);
const rows: Row[] = [];
const isChild = values["rows-to"] !== undefined;
for (const name of only) {
  if (!isChild) console.error(`running ${name}...`);
  const started = performance.now();
  const inHere = values["in-process"] || isChild;
  rows.push(...(inHere ? await GROUPS[name](settings) : await inChildProcess(name)));
  if (!isChild) {
    console.error(`  ${name} took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}
if (isChild) {
  await Deno.writeTextFile(values["rows-to"]!, JSON.stringify(rows));
  Deno.exit(0);
}

printRun(machine, rows);
const path = values.json;
await Deno.mkdir(path.replace(/[^/]*$/, "") || ".", { recursive: true });
await Deno.writeTextFile(path, JSON.stringify({ machine, rows }, null, 2) + "\n");
console.error(`wrote ${path}`);

type Machine = typeof machine;

/** Runs one group in a fresh Deno process with this one's flags, and returns its rows. */
async function inChildProcess(group: string): Promise<Row[]> {
  const rowsPath = await Deno.makeTempFile({ prefix: `bench-${group}-`, suffix: ".json" });
  try {
    const args = ["run", "-A"];
    if (machine.youngGc) args.push("--v8-flags=--expose-gc");
    args.push(new URL(import.meta.url).pathname, "--only", group, "--rows-to", rowsPath);
    if (values.quick) args.push("--quick");
    if (values.filter !== undefined) args.push("--filter", values.filter);
    const child = new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "inherit" });
    const { code } = await child.output();
    if (code !== 0) throw new Error(`bench group ${group} exited with code ${code}`);
    return JSON.parse(await Deno.readTextFile(rowsPath));
  } finally {
    await Deno.remove(rowsPath).catch(() => {});
  }
}

function printRun(machine: Machine, rows: readonly Row[]): void {
  console.log(
    `${machine.runtime} · ${machine.cpu} · ${machine.cores} cores · ${machine.date} · ` +
      `commit ${machine.commit} · ${machine.mode} run` +
      (machine.gc ? "" : " · no gc(): heap figures are approximate") +
      (machine.youngGc
        ? ""
        : " · no --expose-gc: waiting-path trials collect each other's garbage"),
  );
  const mainRows = rows.filter((row) => row.waiting === undefined);
  if (mainRows.length > 0) console.log("\n" + markdownTable(mainRows));
  const waitingRows = rows.filter((row) => row.waiting !== undefined);
  if (waitingRows.length > 0) console.log("\n" + waitingTable(waitingRows));
  console.log("\n" + goalTable(rows));
}

/** The commit measured, with "+dirty" when src/ has uncommitted changes. */
async function commit(): Promise<string> {
  try {
    const git = (...args: string[]) =>
      new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
    const head = new TextDecoder().decode((await git("rev-parse", "--short", "HEAD")).stdout);
    const dirty = (await git("diff", "--quiet", "HEAD", "--", "src/", "mod.ts")).code !== 0;
    return head.trim() + (dirty ? "+dirty" : "");
  } catch {
    return "unknown";
  }
}

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

/** The waiting path: per regime, CPU per item net of timer wake-ups, and wall throughput. */
function waitingTable(rows: readonly Row[]): string {
  const header = [
    "8. waiting path regime",
    "items",
    "timers ns/item",
    "library CPU ns/item",
    "floor CPU ns/item",
    "CPU ratio (spread)",
    "≤ 1.30×?",
    "library items/s",
    "floor items/s",
    "throughput ratio (spread)",
    "≥ 0.90×?",
  ];
  const spread = ([low, high]: readonly [number, number]) =>
    Number.isNaN(low) ? "" : ` (${low.toFixed(2)}–${high.toFixed(2)})`;
  const lines = rows.map((row) => {
    const w = row.waiting!;
    const cpuMet = w.cpuRatio > 0 && w.cpuRatio <= 1.3;
    return [
      row.scenario,
      w.items.toLocaleString("en"),
      formatNumber(w.timerCpuNs),
      formatNumber(w.libraryCpuNs),
      formatNumber(w.floorCpuNs),
      `${w.cpuRatio > 0 ? w.cpuRatio.toFixed(2) + "×" : "n/a"}${spread(w.cpuSpread)}`,
      cpuMet ? "yes" : "**no**",
      formatCount(w.libraryItemsPerSecond),
      formatCount(w.floorItemsPerSecond),
      `${w.wallRatio.toFixed(2)}×${spread(w.wallSpread)}`,
      w.wallRatio >= 0.9 ? "yes" : "**no**",
    ];
  });
  return [header, header.map(() => "---"), ...lines]
    .map((cells) => `| ${cells.join(" | ")} |`)
    .join("\n");
}

/** Issue 14's goals: how many of each goal's rows met their target in this run. */
function goalTable(rows: readonly Row[]): string {
  const goals = new Map<string, { met: number; judged: number; skipped: number }>();
  for (const row of rows) {
    if (row.goal === undefined) continue;
    const tally = goals.get(row.goal) ?? { met: 0, judged: 0, skipped: 0 };
    goals.set(row.goal, tally);
    if (row.met === undefined) {
      if (row.note?.startsWith("n/a")) tally.skipped++;
      continue;
    }
    tally.judged++;
    if (row.met) tally.met++;
  }
  const names: Record<string, string> = {
    "14.2": "waiting path: CPU ≤ 1.3× and throughput ≥ 0.9× of the floor",
    "14.3": "fast path raised",
    "14.4": "memory per blocked producer ≤ 1.1× the floor's; aborted items released",
    "14.5": "newer features' rows",
  };
  const lines = [...goals].sort(([a], [b]) => a.localeCompare(b)).map((
    [goal, { met, judged, skipped }],
  ) => [
    `${goal}: ${names[goal] ?? ""}`,
    `${met} of ${judged}`,
    judged > 0 && met === judged ? "yes" : judged === 0 ? "" : "**no**",
    skipped > 0 ? `${skipped} n/a: not in this build` : "",
  ]);
  const waiting = rows.flatMap((row) => row.waiting === undefined ? [] : [row.waiting]);
  if (waiting.length > 0) {
    const cpuMet = (w: WaitingFigures) => w.cpuRatio > 0 && w.cpuRatio <= 1.3;
    const cpu = waiting.filter(cpuMet).length;
    const wall = waiting.filter((w) => w.wallRatio >= 0.9).length;
    // Where the subtracted wake-ups cost more CPU than the floor's own work, the net figures are
    // small differences of large ones, and their ratio swings from run to run.
    const resolved = waiting.filter((w) => w.timerCpuNs <= w.floorCpuNs);
    lines.push(
      ["14.2 CPU alone: ≤ 1.3× the floor", `${cpu} of ${waiting.length}`, "", ""],
      [
        "14.2 CPU alone, rows where the items outweigh the wake-ups (timers ≤ floor)",
        `${resolved.filter(cpuMet).length} of ${resolved.length}`,
        "",
        "",
      ],
      ["14.2 throughput alone: ≥ 0.9× the floor", `${wall} of ${waiting.length}`, "", ""],
    );
  }
  const header = ["issue 14 goal", "rows met", "goal met?", "skipped"];
  return [header, header.map(() => "---"), ...lines]
    .map((cells) => `| ${cells.join(" | ")} |`)
    .join("\n");
}

function formatNumber(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
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
