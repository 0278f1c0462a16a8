/**
 * The collector behind the per-request Worker example's `COLLECTOR` binding:
 * counts every event id it receives, so the edge test can check that each
 * event arrived exactly once.
 *
 * - `POST /batch` with a JSON array of events: records them. It answers after
 *   a short timer, so that the example's flushes overlap and its producers
 *   feel backpressure.
 * - `GET /counts`: `{ batches, events, largestBatch, counts: { [id]: timesReceived } }`.
 */

const counts = new Map<string, number>();
let batches = 0;
let events = 0;
let largestBatch = 0;

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/batch") {
      const batch = await request.json() as { id: string }[];
      await new Promise((resolve) => setTimeout(resolve, 1));
      batches++;
      largestBatch = Math.max(largestBatch, batch.length);
      for (const event of batch) {
        events++;
        counts.set(event.id, (counts.get(event.id) ?? 0) + 1);
      }
      return new Response(null, { status: 204 });
    }
    if (request.method === "GET" && url.pathname === "/counts") {
      return Response.json({ batches, events, largestBatch, counts: Object.fromEntries(counts) });
    }
    return new Response("not found", { status: 404 });
  },
};
