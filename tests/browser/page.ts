/**
 * The browser page's script: runs the smoke suite on the bundled module and
 * POSTs the results to the runner (tests/browser/run.mjs) at /report.
 */
import { runSmokeSuite, type SmokeResult } from "./smoke_suite.ts";

let results: SmokeResult[];
try {
  results = await runSmokeSuite();
} catch (error) {
  results = [{ name: "the smoke suite runs", ok: false, error: String(error) }];
}
await fetch("/report", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ userAgent: navigator.userAgent, results }),
});
