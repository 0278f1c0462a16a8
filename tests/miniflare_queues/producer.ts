/**
 * The producer Worker of the Miniflare Queues test (run.mjs): a Worker with a
 * `QUEUE` producer binding.
 *
 * - `POST /send-batch` with `{ bodies, contentType? }`: one raw
 *   `QUEUE.sendBatch()` call, answering `{ ok, error? }`; run.mjs uses it to
 *   find what sendBatch refuses.
 * - `GET /preset`: the preset's numbers, as the bundled package has them.
 * - `POST /buffered` with `{ bodies }`: sends the bodies through a BatchBuffer
 *   spread from CLOUDFLARE_QUEUES_SEND_BATCH, whose flush is `sendBatch`, and
 *   answers which ids were rejected, which batches went out and any flush
 *   error. A body `{ id, bigint: true }` becomes `{ id, count: 1n }`, which
 *   JSON cannot carry.
 */
import { BatchBuffer, CLOUDFLARE_QUEUES_SEND_BATCH, type FlushReason } from "../../mod.ts";

/** The part of `Queue` (@cloudflare/workers-types) this Worker uses. */
interface Queue {
  sendBatch(messages: Iterable<{ body: unknown; contentType?: string }>): Promise<void>;
}

interface Env {
  QUEUE: Queue;
}

interface Body {
  id: string;
  bigint?: boolean;
}

interface BufferedReport {
  rejected: string[];
  batches: { count: number; bytes: number; reason: FlushReason }[];
  flushErrors: string[];
}

async function sendBuffered(env: Env, bodies: Body[]): Promise<BufferedReport> {
  const report: BufferedReport = { rejected: [], batches: [], flushErrors: [] };
  const buffer = new BatchBuffer<Body>({
    ...CLOUDFLARE_QUEUES_SEND_BATCH,
    flushInterval: Infinity,
    maxConcurrentFlushes: 2,
    flush: async (batch, { reason }) => {
      const bytes = batch.reduce((sum, body) => sum + CLOUDFLARE_QUEUES_SEND_BATCH.sizeOf(body), 0);
      report.batches.push({ count: batch.length, bytes, reason });
      await env.QUEUE.sendBatch(batch.map((body) => ({ body, contentType: "json" })));
    },
    onReject: (body) => void report.rejected.push(body.id),
    onFlushError: (error) => void report.flushErrors.push(String(error)),
  });
  const running = buffer.run();
  await buffer.addAll(
    bodies.map((body) => body.bigint ? { id: body.id, count: 1n } as unknown as Body : body),
  );
  buffer.close();
  await running;
  return report;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/send-batch") {
      const { bodies, contentType } = await request.json() as {
        bodies: unknown[];
        contentType?: string;
      };
      try {
        await env.QUEUE.sendBatch(bodies.map((body) => ({ body, contentType })));
        return Response.json({ ok: true });
      } catch (error) {
        return Response.json({ ok: false, error: String(error) });
      }
    }
    if (url.pathname === "/preset") {
      const { capacity, maxBatchBytes, maxItemBytes } = CLOUDFLARE_QUEUES_SEND_BATCH;
      return Response.json({ capacity, maxBatchBytes, maxItemBytes });
    }
    if (request.method === "POST" && url.pathname === "/buffered") {
      const { bodies } = await request.json() as { bodies: Body[] };
      return Response.json(await sendBuffered(env, bodies));
    }
    return new Response("not found", { status: 404 });
  },
};
