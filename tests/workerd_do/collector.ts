/**
 * The collector behind the Durable Object example's `COLLECTOR` binding:
 * counts every event id it receives, so the driver can check that each event
 * arrived exactly once.
 *
 * - `POST /batch` with a JSON array of events (header `x-flush-reason`):
 *   records them. It answers after a short timer, so that flushes overlap.
 * - `GET /counts`: `{ batches, events, largestBatch, reasons, counts, batchesOf }`
 *   where `counts[id]` is how often `id` arrived and `batchesOf[id]` the
 *   reason of the batch that carried it.
 */

const counts = new Map<string, number>();
const reasonOf = new Map<string, string>();
const reasons: Record<string, number> = {};
let batches = 0;
let events = 0;
let largestBatch = 0;

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/batch") {
      const batch = await request.json() as { id: string }[];
      const reason = request.headers.get("x-flush-reason") ?? "unknown";
      await new Promise((resolve) => setTimeout(resolve, 1));
      batches++;
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      largestBatch = Math.max(largestBatch, batch.length);
      for (const event of batch) {
        events++;
        counts.set(event.id, (counts.get(event.id) ?? 0) + 1);
        reasonOf.set(event.id, reason);
      }
      return new Response(null, { status: 204 });
    }
    if (request.method === "GET" && url.pathname === "/counts") {
      return Response.json({
        batches,
        events,
        largestBatch,
        reasons,
        counts: Object.fromEntries(counts),
        batchesOf: Object.fromEntries(reasonOf),
      });
    }
    return new Response("not found", { status: 404 });
  },
};
