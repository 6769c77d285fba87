import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { crc32, inflateSync } from "node:zlib";
import { plotPng, plotSvg, type Series, writePlot } from "../src/train/plot.js";
import {
  formatCount,
  formatDuration,
  ProgressBar,
  type ProgressStream,
} from "../src/train/progress.js";

const root = mkdtempSync(join(tmpdir(), "unmask-train-plot-"));
after(() => rmSync(root, { recursive: true, force: true }));

const series: Series[] = [
  {
    name: "train",
    color: "#1f77b4",
    points: Array.from({ length: 50 }, (_, i) => [(i + 1) * 1000, 8 * Math.exp(-i / 10) + 2]),
  },
  {
    name: "valid <&>",
    color: "#d62728",
    points: [
      [10000, 6],
      [50000, 2.4],
    ],
  },
];

describe("loss plot", () => {
  it("writes an SVG with axes, ticks, labels, a legend and one line per series", async () => {
    const file = join(root, "loss.svg");
    await writePlot(file, series, { title: "loss", xLabel: "tokens", yLabel: "nats", logX: true });
    const svg = readFileSync(file, "utf8");
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="800" height="480"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.match(svg, />tokens<\/text>/);
    assert.match(svg, />nats<\/text>/);
    assert.match(svg, />10k<\/text>/, "a log-axis tick");
    assert.match(svg, /valid &lt;&amp;&gt;/, "escaped legend text");
    assert.ok((svg.match(/stroke="#1f77b4"/g) ?? []).length >= 2, "curve and legend");
    // Every coordinate is a finite number inside the canvas.
    for (const m of svg.matchAll(/points="([^"]+)"/g)) {
      for (const pair of m[1].split(" ")) {
        const [x, y] = pair.split(",").map(Number);
        assert.ok(x >= 0 && x <= 800 && y >= 0 && y <= 480, pair);
      }
    }
  });

  it("writes a valid PNG: signature, IHDR, CRCs, and scanlines that inflate to the image", () => {
    const png = plotPng(series, { width: 320, height: 200, title: "loss" });
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
    const chunks: { type: string; data: Uint8Array }[] = [];
    for (let at = 8; at < png.length; ) {
      const length = view.getUint32(at);
      const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
      const data = png.subarray(at + 8, at + 8 + length);
      assert.equal(view.getUint32(at + 8 + length), crc32(png.subarray(at + 4, at + 8 + length)));
      chunks.push({ type, data });
      at += 12 + length;
    }
    assert.deepEqual(
      chunks.map((c) => c.type),
      ["IHDR", "IDAT", "IEND"],
    );
    const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset);
    assert.equal(ihdr.getUint32(0), 320);
    assert.equal(ihdr.getUint32(4), 200);
    assert.deepEqual([...chunks[0].data.subarray(8)], [8, 2, 0, 0, 0]);
    const raw = inflateSync(chunks[1].data);
    assert.equal(raw.length, 200 * (1 + 320 * 3));
    // Something was drawn in the series colour, and the background is white.
    let blue = 0;
    for (let y = 0; y < 200; y++) {
      for (let x = 0; x < 320; x++) {
        const i = y * (1 + 960) + 1 + x * 3;
        if (raw[i] === 0x1f && raw[i + 1] === 0x77 && raw[i + 2] === 0xb4) blue++;
      }
    }
    assert.ok(blue > 50, `${blue} fully covered curve pixels`);
    assert.deepEqual([...raw.subarray(1, 4)], [255, 255, 255]);
  });

  it("copes with empty and one-point series, and refuses unknown extensions", async () => {
    assert.match(plotSvg([{ name: "x", color: "#000000", points: [] }]), /<svg/);
    assert.ok(plotPng([{ name: "x", color: "#000000", points: [[5, 5]] }]).length > 100);
    await assert.rejects(writePlot(join(root, "loss.jpg"), series), /\.svg or \.png/);
  });
});

class Sink implements ProgressStream {
  text = "";
  constructor(readonly isTTY: boolean) {}
  write(s: string) {
    this.text += s;
    return true;
  }
}

describe("progress bar", () => {
  it("redraws in place on a TTY, throttled", () => {
    let now = 0;
    const sink = new Sink(true);
    const bar = new ProgressBar({ label: "train", total: 200, stream: sink, now: () => now });
    bar.update(0);
    now = 50;
    bar.update(10); // within 100 ms: not drawn
    now = 1000;
    bar.update(100, { loss: "3.210" });
    bar.log("eval 2.9");
    now = 2000;
    bar.finish(200);
    const frames = sink.text.split("\r\x1b[2K").filter((f) => f.length > 0);
    assert.equal(frames.length, 4);
    assert.equal(frames[1], "train   50%  [############............]  100/200  loss 3.210  ETA 1s");
    assert.equal(frames[2], "eval 2.9\n");
    assert.match(frames[3], /100% {2}\[#{24}\] {2}200\/200 {2}in 2s\n$/);
  });

  it("prints a line every interval elsewhere", () => {
    let now = 0;
    const sink = new Sink(false);
    const bar = new ProgressBar({
      label: "tokenize",
      total: null,
      stream: sink,
      now: () => now,
      intervalSeconds: 10,
    });
    for (let i = 0; i <= 30; i++) {
      now = i * 1000;
      bar.update(i * 1500);
    }
    assert.deepEqual(sink.text.split("\n").filter(Boolean), [
      "tokenize  0",
      "tokenize  15k",
      "tokenize  30k",
      "tokenize  45k",
    ]);
  });

  it("off a TTY prints each state once: finish does not repeat the last line", () => {
    let now = 0;
    const sink = new Sink(false);
    const bar = new ProgressBar({ label: "scan", total: 10, stream: sink, now: () => now });
    bar.update(0);
    now = 1000;
    bar.update(10); // within the interval: not printed
    bar.finish(10); // the final state: printed once
    const again = new ProgressBar({ label: "install", total: null, stream: sink, now: () => now });
    again.update(0);
    again.finish(0); // the state just printed
    assert.deepEqual(sink.text.split("\n"), [
      "scan    0%  [........................]  0/10",
      "scan  100%  [########################]  10/10  in 1s",
      "install  0",
      "",
    ]);
  });

  it("formats counts and durations", () => {
    assert.deepEqual([950, 12_300, 1000, 4_560_000, 999_999, 2.5e9].map(formatCount), [
      "950",
      "12.3k",
      "1k",
      "4.56M",
      "1000k",
      "2.5G",
    ]);
    assert.deepEqual([42, 185, 3720, 183600, Infinity].map(formatDuration), [
      "42s",
      "3m05s",
      "1h02m",
      "2d03h",
      "?",
    ]);
  });
});
