// `unmask bench claim`: the yardstick of issue 9 (src/eval/claim.ts) on held-out files — every
// decoding setting of the diffusion model(s) and the AR twin side by side, the Pareto picture,
// and the speed-up at matched quality.

import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { benchClaim, type ClaimReport, writeClaimPlot } from "../eval/claim.js";
import { readHeldOutDocuments } from "../eval/held-out.js";
import {
  defaultArModelName,
  defaultModelName,
  type LoadedModel,
  loadModel,
} from "../host/models.js";
import { intOption, type Parsed, stringOption, UsageError } from "./args.js";
import type { Bench } from "./bench.js";
import { packageRoot } from "./package.js";

export const claim: Bench = {
  name: "claim",
  reads: ["corpus", "model", "ar-model", "out", "tasks", "infill-tasks", "seed"],
  summary:
    "line completion, infill, parse rate and speed of every decoding setting and of the AR twin on held-out files, the Pareto front, the speed-up at matched quality",
  async run(parsed: Parsed, say) {
    const root = packageRoot();
    const corpus = resolve(stringOption(parsed, "corpus") ?? join(root, ".cache", "corpus"));
    const valid = join(corpus, "valid.jsonl");
    if (!existsSync(valid)) {
      throw new UsageError(`${valid}: not found (run 'unmask corpus' first, or pass --corpus DIR)`);
    }
    const dirs = (stringOption(parsed, "model") ?? join(root, "models", defaultModelName))
      .split(",")
      .map((d) => resolve(d.trim()));
    const arDir = resolve(
      stringOption(parsed, "ar-model") ?? join(root, "models", defaultArModelName),
    );
    const out = resolve(stringOption(parsed, "out") ?? "bench-claim");
    const loaded: LoadedModel[] = [];
    try {
      say("loading the models…");
      for (const d of [...dirs, arDir]) loaded.push(await loadModel(d, { spinning: false }));
      const ar = loaded[loaded.length - 1];
      const models = loaded.slice(0, -1);
      for (const m of models) {
        if (m.config.attention === "causal" && m.config.maskTokenId === null) {
          throw new UsageError(
            `--model ${m.dir}: a causal model without a mask token; the diffusion models (or a causal one trained with --draft) go here`,
          );
        }
      }
      if (ar.config.attention !== "causal") {
        throw new UsageError(`--ar-model ${ar.dir}: not a causal model`);
      }
      for (const m of models) {
        if (m.config.vocabSize !== ar.config.vocabSize) {
          throw new UsageError(
            `--model ${m.dir}: a vocabulary of ${m.config.vocabSize}, the AR twin's ${ar.config.vocabSize}: the models must share a tokenizer`,
          );
        }
      }
      const options: Parameters<typeof benchClaim>[0] = {
        models: models.map((m) => ({ name: m.name, model: m.model })),
        ar: ar.model,
        tokenizer: models[0].tokenizer,
        documents: await readHeldOutDocuments(valid),
        onProgress: (setting, phase, done, total) => say(`${setting}: ${phase} ${done}/${total}`),
      };
      const tasks = intOption(parsed, "tasks", 1);
      const infillTasks = intOption(parsed, "infill-tasks", 0);
      const seed = intOption(parsed, "seed", 0);
      if (tasks !== undefined) options.tasks = tasks;
      if (infillTasks !== undefined) options.infillTasks = infillTasks;
      if (seed !== undefined) options.seed = seed;
      const t0 = performance.now();
      const r = await benchClaim(options);
      mkdirSync(out, { recursive: true });
      const plots = await writeClaimPlot(r, join(out, "pareto"));
      const seconds = (performance.now() - t0) / 1000;
      return {
        json: {
          models: models.map((m) => m.dir),
          ar_model: ar.dir,
          corpus: valid,
          seconds,
          plots,
          ...(snake(r) as Record<string, unknown>),
        },
        lines: claimLines(r, plots),
      };
    } finally {
      for (const m of loaded) await m.model.dispose();
    }
  },
};

/** The report's keys in snake_case, as the other benchmarks' JSON. */
function snake(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snake);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
      k === "options" ? v : snake(v),
    ]),
  );
}

function claimLines(r: ClaimReport, plots: string[]): string[] {
  const width = Math.max(...r.settings.map((s) => s.name.length)) + 2;
  const f = (x: number | null | undefined, d = 3) =>
    x === null || x === undefined ? "—" : x.toFixed(d);
  const s = r.speedupAtMatchedQuality;
  const e = r.infillExactMatch;
  return [
    `held-out: ${r.tasks.lineCompletion} line completions, ${r.tasks.continuations} continuations, ${r.tasks.infill} single-line holes; seed ${r.seed}`,
    `  ${"setting".padEnd(width)}tokens/s  fwd/tok  line EM  line ES  parse  AR nll  distinct  infill EM  infill ES`,
    ...r.settings.map(
      (x) =>
        `  ${x.name.padEnd(width)}${x.tokensPerSecond.toFixed(1).padStart(8)}  ${f(x.forwardsPerToken, 2).padStart(7)}  ${f(x.lineCompletion.exactMatch).padStart(7)}  ${f(x.lineCompletion.editSimilarity).padStart(7)}  ${f(x.parseRate, 2).padStart(5)}  ${f(x.arNll, 2).padStart(6)}  ${f(x.distinctShare, 2).padStart(8)}  ${f(x.infill?.exactMatch).padStart(9)}  ${f(x.infill?.editSimilarity).padStart(9)}`,
    ),
    `Pareto front (tokens/s against line ES): ${r.pareto.join(", ")}`,
    s.value === null
      ? `speedup at matched quality: none — ${s.reason}`
      : `speedup at matched quality: ${s.value.toFixed(2)}× AR (${s.setting}, ${f(s.forwardsPerToken, 2)} forwards/token, line ES ${f(s.editSimilarity)} against ${f(s.arEditSimilarity)}, parse ${f(s.parseRate, 2)} against ${f(s.arParseRate, 2)})`,
    `infill exact match (single-line, true hole length): ${f(e.value)} (${e.setting ?? "—"}, edit similarity ${f(e.editSimilarity)})`,
    `plots: ${plots.join(", ")}`,
  ];
}
