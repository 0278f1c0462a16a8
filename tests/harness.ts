/**
 * One test API for `deno test` (through Deno.test, so its op and resource
 * sanitizers stay on), `bun test` and `node --test` (through node:test).
 */
import { test as nodeTest } from "node:test";

/** A test body. */
export type TestFn = () => void | Promise<void>;

interface DenoTest {
  test(name: string, fn: TestFn): void;
  test(definition: { name: string; ignore: boolean; fn: TestFn }): void;
}

const deno = (globalThis as { Deno?: DenoTest }).Deno;

/** Registers a test with the runtime's own runner. */
export function test(name: string, fn: TestFn): void {
  if (deno !== undefined) deno.test(name, fn);
  else nodeTest(name, fn);
}

/** Registers a test that cannot run here, so the runner reports it as skipped with `reason`. */
export function skip(name: string, reason: string): void {
  if (deno !== undefined) {
    deno.test({ name: `${name} (skipped: ${reason})`, ignore: true, fn() {} });
  } else nodeTest(name, { skip: reason }, () => {});
}
