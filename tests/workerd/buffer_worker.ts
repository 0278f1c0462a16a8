/**
 * Runs the runtime smoke suite (tests/browser/smoke_suite.ts: add, full,
 * interval and manual flushes, abort, close, BatchStream, writable) inside
 * workerd, plus a check that hands flushes to the real `ctx.waitUntil`.
 *
 * `workerd test` calls `test()`, which logs `CHECK ok|FAIL` lines
 * (tests/workerd/run.mjs); Miniflare has no test runner, so `fetch()` runs
 * the same checks and answers their results as JSON (tests/miniflare/run.mjs).
 */
import { BatchBuffer } from "../../mod.ts";
import { runSmokeSuite, smokeChecks, type SmokeResult } from "../browser/smoke_suite.ts";

interface TestContext {
  waitUntil(promise: Promise<unknown>): void;
}

function runChecks(ctx: TestContext, log?: (line: string) => void): Promise<SmokeResult[]> {
  return runSmokeSuite([
    ...smokeChecks,
    {
      name: "flushes handed to the runtime's ctx.waitUntil settle",
      fn: async () => {
        const handed: Promise<unknown>[] = [];
        const flushed: number[][] = [];
        const buffer = new BatchBuffer<number>({
          capacity: 2,
          flush: async (batch) => {
            await Promise.resolve();
            flushed.push(batch);
          },
          waitUntil: (promise) => {
            handed.push(promise);
            ctx.waitUntil(promise);
          },
        });
        const running = buffer.run();
        for (let i = 0; i < 4; i++) await buffer.add(i);
        buffer.close();
        await running;
        await Promise.all(handed);
        // Two flushes, and a keep-alive for each of the two batches that opened.
        if (handed.length !== 4 || JSON.stringify(flushed) !== "[[0,1],[2,3]]") {
          throw new Error(`handed ${handed.length}, flushed ${JSON.stringify(flushed)}`);
        }
      },
    },
  ], log);
}

export default {
  async test(_controller: unknown, _env: unknown, ctx: TestContext): Promise<void> {
    const results = await runChecks(ctx);
    const failed = results.filter((result) => !result.ok);
    if (failed.length > 0) throw new Error(`${failed.length} smoke checks failed in workerd`);
  },

  async fetch(_request: Request, _env: unknown, ctx: TestContext): Promise<Response> {
    return Response.json(await runChecks(ctx, () => {}));
  },
};
