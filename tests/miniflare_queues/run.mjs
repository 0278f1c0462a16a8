#!/usr/bin/env node
// Checks CLOUDFLARE_QUEUES_SEND_BATCH against Miniflare's real Queues
// (`npm run test:edge-recipes`). Miniflare 4.20260426.0 runs its own workerd
// (1.20260426.1) and implements Queues locally: a producer Worker
// (producer.ts, with the package bundled in by esbuild) and a consumer Worker
// (consumer.ts) whose queue() handler reports every message to this script.
//
// 1. What sendBatch refuses, at the exact boundaries: a message's JSON bytes
//    (UTF-8, so multibyte text counts by bytes, not by length), a batch's bytes,
//    the message count, and the "v8" content type's larger measure. The preset
//    must stay within every limit found.
// 2. Mixed bodies up to and over 128 KB (1- to 4-byte characters) through a
//    BatchBuffer spread from the preset, flushing with sendBatch: no sendBatch
//    is refused, the oversize bodies and one body JSON cannot carry reach
//    onReject, and every accepted body is consumed exactly once, intact.
//
// Prints `miniflare-queues: N passed, M failed` and exits non-zero on failure.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { Miniflare } from "miniflare";

const here = dirname(fileURLToPath(import.meta.url));
const COMPATIBILITY_DATE = "2026-01-01"; // after 2024-03-18: "json" is the default content type
const DELIVERY_DEADLINE_MS = 20_000;
const RUN_TIMEOUT_MS = 60_000;

const started = performance.now();
const watchdog = setTimeout(() => {
  console.error(`miniflare-queues: no result after ${RUN_TIMEOUT_MS} ms`);
  process.exit(1);
}, RUN_TIMEOUT_MS);

