/**
 * The collector behind the shared-buffer example's `COLLECTOR` binding
 * (examples/cloudflare_worker/): records every batch it receives, with its
 * arrival time, so the end-to-end run (tests/workerd/shared_e2e.mjs) can
 * check exactly-once delivery, the number of flushes and how long each event
 * waited.
 *
 * - `POST /batch` with a JSON array of the example's events: records it.
 * - `GET /tally`: `{ batches: [{ arrivedAt, events: [{ id, sentAt, receivedAt }] }] }`,
 *   where `sentAt` is the client's send time (the event's `data.sentAt`).
 */

interface Arrival {
  arrivedAt: number;
  events: { id: string; sentAt: number | null; receivedAt: number }[];
}

const batches: Arrival[] = [];

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/batch") {
      // Read before the body: workerd's clock advances only between I/O events.
      const arrivedAt = Date.now();
      const batch = await request.json() as {
        id: string;
        receivedAt: number;
        data?: { sentAt?: number };
      }[];
      batches.push({
        arrivedAt,
        events: batch.map((event) => ({
          id: event.id,
          sentAt: event.data?.sentAt ?? null,
          receivedAt: event.receivedAt,
        })),
      });
      return new Response(null, { status: 204 });
    }
    if (request.method === "GET" && url.pathname === "/tally") {
      return Response.json({ batches });
    }
    return new Response("not found", { status: 404 });
  },
};
