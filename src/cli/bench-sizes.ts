// `unmask bench sizes`: a diffusion step's cost against an AR token across model sizes, beside
// the roofline estimate (src/bench/sizes.ts), as a table, JSON and a plot.

import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { bench110M, benchQwen05B } from "../bench/forward.js";
import { benchSizes, type SizeRow } from "../bench/sizes.js";
import { defaultModelName } from "../host/models.js";
import { parseModelConfig } from "../model/config.js";
import { type Series, writePlot } from "../train/plot.js";
import { intOption, stringOption, UsageError } from "./args.js";
import type { Bench } from "./bench.js";
import { packageRoot } from "./package.js";

export const sizes: Bench = {
  name: "sizes",
  summary:
    "a diffusion step of 8 and 32 positions against an AR token, from the embedded shape to 0.5B (random fp32 weights), beside the roofline estimate",
  async run(parsed, say) {
    const file = join(packageRoot(), "configs", `${defaultModelName}.json`);
    const embedded = parseModelConfig(JSON.parse(readFileSync(file, "utf8")), file);
    const all = [
      { name: "embedded 5M", config: embedded },
      { name: "110M", config: bench110M },
      { name: "0.5B", config: benchQwen05B },
    ];
    const largest = stringOption(parsed, "largest") ?? "0.5B";
    const upTo = all.findIndex((s) => s.name.endsWith(largest));
    if (upTo < 0) {
      throw new UsageError(`--largest: ${JSON.stringify(largest)} is not a shape (5M, 110M, 0.5B)`);
    }
    const options: Parameters<typeof benchSizes>[0] = {
      shapes: all.slice(0, upTo + 1),
      progress: say,
    };
    const runs = intOption(parsed, "runs", 1);
    if (runs !== undefined) options.runs = runs;
    const rows = await benchSizes(options);
    const out = resolve(stringOption(parsed, "out") ?? "bench-sizes");
    mkdirSync(out, { recursive: true });
    const plots = [join(out, "sizes.svg"), join(out, "sizes.png")];
    for (const p of plots) await writePlot(p, sizeSeries(rows), sizePlot);
    return {
      json: { rows, plots },
      lines: [
        "model            weights     AR token   step     step ÷ token (roofline estimate)",
        ...rows.flatMap((r) =>
          r.steps.map(
            (s) =>
              `  ${r.model.padEnd(14)} ${`${r.weight_mb.toFixed(0)} MB`.padStart(8)} ${s.ar_ms.toFixed(2).padStart(8)} ms  B=${String(s.block).padEnd(3)}${s.step_ms.toFixed(2).padStart(8)} ms  ${s.ratio.toFixed(2).padStart(6)}× (${s.roofline_ratio.toFixed(2)}×)`,
          ),
        ),
        `plots: ${plots.join(", ")}`,
      ],
    };
  },
};

const sizePlot = {
  title: "diffusion step cost / AR token cost, by model size (fp32)",
  xLabel: "parameters (log)",
  yLabel: "step / AR token",
  logX: true,
  logY: true,
};

function sizeSeries(rows: readonly SizeRow[]): Series[] {
  const blocks = rows[0]?.steps.map((s) => s.block) ?? [];
  const measured = ["#1f77b4", "#d62728", "#2ca02c"];
  const roofline = ["#9ecae1", "#fc9272", "#a1d99b"];
  return blocks.flatMap((block, i) => [
    {
      name: `measured B=${block}`,
      color: measured[i % measured.length],
      points: rows.map((r) => [r.parameters, r.steps[i].ratio] as const),
    },
    {
      name: `roofline B=${block}`,
      color: roofline[i % roofline.length],
      points: rows.map((r) => [r.parameters, r.steps[i].roofline_ratio] as const),
    },
  ]);
}