async function bundle(entry) {
  const result = await esbuild.build({
    entryPoints: [join(here, entry)],
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["node:*", "cloudflare:*"],
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

/** Every message the consumer reported: id -> JSON sizes it arrived with. */
const consumed = new Map();
let consumerBatches = 0;

const mf = new Miniflare({
  workers: [
    {
      name: "producer",
      modules: true,
      script: await bundle("producer.ts"),
      compatibilityDate: COMPATIBILITY_DATE,
      queueProducers: { QUEUE: "events" },
    },
    {
      name: "consumer",
      modules: true,
      script: await bundle("consumer.ts"),
      compatibilityDate: COMPATIBILITY_DATE,
      queueConsumers: { events: { maxBatchSize: 100, maxBatchTimeout: 0, maxRetries: 0 } },
      serviceBindings: {
        async SINK(request) {
          consumerBatches++;
          for (const { id, bytes } of await request.json()) {
            consumed.set(id, [...(consumed.get(id) ?? []), bytes]);
          }
          return new Response(null, { status: 204 });
        },
      },
    },
  ],
});

const utf8 = (text) => Buffer.byteLength(text, "utf8");
const jsonBytes = (body) => utf8(JSON.stringify(body));

/**
 * A body `{ id, text }` whose JSON is exactly `bytes` UTF-8 bytes, its text
 * made of `char` (1 to 4 bytes) and ASCII padding.
 */
function sized(id, bytes, char = "a") {
  const overhead = jsonBytes({ id, text: "" });
  const width = utf8(char);
  const count = Math.floor((bytes - overhead) / width);
  const body = { id, text: char.repeat(count) + "a".repeat(bytes - overhead - count * width) };
  assert.equal(jsonBytes(body), bytes);
  return body;
}

async function post(path, payload) {
  const response = await mf.dispatchFetch(`http://producer${path}`, {
    method: "POST",
    body: JSON.stringify(payload),
  });
  assert.equal(response.status, 200, `${path} answered ${response.status}`);
  return await response.json();
}

/** The preset's numbers, read from the bundled package (Node 20 cannot import .ts). */
const PRESET = await (await mf.dispatchFetch("http://producer/preset")).json();

const sendBatch = (bodies, contentType) => post("/send-batch", { bodies, contentType });

let passed = 0;
let failed = 0;
async function check(name, body) {
  try {
    const detail = await body();
    passed++;
    console.log(`CHECK ok ${name}${detail ? `: ${detail}` : ""}`);
  } catch (error) {
    failed++;
    console.log(`CHECK FAIL ${name}: ${error?.stack ?? error}`);
  }
}

/** Asserts that sendBatch takes `accepted` and refuses `refused`; returns the refusal. */
async function boundary(accepted, refused, contentType) {
  const ok = await sendBatch(accepted, contentType);
  assert.deepEqual(ok, { ok: true }, "the batch at the limit is taken");
  const no = await sendBatch(refused, contentType);
  assert.equal(no.ok, false, "the batch one over the limit is refused");
  return no.error;
}

const measured = {};
await check("sendBatch refuses a message over 128,000 JSON bytes, counted in UTF-8", async () => {
  // "€" is 3 bytes in UTF-8 but 1 UTF-16 unit: a length-based count would pass 128,001 bytes.
  const error = await boundary([sized("m", 128_000, "€")], [sized("m", 128_001, "€")]);
  assert.match(error, /message in batch has length 128001 bytes/);
  measured.message = 128_000;
  return error;
});
await check("sendBatch refuses a batch over 288,000 bytes", async () => {
  const at = [sized("b1", 96_000, "😀"), sized("b2", 96_000, "é"), sized("b3", 96_000)];
  const over = [sized("b1", 96_000, "😀"), sized("b2", 96_000, "é"), sized("b3", 96_001)];
  const error = await boundary(at, over);
  assert.match(error, /batch size of 288001 bytes/);
  measured.batch = 288_000;
  return error;
});
await check("sendBatch refuses more than 100 messages", async () => {
  const tiny = (n) => Array.from({ length: n }, (_, i) => ({ id: `c${i}` }));
  const error = await boundary(tiny(100), tiny(101));
  assert.match(error, /batch message count of 101/);
  measured.count = 100;
  return error;
});
await check(
  'content type "v8" counts a non-Latin-1 string twice: JSON bytes undercount it',
  async () => {
    const body = sized("v", 70_001, "a");
    body.text = "€" + body.text.slice(3); // still 70,001 JSON bytes
    assert.equal(jsonBytes(body), 70_001);
    assert.deepEqual(await sendBatch([body], "json"), { ok: true });
    const refused = await sendBatch([body], "v8");
    assert.equal(refused.ok, false);
    const v8Bytes = Number(/has length (\d+) bytes/.exec(refused.error)?.[1]);
    assert.ok(v8Bytes > 1.9 * 70_001, `${v8Bytes} bytes in V8 form`);
    measured.v8 = v8Bytes;
    return `70,001 JSON bytes are ${v8Bytes} bytes as "v8": ${refused.error}`;
  },
);
await check("the preset stays within every limit sendBatch enforces", () => {
  assert.ok(PRESET.maxItemBytes <= measured.message, `maxItemBytes ${PRESET.maxItemBytes}`);
  assert.ok(PRESET.maxBatchBytes <= measured.batch, `maxBatchBytes ${PRESET.maxBatchBytes}`);
  assert.ok(PRESET.capacity <= measured.count, `capacity ${PRESET.capacity}`);
  return `capacity ${PRESET.capacity} <= ${measured.count}, maxBatchBytes ${PRESET.maxBatchBytes} ` +
    `<= ${measured.batch}, maxItemBytes ${PRESET.maxItemBytes} <= ${measured.message}`;
});

// The probes above delivered messages too; the buffered run starts from a clean count.
const probeIds = ["m", "b1", "b2", "b3", "v", ...Array.from({ length: 100 }, (_, i) => `c${i}`)];
await waitFor(() => probeIds.every((id) => consumed.has(id)));
consumed.clear();

await check(
  "mixed bodies through the preset: none refused, oversize ones rejected, each consumed once",
  async () => {
    // A fixed mix (seeded LCG) of 1- to 4-byte characters and sizes: small, near the
    // batch limit's share, just under and over maxItemBytes, and over 128,000.
    let seed = 0x2545f491;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const chars = ["a", "é", "€", "😀"];
    const ranges = [[40, 2_000], [2_000, 40_000], [100_000, 127_900], [127_901, 128_000], [
      128_001,
      140_000,
    ]];
    const bodies = [];
    for (let i = 0; i < 300; i++) {
      const [low, high] = ranges[i % 5 === 0 ? Math.floor(random() * 5) : Math.floor(random() * 2)];
      const bytes = low + Math.floor(random() * (high - low + 1));
      bodies.push(sized(`e${i}`, bytes, chars[Math.floor(random() * chars.length)]));
    }
    bodies.push(sized("edge-at-limit", PRESET.maxItemBytes, "€"));
    bodies.push(sized("edge-over-limit", PRESET.maxItemBytes + 1, "😀"));
    bodies.push({ id: "no-json", bigint: true });
    const expectedRejected = bodies
      .filter((body) => body.bigint || jsonBytes(body) > PRESET.maxItemBytes)
      .map((body) => body.id);
    const accepted = bodies.filter((body) => !expectedRejected.includes(body.id));

    // Four requests, two at a time, each with its own buffer.
    const reports = [];
    const chunks = [0, 1, 2, 3].map((k) => bodies.filter((_, i) => i % 4 === k));
    for (let k = 0; k < chunks.length; k += 2) {
      reports.push(
        ...await Promise.all(
          chunks.slice(k, k + 2).map((chunk) => post("/buffered", { bodies: chunk })),
        ),
      );
    }
    const batches = reports.flatMap((report) => report.batches);
    assert.deepEqual(reports.flatMap((report) => report.flushErrors), [], "no sendBatch refused");
    assert.deepEqual(
      reports.flatMap((report) => report.rejected).sort(),
      [...expectedRejected].sort(),
      "exactly the oversize bodies and the one without JSON text reached onReject",
    );
    for (const batch of batches) {
      assert.ok(batch.count <= PRESET.capacity, `a batch of ${batch.count} messages`);
      assert.ok(batch.bytes <= PRESET.maxBatchBytes, `a batch of ${batch.bytes} bytes`);
    }
    assert.ok(batches.some((batch) => batch.reason === "overflow"), "the byte limit was reached");
    assert.equal(batches.reduce((sum, batch) => sum + batch.count, 0), accepted.length);

    await waitFor(() => accepted.every((body) => consumed.has(body.id)));
    const missing = accepted.filter((body) => !consumed.has(body.id)).map((body) => body.id);
    assert.deepEqual(missing, [], "every accepted body was consumed");
    for (const body of accepted) {
      assert.deepEqual(
        consumed.get(body.id),
        [jsonBytes(body)],
        `${body.id} consumed once, intact`,
      );
    }
    const unexpected = [...consumed.keys()].filter((id) => expectedRejected.includes(id));
    assert.deepEqual(unexpected, [], "no rejected body was consumed");
    const largest = Math.max(...batches.map((batch) => batch.bytes));
    return `${bodies.length} bodies (${accepted.length} accepted, ${expectedRejected.length} ` +
      `rejected) in ${batches.length} sendBatch calls (largest ${largest} bytes), consumed exactly ` +
      `once in ${consumerBatches} consumer batches`;
  },
);

async function waitFor(done) {
  const deadline = Date.now() + DELIVERY_DEADLINE_MS;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

await mf.dispose();
clearTimeout(watchdog);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`miniflare-queues: ${passed} passed, ${failed} failed (${seconds} s)`);
process.exit(failed > 0 ? 1 : 0);
