// The child process of `unmask bench load`: builds one model the way the commands do and prints
// its own peak resident memory — measured in a fresh process, so that nothing the parent
// allocated counts. `load-child.js DIR [--quant int4|int4-lean]` loads a checkpoint folder (loadModel:
// validated, weights streamed into the session); `load-child.js --synthetic 7b --quant int4`
// builds the 7B shape from weights made on demand (no checkpoint on disk). Then one 32-token
// forward pass.

import { readFileSync } from "node:fs";
import { loadModel } from "../host/models.js";
import { OnnxModel } from "../model/engine.js";
import type { QuantType } from "../model/quant.js";
import type { LanguageModel } from "../model/types.js";
import { benchWeightReader } from "./forward.js";
import { qwen7BShape } from "./load.js";

export interface LoadChildReport {
  /** Resident memory before loading (node and onnxruntime themselves). */
  rss_before_bytes: number;
  /** Peak resident memory of the process over loading, session creation and the forward pass. */
  peak_rss_bytes: number;
  load_s: number;
  /** The first 32-token forward pass (with the session's first-run costs). */
  forward_s: number;
  /** The next one, the same. */
  forward_again_s: number;
}

/**
 * The process's own peak resident memory: Linux's VmHWM (of this program's address space), else
 * getrusage's maxRSS — which Linux carries over from the parent through fork and exec (a child of
 * a 3.5 GB process reported 3.5 GB), so it serves only where there is no /proc.
 */
function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m !== null) return Number(m[1]) * 1024;
  } catch {
    // no /proc: fall through
  }
  return process.resourceUsage().maxRSS * 1024;
}

const args = process.argv.slice(2);
const quantAt = args.indexOf("--quant");
const quant = quantAt >= 0 ? (args[quantAt + 1] as QuantType) : undefined;
const synthetic = args[0] === "--synthetic";
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
let model: LanguageModel;
if (synthetic) {
  model = await OnnxModel.create(qwen7BShape, benchWeightReader(qwen7BShape), { quant });
} else {
  model = (await loadModel(args[0], quant === undefined ? {} : { quant })).model;
}
const t1 = performance.now();
const tokens = Int32Array.from({ length: 32 }, (_, i) => 16 + i);
const forward = () =>
  model.forward({
    tokens,
    rows: 1,
    logitsAt: Int32Array.of(31),
    logits: false,
    stats: { topK: 1 },
  });
await forward();
const t2 = performance.now();
await forward();
const t3 = performance.now();
const report: LoadChildReport = {
  rss_before_bytes: rssBefore,
  peak_rss_bytes: peakRss(),
  load_s: (t1 - t0) / 1000,
  forward_s: (t2 - t1) / 1000,
  forward_again_s: (t3 - t2) / 1000,
};
await model.dispose();
process.stdout.write(`${JSON.stringify(report)}\n`);
