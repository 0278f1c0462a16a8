// Runs the demo (demo/main.ts) as a subprocess with small numbers and checks
// what it prints. Uses node:child_process so the file runs under Deno and Bun.
import assert from "node:assert/strict";
import process from "node:process";
import { FlagError, parseFlags } from "../demo/flags.ts";
import { skip, test } from "./harness.ts";
import { findRoot, findRuntime, type ProcessExit, runProcess } from "./helpers.ts";

const root = findRoot("demo/main.ts");

/** Runs the demo; `onStdout` sees the output so far with the child's pid after each chunk. */
function runDemo(
  deno: string,
  args: string[],
  onStdout?: (stdout: string, pid: number) => void,
): Promise<ProcessExit> {
  return runProcess(deno, ["run", "-A", "demo/main.ts", ...args], {
    cwd: root,
    onStdout: onStdout && ((stdout, child) => onStdout(stdout, child.pid!)),
  });
}

/** Reads `  label   1,234 ...` from the summary as a number. */
function figure(stdout: string, label: string): number {
  const match = stdout.match(new RegExp(`^ {2}${label} +([\\d,]+)`, "m"));
  assert.ok(match, `no "${label}" line in:\n${stdout}`);
  return Number(match[1].replaceAll(",", ""));
}

test("demo flags: defaults, both value forms, and every documented flag", () => {
  assert.deepEqual(parseFlags([]), {
    items: 200_000,
    producers: 8,
    capacity: 500,
    interval: 100,
    concurrency: 4,
    latency: 10,
    failRate: 0,
    compare: false,
    help: false,
  });
  const options = parseFlags([
    "--items=1000",
    "--producers",
    "2",
    "--capacity=50",
    "--interval=2.5",
    "--concurrency=3",
    "--latency=0",
    "--fail-rate=0.25",
    "--compare",
  ]);
  assert.deepEqual(
    [options.items, options.producers, options.capacity, options.interval, options.concurrency],
    [1000, 2, 50, 2.5, 3],
  );
  assert.deepEqual([options.latency, options.failRate, options.compare], [0, 0.25, true]);
});

test("demo flags: malformed or out-of-range values throw a FlagError naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--items=1.5"], /--items must be an integer, received "1.5"/],
    [["--items="], /--items must be an integer, received ""/],
    [["--producers=0"], /--producers must be an integer from 1 to/],
    [["--fail-rate=1.1"], /--fail-rate must be a number from 0 to 1, received 1.1/],
    [["--latency=-1"], /--latency must be a number from 0 to/],
    [["--interval=Infinity"], /--interval must be a number, received "Infinity"/],
    [["--capacity"], /argument missing/],
    [["--nope"], /Unknown option '--nope'/],
    [["positional"], /Unexpected argument 'positional'/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseFlags(args), (error) => {
      assert.ok(error instanceof FlagError, `${args}: ${error}`);
      assert.match(error.message, message);
      return true;
    });
  }
});

const deno = findRuntime("deno", root);
if (deno === undefined) {
  skip("demo runs end to end as a subprocess", "no deno binary (run npm install)");
} else {
  test("demo delivers or dead-letters every event when the collector fails some requests", async () => {
    const { code, stdout, stderr } = await runDemo(deno, [
      "--items=2000",
      "--producers=4",
      "--capacity=100",
      "--latency=0",
      "--fail-rate=0.1",
    ]);
    assert.equal(code, 0, stderr);
    assert.equal(figure(stdout, "produced"), 2000);
    assert.equal(figure(stdout, "received") + figure(stdout, "dead-lettered"), 2000);
    const unique = /received +([\d,]+) events, ([\d,]+) unique ids/.exec(stdout);
    assert.equal(unique?.[1], unique?.[2], "the collector received duplicates");
    assert.match(stdout, /reconciled +yes/);
    assert.match(stdout, /retries +[\d,]+ \(tries after the first/);
    assert.match(stdout, /add\(\) waited +p50 [\d.]+ m?s, p99 [\d.]+ m?s/);
    assert.ok(!stdout.includes("\x1b["), "piped output must not contain terminal escapes");
  });

  test("demo dead-letters every batch after retries when the collector always fails", async () => {
    const { code, stdout, stderr } = await runDemo(deno, [
      "--items=300",
      "--capacity=100",
      "--latency=0",
      "--fail-rate=1",
    ]);
    assert.equal(code, 0, stderr);
    assert.equal(figure(stdout, "received"), 0);
    assert.equal(figure(stdout, "dead-lettered"), 300);
    // retry: { attempts: 4 } means three retries for every batch before it is dead-lettered.
    const batches = /dead-lettered +[\d,]+ events in ([\d,]+) batch(?:es)?/.exec(stdout);
    assert.ok(batches, stdout);
    const failedBatches = Number(batches[1].replaceAll(",", ""));
    assert.ok(failedBatches >= 3, stdout);
    assert.equal(figure(stdout, "retries"), 3 * failedBatches);
    assert.match(stdout, /reconciled +yes/);
  });

  test("demo --compare prints both throughputs from the same run", async () => {
    const { code, stdout, stderr } = await runDemo(deno, [
      "--items=500",
      "--latency=0",
      "--compare",
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /batched +500 events in .+: [\d,]+\/s/);
    assert.match(stdout, /one per request +500 events in .+: [\d,]+\/s/);
    assert.match(stdout, /batching was [\d.]+x faster/);
  });

  test("demo stops its producers on SIGINT and still delivers every event it produced", async () => {
    let interrupted = false;
    // Far more events than the run could send before the safety net: only SIGINT ends it in time.
    const args = ["--items=10000000", "--latency=20"];
    const { code, stdout, stderr } = await runDemo(deno, args, (stdout, pid) => {
      // The header is printed after the SIGINT listener is installed.
      if (interrupted || !stdout.startsWith("demo: ")) return;
      interrupted = true;
      // Not child.kill(): Deno's node:child_process then reports the signal, not the exit code.
      process.kill(pid, "SIGINT");
    });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /produced +[\d,]+ events \(stopped early by Ctrl-C\)/);
    const produced = figure(stdout, "produced");
    assert.ok(produced < 10_000_000, stdout);
    assert.equal(figure(stdout, "received") + figure(stdout, "dead-lettered"), produced);
  });

  test("demo rejects a bad flag value with a message and exit code 2", async () => {
    const { code, stdout, stderr } = await runDemo(deno, ["--items", "lots"]);
    assert.equal(code, 2);
    assert.match(stderr, /--items must be an integer, received "lots"/);
    assert.equal(stdout, "");
  });

  test("demo rejects an unknown flag with a message and exit code 2", async () => {
    const { code, stderr } = await runDemo(deno, ["--itmes=5"]);
    assert.equal(code, 2);
    assert.match(stderr, /Unknown option '--itmes'/);
  });

  test("demo --help lists every flag and exits 0", async () => {
    const { code, stdout } = await runDemo(deno, ["--help"]);
    assert.equal(code, 0);
    for (const flag of ["items", "producers", "capacity", "interval", "concurrency", "latency"]) {
      assert.match(stdout, new RegExp(`--${flag} `));
    }
    assert.match(stdout, /--fail-rate /);
    assert.match(stdout, /--compare /);
  });
}
