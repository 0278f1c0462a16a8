import assert from "node:assert/strict";
import { DeadlineTimer } from "../src/deadline_timer.ts";
import { withFakeClock } from "./helpers.ts";
import { test } from "./harness.ts";

const MAX_TIMEOUT = 2 ** 31 - 1;

test("DeadlineTimer fires once, exactly after its delay", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(1000, () => void fired++);
    timer.start();
    await clock.tickAsync(999);
    assert.equal(fired, 0);
    await clock.tickAsync(1);
    assert.equal(fired, 1);
    await clock.tickAsync(10_000);
    assert.equal(fired, 1, "a one-shot timer does not repeat");
    assert.equal(clock.countTimers(), 0);
  });
});

test("DeadlineTimer.stop() prevents the call and clears the timeout before the next task", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(1000, () => void fired++);
    timer.start();
    await clock.tickAsync(500);
    timer.stop();
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0);
    await clock.tickAsync(10_000);
    assert.equal(fired, 0);
    timer.stop(); // stopping an idle timer is harmless
    timer.clear();
    assert.equal(fired, 0);
  });
});

test("DeadlineTimer.stop() just before the deadline still prevents the call", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(1000, () => void fired++);
    timer.start();
    await clock.tickAsync(999);
    timer.stop();
    await clock.tickAsync(1); // the lingering timeout, if still there, must not call back
    assert.equal(fired, 0);
    assert.equal(clock.countTimers(), 0);
  });
});

test("DeadlineTimer.clear() prevents the call and removes the timeout at once", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(1000, () => void fired++);
    timer.start();
    timer.clear();
    assert.equal(clock.countTimers(), 0);
    await clock.tickAsync(10_000);
    assert.equal(fired, 0);
  });
});

test("DeadlineTimer.start() while pending moves the deadline to delay from now", async () => {
  await withFakeClock(async (clock) => {
    const firedAt: number[] = [];
    const timer = new DeadlineTimer(1000, () => void firedAt.push(clock.now));
    timer.start();
    await clock.tickAsync(600);
    timer.start();
    assert.equal(clock.countTimers(), 1, "the deadline moved; no second timeout was added");
    await clock.tickAsync(10_000);
    assert.deepEqual(firedAt, [1600]);
  });
});

test("DeadlineTimer.stop() then start() in the same turn fires delay after the new start", async () => {
  await withFakeClock(async (clock) => {
    const firedAt: number[] = [];
    const timer = new DeadlineTimer(1000, () => void firedAt.push(clock.now));
    timer.start();
    await clock.tickAsync(300);
    timer.stop();
    timer.start();
    await clock.tickAsync(0); // lets stop()'s deferred sweep run; it must not clear the timeout
    assert.equal(clock.countTimers(), 1, "one timeout, reused");
    await clock.tickAsync(10_000);
    assert.deepEqual(firedAt, [1300]);
  });
});

test("DeadlineTimer can be started again after it fired", async () => {
  await withFakeClock(async (clock) => {
    const firedAt: number[] = [];
    const timer = new DeadlineTimer(100, () => void firedAt.push(clock.now));
    timer.start();
    await clock.tickAsync(150);
    timer.start();
    await clock.tickAsync(500);
    assert.deepEqual(firedAt, [100, 250]);
  });
});

test("DeadlineTimer with an Infinity delay never schedules a timeout", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(Infinity, () => void fired++);
    timer.start();
    assert.equal(clock.countTimers(), 0);
    await clock.tickAsync(2 ** 40);
    assert.equal(fired, 0);
    timer.stop();
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0);
  });
});

test("DeadlineTimer with a delay above 2**31-1 ms fires at the full delay, not early", async () => {
  await withFakeClock(async (clock) => {
    const delay = 2 ** 31 + 1000;
    let fired = 0;
    const timer = new DeadlineTimer(delay, () => void fired++);
    timer.start();
    await clock.tickAsync(MAX_TIMEOUT);
    assert.equal(fired, 0);
    await clock.tickAsync(1); // 2**31 ms: a runtime that clamps the delay would have fired by now
    assert.equal(fired, 0);
    assert.equal(clock.countTimers(), 1, "one timeout at a time, even for a long delay");
    await clock.tickAsync(delay - 2 ** 31 - 1);
    assert.equal(fired, 0);
    await clock.tickAsync(1);
    assert.equal(fired, 1);
    assert.equal(clock.countTimers(), 0);
  });
});

test("DeadlineTimer with a 2**40 ms delay fires exactly at 2**40 ms", async () => {
  await withFakeClock(async (clock) => {
    let firedAt = -1;
    const timer = new DeadlineTimer(2 ** 40, () => void (firedAt = clock.now));
    timer.start();
    await clock.tickAsync(2 ** 40 - 1);
    assert.equal(firedAt, -1);
    await clock.tickAsync(1);
    assert.equal(firedAt, 2 ** 40);
  });
});

