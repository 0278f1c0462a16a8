// Issue 13, point 8: send(item, options?) admits like add() (waits for room,
// obeys its signal, BufferClosedError after close), then resolves once a try
// carrying the item succeeded, or rejects with a DeliveryError when the item
// ends in onFlushError or is refused by canAdd / sizeOf / the byte budget.
import assert from "node:assert/strict";
import { BatchBuffer, BufferClosedError } from "../mod.ts";
import { test } from "./harness.ts";
import { deferred, track, withFakeClock } from "./helpers.ts";
import {
  assertDeliveryError,
  BackendError,
  drive,
  EXACT,
  fail,
  failFirstTry,
  recordFailures,
  recordTries,
} from "./delivery_helpers.ts";

test("send() resolves once a try carrying the item has succeeded, not when the item is accepted", () =>
  withFakeClock(async (clock) => {
    const gate = deferred();
    const buffer = new BatchBuffer<number>({ capacity: 1, flush: () => gate.promise });
    const running = buffer.run();
    const sending = buffer.send(1);
    const sent = track(sending);
    await clock.tickAsync(1_000);
    assert.equal(buffer.stats().added, 1, "accepted");
    assert.equal(sent.settled, false, "not delivered yet");
    gate.resolve();
    await clock.tickAsync(0);
    assert.deepEqual([sent.settled, sent.rejected], [true, false]);
    assert.equal(await sending, undefined);
    buffer.close();
    await drive(clock, running);
  }));

test("send() resolves only after the retry that delivered the item", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>(failFirstTry);
    const buffer = new BatchBuffer<number>({ capacity: 1, retry: EXACT, flush });
    const running = buffer.run();
    const sent = track(buffer.send(1));
    await clock.tickAsync(99);
    assert.equal(sent.settled, false, "the first try failed");
    await clock.tickAsync(1);
    assert.deepEqual([sent.settled, sent.rejected], [true, false]);
    buffer.close();
    await drive(clock, running);
  }));

test("after an outcome, sends of the delivered items resolve at once and retried ones after their retry", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>((batch, t) =>
      t.attempt === 1 ? { retry: batch.filter((item) => item === 2) } : undefined
    );
    const buffer = new BatchBuffer<number>({ capacity: 3, retry: EXACT, flush });
    const running = buffer.run();
    const sent = [1, 2, 3].map((item) => track(buffer.send(item)));
    await clock.tickAsync(0);
    assert.deepEqual(sent.map((s) => s.settled), [true, false, true]);
    await clock.tickAsync(100);
    assert.deepEqual(sent.map((s) => [s.settled, s.rejected]), [
      [true, false],
      [true, false],
      [true, false],
    ]);
    buffer.close();
    await drive(clock, running);
  }));

test("send() rejects with a DeliveryError carrying the item and the last error when it ends in onFlushError", () =>
  withFakeClock(async (clock) => {
    const errors: Error[] = [];
    const { flush } = recordTries<string>((_batch, t) => {
      errors.push(new BackendError(`try ${t.attempt}`));
      throw errors.at(-1);
    });
    const { failures, onFlushError } = recordFailures<string>();
    const buffer = new BatchBuffer<string>({
      capacity: 2,
      retry: { ...EXACT, attempts: 2 },
      flush,
      onFlushError,
    });
    const running = buffer.run();
    const sent = ["a", "b"].map((item) => track(buffer.send(item)));
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(failures.map((f) => f.batch), [["a", "b"]], "onFlushError still gets them");
    for (const [i, item] of ["a", "b"].entries()) {
      assert.equal(sent[i].rejected, true);
      assert.equal(assertDeliveryError(sent[i].error, item), errors[1], "cause: the last error");
    }
  }));

test("without retry, send() rejects with a DeliveryError whose cause is the flush's error", () =>
  withFakeClock(async (clock) => {
    const error = new BackendError("500");
    const buffer = new BatchBuffer<number>({
      flush: () => Promise.reject(error),
      onFlushError: () => {},
    });
    const running = buffer.run();
    const sent = track(buffer.send(1));
    buffer.close();
    await drive(clock, running);
    assert.equal(assertDeliveryError(sent.error, 1), error);
  }));

