// Distillation sets (src/train/distill.ts): the batched teacher against its slow twin (the AR
// decoder row by row), on a teacher whose answer is known and on a random causal model; the set
// written and read back; a damaged set refused with the file named.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { decodeAr } from "../src/diffusion/ar.js";
import { OnnxModel } from "../src/model/engine.js";
import { randomWeights } from "../src/model/random.js";
import { DataError } from "../src/train/data.js";
import { readDistillSet, teacherRows, writeDistillSet } from "../src/train/distill.js";
import { FakeModel, fakeConfig, logitFor } from "./fake-models.js";
import { tinyModelConfig } from "./tiny-config.js";

const stream = Uint16Array.from({ length: 200 }, (_, i) => 3 + ((i * 7) % 19));

describe("teacherRows", () => {
  it("continues each prompt with a known teacher's greedy tokens (the next id after the last)", async () => {
    const V = 32;
    const config = fakeConfig({ attention: "causal", logitShift: false, vocabSize: V });
    const teacher = new FakeModel(config, (position, view, out) => {
      out[(view.tokens.get(position)! + 1) % V] = logitFor(0.9, V);
    });
    const rows = await teacherRows({
      teacher,
      stream,
      rows: 5,
      prompt: 6,
      response: 4,
      seed: 1,
      batch: 2,
    });
    assert.equal(rows.length, 5 * 10);
    for (let r = 0; r < 5; r++) {
      const row = rows.subarray(r * 10, (r + 1) * 10);
      // the prompt is a window of the stream
      const at = stream.findIndex((_, i) =>
        stream.subarray(i, i + 6).every((v, j) => v === row[j]),
      );
      assert.ok(at >= 0, `row ${r}: prompt not in the stream`);
      for (let t = 0; t < 4; t++)
        assert.equal(row[6 + t], (row[5 + t] + 1) % V, `row ${r} token ${t}`);
    }
  });

  it("equals the AR decoder run row by row (greedy, K/V cache), on a random causal model", async () => {
    const config = tinyModelConfig({ attention_mask: "causal" });
    const model = await OnnxModel.create(config, randomWeights(config, 3, 0.5), { threads: 1 });
    try {
      const P = 7;
      const R = 9;
      const write = (batch: number) =>
        teacherRows({ teacher: model, stream, rows: 5, prompt: P, response: R, seed: 4, batch });
      const rows = await write(3);
      for (let r = 0; r < 5; r++) {
        const row = rows.subarray(r * (P + R), (r + 1) * (P + R));
        const ar = decodeAr(model, Array.from(row.subarray(0, P)), {
          maxTokens: R,
          stopAtEos: false,
        });
        let next = await ar.next();
        while (!next.done) next = await ar.next();
        assert.deepEqual(
          Array.from(row.subarray(P)),
          Array.from(next.value.canvas.subarray(P)),
          `row ${r}`,
        );
      }
      // seeded: the same cut points again, and the batch size changes nothing
      assert.deepEqual(await write(5), rows);
    } finally {
      await model.dispose();
    }
  });

  it("refuses a teacher that is not causal, and rows that overflow its context", async () => {
    const config = fakeConfig({ attention: "full" });
    const teacher = new FakeModel(config, () => {});
    await assert.rejects(
      teacherRows({ teacher, stream, rows: 1, prompt: 4, response: 4, seed: 0 }),
      (e: Error) => e instanceof DataError && /causal model/.test(e.message),
    );
    const causal = new FakeModel(fakeConfig({ attention: "causal", logitShift: false }), () => {});
    const context = causal.config.maxPositions;
    await assert.rejects(
      teacherRows({ teacher: causal, stream, rows: 1, prompt: context, response: 1, seed: 0 }),
      /exceed the teacher's context/,
    );
  });
});

describe("distillation set files", () => {
  it("round-trips, and a truncated row file or a bad distill.json is refused with its name", async () => {
    const dir = await mkdtemp(join(tmpdir(), "unmask-distill-"));
    try {
      const train = Int32Array.from({ length: 3 * 5 }, (_, i) => i);
      const valid = Int32Array.from({ length: 5 }, (_, i) => 100 + i);
      const info = await writeDistillSet(
        dir,
        { prompt: 3, response: 2, teacher: "t", corpus: "c", seed: 0 },
        { train, valid },
        50,
      );
      assert.equal(info.train, 3);
      assert.equal(info.valid, 1);
      const set = await readDistillSet(dir);
      assert.equal(set.train.count, 3);
      assert.equal(set.train.length, 5);
      const row = new Int32Array(5);
      set.valid!.copyRow(0, row);
      assert.deepEqual(Array.from(row), [100, 101, 102, 103, 104]);

      await writeFile(join(dir, "train.u16"), new Uint8Array(8));
      await assert.rejects(
        readDistillSet(dir),
        (e: Error) => e instanceof DataError && /train\.u16: holds 4 ids/.test(e.message),
      );
      await writeFile(join(dir, "distill.json"), "{");
      await assert.rejects(readDistillSet(dir), /distill\.json: not valid JSON/);
      await rm(join(dir, "distill.json"));
      await assert.rejects(readDistillSet(dir), /distill\.json: not found/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
