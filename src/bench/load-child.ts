// The child process of `unmask bench load`: loads one checkpoint folder the way every command
// does (loadModel: validated, weights streamed into the session; quantized while loading when a
// quant type follows the folder), runs one 32-token forward pass,
// and prints its own peak resident memory — measured in a fresh process, so that nothing the
// parent allocated counts.

import { loadModel } from "../host/models.js";
import { type QuantType, quantTypes } from "../model/quant.js";

export interface LoadChildReport {
  /** Resident memory before loading (node and onnxruntime themselves). */
  rss_before_bytes: number;
  /** Peak resident memory of the process over loading, session creation and the forward pass. */
  peak_rss_bytes: number;
  load_s: number;
  forward_s: number;
}

const [dir, quant] = process.argv.slice(2);
if (dir === undefined || (quant !== undefined && !quantTypes.includes(quant as QuantType))) {
  process.stderr.write("usage: load-child.js CHECKPOINT_DIR [int8|int4]\n");
  process.exit(2);
}
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
const loaded = await loadModel(dir, quant === undefined ? {} : { quant: quant as QuantType });
const t1 = performance.now();
const tokens = Int32Array.from({ length: 32 }, (_, i) => 16 + i);
await loaded.model.forward({
  tokens,
  rows: 1,
  logitsAt: Int32Array.of(31),
  logits: false,
  stats: { topK: 1 },
});
const t2 = performance.now();
const report: LoadChildReport = {
  rss_before_bytes: rssBefore,
  peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  load_s: (t1 - t0) / 1000,
  forward_s: (t2 - t1) / 1000,
};
await loaded.model.dispose();
process.stdout.write(`${JSON.stringify(report)}\n`);
