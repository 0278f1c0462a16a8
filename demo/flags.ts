// Command-line flags of the demo, parsed with node:util (no dependencies).
import { parseArgs } from "node:util";

/** The demo's settings, one per flag. */
export interface DemoOptions {
  items: number;
  producers: number;
  capacity: number;
  /** flushInterval, in milliseconds. */
  interval: number;
  /** maxConcurrentFlushes. */
  concurrency: number;
  /** The collector's delay per request, in milliseconds. */
  latency: number;
  /** The share of requests the collector answers with 503, from 0 to 1. */
  failRate: number;
  compare: boolean;
  help: boolean;
}

/** A flag the demo does not understand; main prints it and exits with code 2. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

interface NumberFlag {
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
  readonly help: string;
}

const NUMBER_FLAGS = {
  items: { default: 200_000, min: 1, max: 10_000_000, integer: true, help: "events to produce" },
  producers: { default: 8, min: 1, max: 1_000, integer: true, help: "concurrent producers" },
  capacity: { default: 500, min: 1, max: 100_000, integer: true, help: "items per batch" },
  interval: { default: 100, min: 1, max: 60_000, integer: false, help: "flushInterval in ms" },
  concurrency: {
    default: 4,
    min: 1,
    max: 256,
    integer: true,
    help: "maxConcurrentFlushes",
  },
  latency: {
    default: 10,
    min: 0,
    max: 10_000,
    integer: false,
    help: "collector delay per request, ms",
  },
  "fail-rate": {
    default: 0,
    min: 0,
    max: 1,
    integer: false,
    help: "share of requests answered 503",
  },
} as const satisfies Record<string, NumberFlag>;

type NumberFlagName = keyof typeof NUMBER_FLAGS;

/** The text `--help` prints. */
export const HELP: string = [
  "Usage: deno run -A demo/main.ts [flags]",
  "",
  "Producers add events to a BatchBuffer whose flush POSTs each batch to a",
  "local HTTP collector; the summary checks that every event arrived.",
  "",
  "Flags:",
  ...Object.entries(NUMBER_FLAGS).map(([name, flag]) =>
    `  --${name.padEnd(12)} ${flag.help} (default ${flag.default})`
  ),
  `  --${"compare".padEnd(12)} also send one request per item and compare throughputs`,
  `  --${"help".padEnd(12)} print this help`,
].join("\n");

function parseNumber(name: NumberFlagName, text: string | undefined): number {
  const flag: NumberFlag = NUMBER_FLAGS[name];
  if (text === undefined) return flag.default;
  const value = text.trim() === "" ? NaN : Number(text);
  const kind = flag.integer ? "an integer" : "a number";
  if (!Number.isFinite(value) || (flag.integer && !Number.isInteger(value))) {
    throw new FlagError(`--${name} must be ${kind}, received ${JSON.stringify(text)}`);
  }
  if (value < flag.min || value > flag.max) {
    throw new FlagError(
      `--${name} must be ${kind} from ${flag.min} to ${flag.max}, received ${text}`,
    );
  }
  return value;
}

/**
 * Parses the demo's flags (`--items 1000` or `--items=1000`).
 *
 * @throws {FlagError} on an unknown flag, a missing or malformed value, or a
 * value out of range.
 */
export function parseFlags(args: string[]): DemoOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(
          Object.keys(NUMBER_FLAGS).map((name) => [name, { type: "string" as const }]),
        ),
        compare: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new FlagError(error instanceof Error ? error.message : String(error));
  }
  const text = values as Record<string, string | undefined>;
  return {
    items: parseNumber("items", text.items),
    producers: parseNumber("producers", text.producers),
    capacity: parseNumber("capacity", text.capacity),
    interval: parseNumber("interval", text.interval),
    concurrency: parseNumber("concurrency", text.concurrency),
    latency: parseNumber("latency", text.latency),
    failRate: parseNumber("fail-rate", text["fail-rate"]),
    compare: values.compare === true,
    help: values.help === true,
  };
}
