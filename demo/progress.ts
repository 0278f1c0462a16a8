// Live progress: one line rewritten in place on a terminal (at most 10 times
// a second), plain periodic lines when the output is piped.
import { count } from "./stats.ts";

/** What the progress line shows, read from `buffer.stats()`. */
export interface ProgressSample {
  added: number;
  batches: number;
  itemsInChannel: number;
  flushesInFlight: number;
}

const encoder = new TextEncoder();
const CLEAR_LINE = "\r\x1b[2K";
const width = () => Deno.consoleSize().columns || 80;

/** Starts reporting; call the returned function to stop (and clear the live line). */
export function startProgress(sample: () => ProgressSample): () => void {
  const live = Deno.stdout.isTerminal();
  let last = { at: performance.now(), added: 0 };
  const report = () => {
    const now = performance.now();
    const s = sample();
    const perSecond = ((s.added - last.added) * 1000) / (now - last.at);
    last = { at: now, added: s.added };
    const line = `added ${count(s.added)} (${count(perSecond)}/s) | batches sent ${
      count(s.batches)
    } | in channel ${count(s.itemsInChannel)} | flushes in flight ${s.flushesInFlight}`;
    // A line wider than the terminal would wrap, and \r would only rewrite its tail.
    if (live) Deno.stdout.writeSync(encoder.encode(CLEAR_LINE + line.slice(0, width() - 1)));
    else console.log(line);
  };
  const timer = setInterval(report, live ? 100 : 1000);
  return () => {
    clearInterval(timer);
    if (live) Deno.stdout.writeSync(encoder.encode(CLEAR_LINE));
  };
}