test("DeadlineTimer restarted during a long multi-step delay fires delay after the restart", async () => {
  await withFakeClock(async (clock) => {
    const delay = 3 * MAX_TIMEOUT;
    const firedAt: number[] = [];
    const timer = new DeadlineTimer(delay, () => void firedAt.push(clock.now));
    timer.start();
    await clock.tickAsync(MAX_TIMEOUT + 10); // now in the second step
    timer.start();
    await clock.tickAsync(delay - 1);
    assert.deepEqual(firedAt, []);
    await clock.tickAsync(1);
    assert.deepEqual(firedAt, [MAX_TIMEOUT + 10 + delay]);
  });
});

test("DeadlineTimer.stop() during a long multi-step delay stops it", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(3 * MAX_TIMEOUT, () => void fired++);
    timer.start();
    await clock.tickAsync(MAX_TIMEOUT + 10); // now in the second step
    timer.stop();
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0);
    await clock.tickAsync(5 * MAX_TIMEOUT);
    assert.equal(fired, 0);
  });
});

test("DeadlineTimer uses a fake clock installed after it was constructed", async () => {
  let fired = 0;
  const timer = new DeadlineTimer(1000, () => void fired++);
  await withFakeClock(async (clock) => {
    timer.start();
    assert.equal(clock.countTimers(), 1);
    await clock.tickAsync(1000);
    assert.equal(fired, 1);
  });
});

test("DeadlineTimer keeps a moved deadline when the wall clock jumps back or forward", async () => {
  for (const jump of [-3_600_000, 3_600_000]) {
    await withFakeClock(async (clock) => {
      const firedAfter: number[] = [];
      const started = performance.now();
      const timer = new DeadlineTimer(
        1000,
        () => void firedAfter.push(performance.now() - started),
      );
      timer.start();
      await clock.tickAsync(300);
      timer.stop();
      timer.start(); // reuses the pending timeout, so the deadline is recomputed when it fires
      clock.setSystemTime(Date.now() + jump); // e.g. an NTP step; monotonic time goes on
      await clock.tickAsync(2 * 3_600_000);
      timer.clear();
      assert.deepEqual(firedAfter, [1300], `wall clock jumped by ${jump} ms`);
    });
  }
});

test("DeadlineTimer.stop() clears a timer at once unless it was restarted right after a stop", async () => {
  await withFakeClock(async (clock) => {
    const timer = new DeadlineTimer(1000, () => {});
    timer.start();
    timer.stop(); // cold: nothing to reuse yet
    assert.equal(clock.countTimers(), 0, "a cold stop clears at once");
    timer.start(); // within two turns of the stop: the timer is now hot
    assert.equal(clock.countTimers(), 1);
    timer.stop();
    assert.equal(clock.countTimers(), 1, "a hot stop lingers so the next start can reuse it");
    await Promise.resolve();
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(clock.countTimers(), 0, "cleared before any other task runs");
    timer.start(); // long after the stop: cold again
    timer.stop();
    assert.equal(clock.countTimers(), 0);
    timer.clear();
  });
});

test("DeadlineTimer reuses one timeout while starts follow stops back to back", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(1000, () => void fired++);
    for (let round = 0; round < 50; round++) {
      timer.start();
      assert.ok(clock.countTimers() <= 1, "never more than one timeout");
      timer.stop();
      await Promise.resolve(); // one turn, as between a producer's awaited adds
    }
    timer.start();
    await clock.tickAsync(999);
    assert.equal(fired, 0, "the reused timeout waits a full delay from the last start");
    await clock.tickAsync(1);
    assert.equal(fired, 1);
    assert.equal(clock.countTimers(), 0);
  });
});

test("DeadlineTimer.park() keeps its timeout for the next start, however late it comes", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(1000, () => void fired++);
    timer.start();
    timer.park(); // cold, and no start follows within two turns
    for (let i = 0; i < 5; i++) await Promise.resolve();
    assert.equal(clock.countTimers(), 1, "a parked timeout stays pending");
    await clock.tickAsync(600);
    timer.start(); // reuses the parked timeout: its deadline moves to 1600
    assert.equal(clock.countTimers(), 1);
    await clock.tickAsync(999);
    assert.equal(fired, 0, "the restarted deadline is a full delay from the start");
    await clock.tickAsync(1);
    assert.equal(fired, 1);
    assert.equal(clock.countTimers(), 0);
  });
});

test("DeadlineTimer parked and never restarted calls nothing, and clear() clears it", async () => {
  await withFakeClock(async (clock) => {
    let fired = 0;
    const timer = new DeadlineTimer(1000, () => void fired++);
    timer.start();
    timer.park();
    await clock.tickAsync(5_000);
    assert.equal(fired, 0, "a parked timeout that fires calls nothing");
    assert.equal(clock.countTimers(), 0, "and is gone");
    timer.start();
    timer.park();
    timer.clear();
    assert.equal(clock.countTimers(), 0, "clear() clears a parked timeout at once");
    await clock.tickAsync(5_000);
    assert.equal(fired, 0);
  });
});

test("DeadlineTimer without reuse parks as it stops: its timeout is cleared at once", async () => {
  await withFakeClock(async (clock) => {
    const timer = new DeadlineTimer(1000, () => {}, false);
    timer.start();
    timer.park();
    assert.equal(clock.countTimers(), 0);
    await clock.tickAsync(5_000);
    assert.equal(clock.countTimers(), 0);
  });
});
