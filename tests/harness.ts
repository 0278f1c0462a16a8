/**
 * One test API for `deno test` (through Deno.test, so its op and resource
 * sanitizers stay on), `bun test` and `node --test` (through node:test).
 */
import { test as nodeTest } from "node:test";

/** A test body. */
export type TestFn = () => void | Promise<void>;

const deno = (globalThis as { Deno?: { test(name: string, fn: TestFn): void } }).Deno;

/** Registers a test with the runtime's own runner. */
export function test(name: string, fn: TestFn): void {
  if (deno !== undefined) deno.test(name, fn);
  else nodeTest(name, fn);
}