test("a partial failure rejects exactly the sends of the items that failed", () =>
  withFakeClock(async (clock) => {
    const error = new BackendError("ProvisionedThroughputExceededException");
    const buffer = new BatchBuffer<number>({
      capacity: 3,
      flush: (batch) => ({ retry: batch.filter((item) => item === 2), error }),
      onFlushError: () => {},
    });
    const running = buffer.run();
    const sent = [1, 2, 3].map((item) => track(buffer.send(item)));
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(sent.map((s) => s.rejected), [false, true, false]);
    assert.equal(assertDeliveryError(sent[1].error, 2), error);
  }));

test("a send() whose try timed out rejects with a DeliveryError caused by the TimeoutError", () =>
  withFakeClock(async (clock) => {
    const buffer = new BatchBuffer<number>({
      flushTimeout: 50,
      flush: () => new Promise(() => {}),
      onFlushError: () => {},
    });
    const running = buffer.run();
    const sent = track(buffer.send(1));
    buffer.close();
    await drive(clock, running);
    const cause = assertDeliveryError(sent.error, 1);
    assert.ok(cause instanceof DOMException);
    assert.equal(cause.name, "TimeoutError");
  }));

test("send() refused by canAdd rejects with a DeliveryError, and onReject still gets the item", () =>
  withFakeClock(async (clock) => {
    const rejected: number[] = [];
    const { tries, flush } = recordTries<number>();
    const buffer = new BatchBuffer<number>({
      canAdd: (_batch, item) => item !== 2,
      onReject: (item) => void rejected.push(item),
      flush,
    });
    const running = buffer.run();
    const sent = [1, 2, 3].map((item) => track(buffer.send(item)));
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(rejected, [2]);
    assert.deepEqual(tries.map((t) => t.batch), [[1, 3]]);
    assert.deepEqual(sent.map((s) => s.rejected), [false, true, false]);
    const cause = assertDeliveryError(sent[1].error, 2);
    assert.ok(cause instanceof Error && cause.message.length > 0, "cause says why");
    assert.equal(buffer.stats().rejected, 1);
  }));

test("send() refused by sizeOf or the byte budget rejects with a DeliveryError, and onReject gets the item", () =>
  withFakeClock(async (clock) => {
    const rejected: number[] = [];
    const buffer = new BatchBuffer<number>({
      sizeOf: (item) => (item < 0 ? NaN : item),
      maxBatchBytes: 10,
      onReject: (item) => void rejected.push(item),
      onError: () => {},
      flush: () => {},
    });
    const running = buffer.run();
    const sent = [3, -1, 11, 4].map((item) => track(buffer.send(item)));
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(rejected, [-1, 11]);
    assert.deepEqual(sent.map((s) => s.rejected), [false, true, true, false]);
    for (const [i, item] of [[1, -1], [2, 11]]) {
      assert.ok(assertDeliveryError(sent[i].error, item) instanceof Error);
    }
  }));

test("send() after close() rejects with BufferClosedError carrying the item", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  buffer.close();
  await assert.rejects(
    buffer.send(7),
    (error) => error instanceof BufferClosedError && error.item === 7,
  );
  await buffer[Symbol.asyncDispose]();
});

test("send() waits for room, and one still waiting rejects with BufferClosedError on close()", () =>
  withFakeClock(async (clock) => {
    const gate = deferred();
    const buffer = new BatchBuffer<number>({ capacity: 1, chanSize: 1, flush: () => gate.promise });
    const running = buffer.run();
    const first = track(buffer.send(1)); // in flight
    const second = track(buffer.send(2)); // in the channel
    const third = track(buffer.send(3)); // waits for room
    await clock.tickAsync(0);
    assert.deepEqual([buffer.stats().added, third.settled], [2, false]);
    buffer.close();
    await clock.tickAsync(0);
    assert.equal(third.rejected, true);
    assert.ok(third.error instanceof BufferClosedError);
    assert.equal(third.error.item, 3);
    gate.resolve();
    await drive(clock, running);
    assert.deepEqual([first, second].map((s) => [s.settled, s.rejected]), [[true, false], [
      true,
      false,
    ]]);
  }));

