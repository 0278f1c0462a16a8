// Scenario 7: JS peers on the same work: the same 10,000 numbers, batches of 100, a no-op sink.
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type SdkLogRecord,
} from "@opentelemetry/sdk-logs";
import { AsyncBatcher, Batcher } from "@tanstack/pacer";
import { type Cause, Effect, Fiber, Queue, Stream } from "effect";
import { bufferCount, Subject } from "rxjs";
import {
  CAPACITY,
  type Case,
  compare,
  ITEMS,
  RESOLVED,
  type Row,
  type Settings,
  throughputRow,
} from "./runner.ts";
import { awaitAdd } from "./single_producer.ts";
import { tryAdd } from "./try_add_add_all.ts";

const GROUP = "7 peers";

/** Items each peer's sink received, to catch a peer that drops or withholds items. */
const delivered = new Map<string, { sent: number; received: number }>();

function peer(
  name: string,
  build: (count: (batch: { length: number }) => void) => { run(): unknown; close?(): unknown },
): Case {
  return {
    name,
    items: ITEMS,
    setup: () => {
      const tally = { sent: 0, received: 0 };
      delivered.set(name, tally);
      const subject = build((batch) => {
        tally.received += batch.length;
      });
      return {
        run() {
          tally.sent += ITEMS;
          return subject.run();
        },
        close: subject.close,
      };
    },
  };
}

const rxjs = peer("RxJS 7 Subject + bufferCount(100), next(i)", (count) => {
  const subject = new Subject<number>();
  subject.pipe(bufferCount(CAPACITY)).subscribe(count);
  return {
    run() {
      for (let i = 0; i < ITEMS; i++) subject.next(i);
    },
    close: () => subject.complete(),
  };
});

const pacer = peer("TanStack Pacer Batcher(maxSize 100), addItem(i)", (count) => {
  const batcher = new Batcher<number>(count, { maxSize: CAPACITY });
  return {
    run() {
      for (let i = 0; i < ITEMS; i++) batcher.addItem(i);
    },
  };
});

const asyncPacer = peer("TanStack Pacer AsyncBatcher(maxSize 100), await addItem(i)", (count) => {
  const batcher = new AsyncBatcher<number>((batch) => {
    count(batch);
    return RESOLVED;
  }, { maxSize: CAPACITY });
  return {
    async run() {
      for (let i = 0; i < ITEMS; i++) await batcher.addItem(i);
    },
  };
});

const effect = peer(
  "Effect 4 Queue.bounded(200) + Stream.groupedWithin(100), offer(i)",
  (count) => {
    const program = Effect.gen(function* () {
      const queue = yield* Queue.bounded<number, Cause.Done>(2 * CAPACITY);
      const consumer = yield* Stream.fromQueue(queue).pipe(
        Stream.groupedWithin(CAPACITY, "1 minute"),
        Stream.runForEach((batch) => Effect.sync(() => count(batch))),
        Effect.forkChild,
      );
      for (let i = 0; i < ITEMS; i++) yield* Queue.offer(queue, i);
      yield* Queue.end(queue);
      yield* Fiber.join(consumer);
    });
    return { run: () => Effect.runPromise(program) };
  },
);

const otel = peer(
  "OpenTelemetry BatchLogRecordProcessor(100), onEmit + await",
  (count) => {
    const processor = new BatchLogRecordProcessor({
      exporter: {
        export: (records, done) => {
          count(records);
          done({ code: 0 });
        },
        shutdown: () => RESOLVED,
        forceFlush: () => RESOLVED,
      },
      maxExportBatchSize: CAPACITY,
      scheduledDelayMillis: 60_000,
    });
    const record = logRecord();
    return {
      // Exports run on promise callbacks, so the producer yields after each emit as add() does.
      async run() {
        for (let i = 0; i < ITEMS; i++) {
          processor.onEmit(record);
          await RESOLVED;
        }
      },
      close: () => processor.shutdown(),
    };
  },
);

/** A real SDK log record, made once: the processor is measured, not the logger. */
function logRecord(): SdkLogRecord {
  let record: SdkLogRecord | undefined;
  const provider = new LoggerProvider({
    processors: [{
      onEmit: (emitted) => void (record = emitted),
      forceFlush: () => RESOLVED,
      shutdown: () => RESOLVED,
    }],
  });
  provider.getLogger("bench").emit({ body: "event" });
  return record!;
}

export async function peers(settings: Settings): Promise<Row[]> {
  const cases = [awaitAdd, tryAdd, rxjs, pacer, effect, asyncPacer, otel];
  const ns = await compare(cases, settings);
  const oursAwait = { vs: "ours: await add", vsNs: ns.get(awaitAdd.name)!, max: 1 };
  const oursSync = { vs: "ours: tryAdd", vsNs: ns.get(tryAdd.name)!, max: 1 };
  const row = (c: Case, ours: typeof oursSync, backpressure: string) => {
    const tally = delivered.get(c.name)!;
    const lost = tally.sent - tally.received;
    const note = `${backpressure}${
      lost > 0 ? `; delivered ${tally.received} of ${tally.sent}` : ""
    }`;
    return throughputRow(GROUP, c.name, ns.get(c.name)!, ours, note);
  };
  return [
    throughputRow(
      GROUP,
      `ours: ${awaitAdd.name}`,
      ns.get(awaitAdd.name)!,
      undefined,
      "backpressure",
    ),
    throughputRow(GROUP, `ours: ${tryAdd.name}`, ns.get(tryAdd.name)!, undefined, "backpressure"),
    row(rxjs, oursSync, "**no backpressure** (unbounded)"),
    row(pacer, oursSync, "**no backpressure** (unbounded; copies the batch per item)"),
    row(effect, oursAwait, "backpressure (bounded queue suspends offer)"),
    row(asyncPacer, oursAwait, "**no backpressure** (unbounded; only the batch-filling add waits)"),
    row(otel, oursAwait, "**no backpressure** (drops beyond maxQueueSize 2048)"),
  ];
}
