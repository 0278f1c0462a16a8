// Helpers shared by the test files. Not a test file itself.
import FakeTimers from "@sinonjs/fake-timers";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { FlushContext, FlushReason } from "../mod.ts";

// ------------------------------------------------------------------ promises

/** A promise with its resolve and reject at hand, to settle a flush by hand. */
export interface Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** Creates a promise that the test settles by hand. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Lets pending promise jobs and stream steps run (the channel's WritableStream
 * hops take several) by yielding `turns` real macrotasks. Only valid without a
 * fake clock; under one, use `clock.tickAsync(0)`.
 */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setTimeout(resolve, 0));
}

/** Watches a promise without awaiting it, so a test can ask whether (and how) it settled yet. */
export function track(
  promise: Promise<unknown>,
): { settled: boolean; rejected: boolean; error: unknown } {
  const state = { settled: false, rejected: false, error: undefined as unknown };
  promise.then(
    () => (state.settled = true),
    (error) => Object.assign(state, { settled: true, rejected: true, error }),
  );
  return state;
}

/** A small seeded PRNG (mulberry32), so the "random" values are the same on every run. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- fake clock

/** The clock type that `FakeTimers.install()` returns. */
export type Clock = ReturnType<typeof FakeTimers.install>;

/**
 * Installs a fake clock for timers and clocks only: the buffer's timer sweep
 * needs real microtasks, and node:test schedules its next test with the global
 * setImmediate (a faked one silently ends the Node test process).
 */
export function installClock(): Clock {
  return FakeTimers.install({
    toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date", "performance"],
  });
}

/** Runs `body` with a fake clock installed, uninstalling it whatever happens. */
export async function withFakeClock(body: (clock: Clock) => Promise<void>): Promise<void> {
  const clock = installClock();
  try {
    await body(clock);
  } finally {
    clock.uninstall();
  }
}

// ------------------------------------------------------------------- flushes

/** One call of a recorded flush. */
export interface FlushCall<T> {
  readonly batch: T[];
  /** A copy taken when flush was called, to detect later changes. */
  readonly snapshot: T[];
  readonly reason: FlushReason;
  readonly signal: AbortSignal;
}

/** A synchronous flush that records every call. */
export function recordingFlush<T>(): {
  calls: FlushCall<T>[];
  flush: (batch: T[], context: FlushContext) => void;
} {
  const calls: FlushCall<T>[] = [];
  return {
    calls,
    flush: (batch, { reason, signal }) => {
      calls.push({ batch, snapshot: [...batch], reason, signal });
    },
  };
}

/** A flush whose every call stays pending until the test settles it. */
export function controlledFlush<T>(): {
  calls: (FlushCall<T> & { readonly done: Deferred })[];
  flush: (batch: T[], context: FlushContext) => Promise<void>;
} {
  const calls: (FlushCall<T> & { readonly done: Deferred })[] = [];
  return {
    calls,
    flush: (batch, { reason, signal }) => {
      const done = deferred();
      calls.push({ batch, snapshot: [...batch], reason, signal, done });
      return done.promise;
    },
  };
}

// --------------------------------------------------------------- subprocesses

/** Kills a stuck child process; the tests assert on its output, never on this time. */
const SAFETY_NET_MS = 30_000;

/** The repository root: the folder holding `marker`, also when this file was bundled elsewhere. */
export function findRoot(marker: string): string {
  let dir = new URL(".", import.meta.url);
  while (!existsSync(new URL(marker, dir))) {
    const parent = new URL("..", dir);
    if (parent.href === dir.href) return fileURLToPath(new URL("..", import.meta.url));
    dir = parent;
  }
  return fileURLToPath(dir);
}

/** The runtime's binary: this process when it is that runtime, else the npm devDependency. */
export function findRuntime(name: "deno" | "bun", root: string): string | undefined {
  if (name === "deno" && "Deno" in globalThis) return process.execPath;
  if (name === "bun" && "Bun" in globalThis) return process.execPath;
  const local = `${root}node_modules/.bin/${name}`;
  return existsSync(local) ? local : undefined;
}

/** How a child process ended, with all it printed. */
export interface ProcessExit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` in `cwd` without colours or update checks, `env` added to
 * this process's environment; `onStdout` sees the output so far and the child
 * after each chunk.
 */
export function runProcess(
  command: string,
  args: string[],
  { cwd, env = {}, onStdout }: {
    cwd: string;
    env?: Record<string, string>;
    onStdout?: (stdout: string, child: ChildProcess) => void;
  },
): Promise<ProcessExit> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const safetyNet = setTimeout(() => child.kill("SIGKILL"), SAFETY_NET_MS);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      onStdout?.(stdout, child);
    });
    child.on("error", (error) => {
      clearTimeout(safetyNet);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(safetyNet);
      resolve({ code, stdout, stderr });
    });
  });
}
