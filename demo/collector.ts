// A stand-in for a real ingestion API: an HTTP server on loopback that accepts
// POSTed JSON batches (POST /batch) or single events (POST /event) and counts
// what it receives.

/** What producers send. */
export interface DemoEvent {
  id: number;
  producer: number;
  name: string;
  at: number;
}

/** Behaviour of the collector. */
export interface CollectorOptions {
  /** Delay before answering each request, in milliseconds. */
  latency: number;
  /** Share of requests answered with 503 (and not counted), from 0 to 1. */
  failRate: number;
}

/** A running collector and its counters. */
export interface Collector {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** Events received in accepted batches (duplicates included). */
  readonly received: number;
  /** Distinct event ids received in batches. */
  readonly uniqueIds: number;
  /** Batches accepted. */
  readonly batches: number;
  /** Single events accepted (POST /event, used by --compare). */
  readonly singles: number;
  /** Requests answered with 503. */
  readonly refused: number;
  /** Stops listening and waits for open requests to finish. */
  shutdown(): Promise<void>;
}

/** Starts a collector on a free loopback port. */
export function startCollector(options: CollectorOptions): Collector {
  const ids = new Set<number>();
  let received = 0;
  let batches = 0;
  let singles = 0;
  let refused = 0;

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (request.method !== "POST" || (path !== "/batch" && path !== "/event")) {
        return new Response("not found", { status: 404 });
      }
      const body = await request.json();
      if (options.latency > 0) await new Promise((r) => setTimeout(r, options.latency));
      if (Math.random() < options.failRate) {
        refused++;
        return new Response("try again", { status: 503 });
      }
      if (path === "/event") {
        singles++;
      } else {
        batches++;
        received += body.length;
        for (const event of body as DemoEvent[]) ids.add(event.id);
      }
      return new Response(null, { status: 204 });
    },
  );

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    get received() {
      return received;
    },
    get uniqueIds() {
      return ids.size;
    },
    get batches() {
      return batches;
    },
    get singles() {
      return singles;
    },
    get refused() {
      return refused;
    },
    shutdown: () => server.shutdown(),
  };
}