test("send() obeys its signal while it waits for room; the item is not queued", () =>
  withFakeClock(async (clock) => {
    const gate = deferred();
    const { tries, flush } = recordTries<number>(() => gate.promise);
    const buffer = new BatchBuffer<number>({ capacity: 1, chanSize: 1, flush });
    const running = buffer.run();
    void buffer.send(1);
    void buffer.send(2);
    const reason = new Error("gave up waiting");
    const controller = new AbortController();
    const waiting = track(buffer.send(3, { signal: controller.signal }));
    const before = track(buffer.send(4, { signal: AbortSignal.abort(reason) }));
    await clock.tickAsync(0);
    assert.equal(before.error, reason, "an aborted signal rejects at once with its reason");
    controller.abort(reason);
    await clock.tickAsync(0);
    assert.equal(waiting.error, reason);
    assert.equal(buffer.stats().added, 2);
    gate.resolve();
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(tries.map((t) => t.batch), [[1], [2]]);
  }));

test("send()'s signal only bounds the wait for room: aborting it after acceptance does not cancel delivery", () =>
  withFakeClock(async (clock) => {
    const gate = deferred();
    const buffer = new BatchBuffer<number>({ flush: () => gate.promise });
    const running = buffer.run();
    const controller = new AbortController();
    const sent = track(buffer.send(1, { signal: controller.signal }));
    void buffer.flush();
    await clock.tickAsync(0);
    controller.abort();
    gate.resolve();
    await clock.tickAsync(0);
    assert.deepEqual([sent.settled, sent.rejected], [true, false]);
    buffer.close();
    await drive(clock, running);
  }));

test("send() rejects with a TypeError for a signal that is not an AbortSignal, like add()", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  await assert.rejects(
    buffer.send(1, { signal: "soon" as unknown as AbortSignal }),
    TypeError,
  );
  assert.equal(buffer.stats().added, 0);
  await buffer[Symbol.asyncDispose]();
});

test("add() and send() mix in one buffer, with retries", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(failFirstTry);
    const buffer = new BatchBuffer<number>({ capacity: 2, chanSize: 4, retry: EXACT, flush });
    const running = buffer.run();
    await buffer.add(1);
    const second = track(buffer.send(2));
    await buffer.add(3); // accepted at once although [1, 2] is backing off
    const fourth = track(buffer.send(4));
    await clock.tickAsync(0);
    assert.equal(second.settled, false);
    await drive(clock, buffer.flush(), "flush()");
    assert.deepEqual([second, fourth].map((s) => [s.settled, s.rejected]), [[true, false], [
      true,
      false,
    ]]);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(tries.map((t) => [t.batch, t.attempt]), [
      [[1, 2], 1],
      [[1, 2], 2],
      [[3, 4], 1],
      [[3, 4], 2],
    ]);
    assert.equal(buffer.stats().flushedItems, 4);
  }));

test("send() of equal values settles each call", () =>
  withFakeClock(async (clock) => {
    let calls = 0;
    const buffer = new BatchBuffer<number>({
      capacity: 2,
      flush: () => {
        if (calls++ === 1) fail("second batch fails");
      },
      onFlushError: () => {},
    });
    const running = buffer.run();
    const sent = [7, 7, 7, 7].map((item) => track(buffer.send(item)));
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(sent.map((s) => [s.settled, s.rejected]), [
      [true, false],
      [true, false],
      [true, true],
      [true, true],
    ]);
  }));

test("send() before run() waits in the channel and resolves once run() delivered the item", () =>
  withFakeClock(async (clock) => {
    const buffer = new BatchBuffer<number>({ flush: () => {} });
    const sent = track(buffer.send(1));
    await clock.tickAsync(0);
    assert.deepEqual([buffer.stats().itemsInChannel, sent.settled], [1, false]);
    const running = buffer.run();
    buffer.close();
    await drive(clock, running);
    assert.deepEqual([sent.settled, sent.rejected], [true, false]);
  }));

test("send() with dispose and no run() resolves after the drain", () =>
  withFakeClock(async (clock) => {
    const buffer = new BatchBuffer<number>({ flush: () => Promise.resolve() });
    const sent = track(buffer.send(1));
    await drive(clock, buffer[Symbol.asyncDispose](), "dispose");
    assert.deepEqual([sent.settled, sent.rejected], [true, false]);
  }));
