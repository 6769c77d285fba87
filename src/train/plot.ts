// Loss curves as images: train and validation loss against tokens, with axes, ticks, labels
// and a legend. One layout, two painters: SVG (text, scalable) and PNG (a small anti-aliased
// rasteriser with a 5×7 bitmap font, encoded with node:zlib), so that viewers that show only
// raster images can show the curve too.

import { writeFile } from "node:fs/promises";
import { crc32, deflateSync } from "node:zlib";
import { formatCount } from "./progress.js";

export interface Series {
  name: string;
  /** "#rrggbb". */
  color: string;
  points: readonly (readonly [number, number])[];
}

export interface PlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Logarithmic x axis (points with x ≤ 0 are dropped). */
  logX?: boolean;
  /** Logarithmic y axis (points with y ≤ 0 are dropped). */
  logY?: boolean;
  width?: number;
  height?: number;
}

/** Writes `path` as SVG or PNG, by its extension. */
export async function writePlot(
  path: string,
  series: readonly Series[],
  options: PlotOptions = {},
): Promise<void> {
  if (path.endsWith(".svg")) await writeFile(path, plotSvg(series, options));
  else if (path.endsWith(".png")) await writeFile(path, plotPng(series, options));
  else throw new RangeError(`plot: ${path}: expected a .svg or .png file name`);
}

export function plotSvg(series: readonly Series[], options: PlotOptions = {}): string {
  const p = new SvgPainter(options.width ?? 800, options.height ?? 480);
  drawPlot(p, series, options);
  return p.finish();
}

export function plotPng(series: readonly Series[], options: PlotOptions = {}): Uint8Array {
  const p = new RasterPainter(options.width ?? 800, options.height ?? 480);
  drawPlot(p, series, options);
  return p.png();
}

// ---------------------------------------------------------------------------------------------
// Layout

type Anchor = "start" | "middle" | "end";

interface Painter {
  readonly width: number;
  readonly height: number;
  line(points: readonly (readonly [number, number])[], color: string, width: number): void;
  text(x: number, y: number, s: string, anchor: Anchor, color: string, scale: 1 | 2): void;
}

const AXIS = "#333333";
const GRID = "#e4e4e4";

function drawPlot(p: Painter, series: readonly Series[], o: PlotOptions): void {
  const left = 64;
  const right = 16;
  const top = o.title ? 40 : 24;
  const bottom = 44;
  const plotW = p.width - left - right;
  const plotH = p.height - top - bottom;
  const keep = ([x, y]: readonly [number, number]) =>
    Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0) && (!o.logY || y > 0);
  const data = series.map((s) => ({ ...s, points: s.points.filter(keep) }));
  const all = data.flatMap((s) => s.points);
  const xs = axisRange(
    all.map(([x]) => x),
    o.logX,
  );
  const ys = axisRange(
    all.map(([, y]) => y),
    o.logY,
  );
  const px = (x: number) => left + ((fwd(x, o.logX) - xs.lo) / (xs.hi - xs.lo)) * plotW;
  const py = (y: number) => top + plotH - ((fwd(y, o.logY) - ys.lo) / (ys.hi - ys.lo)) * plotH;

  for (const t of ticks(xs, o.logX)) {
    const x = px(t);
    p.line(
      [
        [x, top],
        [x, top + plotH],
      ],
      GRID,
      1,
    );
    p.line(
      [
        [x, top + plotH],
        [x, top + plotH + 4],
      ],
      AXIS,
      1,
    );
    p.text(x, top + plotH + 8, formatTick(t), "middle", AXIS, 1);
  }
  for (const t of ticks(ys, o.logY)) {
    const y = py(t);
    p.line(
      [
        [left, y],
        [left + plotW, y],
      ],
      GRID,
      1,
    );
    p.line(
      [
        [left - 4, y],
        [left, y],
      ],
      AXIS,
      1,
    );
    p.text(left - 7, y - 3.5, formatTick(t), "end", AXIS, 1);
  }
  p.line(
    [
      [left, top],
      [left, top + plotH],
      [left + plotW, top + plotH],
    ],
    AXIS,
    1,
  );
  if (o.title) p.text(p.width / 2, 10, o.title, "middle", AXIS, 2);
  if (o.xLabel) p.text(left + plotW / 2, p.height - 18, o.xLabel, "middle", AXIS, 1);
  if (o.yLabel) p.text(8, top - 16, o.yLabel, "start", AXIS, 1);

  data.forEach((s, i) => {
    if (s.points.length === 1) {
      const [x, y] = s.points[0];
      p.line(
        [
          [px(x) - 2, py(y)],
          [px(x) + 2, py(y)],
        ],
        s.color,
        4,
      );
    } else if (s.points.length > 1) {
      p.line(
        s.points.map(([x, y]) => [px(x), py(y)] as const),
        s.color,
        1.5,
      );
    }
    const ly = top + 10 + i * 14;
    const lx = left + plotW - 110;
    p.line(
      [
        [lx, ly + 3.5],
        [lx + 18, ly + 3.5],
      ],
      s.color,
      2,
    );
    p.text(lx + 24, ly, s.name, "start", AXIS, 1);
  });
}

const fwd = (v: number, log?: boolean) => (log ? Math.log10(v) : v);

/** The axis range in transformed units (log10 for a log axis), padded, never empty. */
function axisRange(values: number[], log?: boolean): { lo: number; hi: number } {
  if (values.length === 0) return { lo: 0, hi: 1 };
  let lo = Math.min(...values.map((v) => fwd(v, log)));
  let hi = Math.max(...values.map((v) => fwd(v, log)));
  if (hi - lo < 1e-12) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.04;
  return { lo: lo - pad, hi: hi + pad };
}

/** Tick values (in data units): 1-2-5 steps on a linear axis, 1·10ᵏ (and 2, 5) on a log axis. */
function ticks(range: { lo: number; hi: number }, log?: boolean): number[] {
  const out: number[] = [];
  if (log) {
    const mults = range.hi - range.lo < 3 ? [1, 2, 5] : [1];
    for (let k = Math.floor(range.lo); k <= Math.ceil(range.hi); k++) {
      for (const m of mults) {
        const v = m * 10 ** k;
        const l = Math.log10(v);
        if (l >= range.lo && l <= range.hi) out.push(v);
      }
    }
    return out;
  }
  const raw = (range.hi - range.lo) / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  for (let v = Math.ceil(range.lo / step) * step; v <= range.hi + 1e-9 * step; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return out;
}

function formatTick(v: number): string {
  return Math.abs(v) >= 1000 ? formatCount(v) : String(Number(v.toPrecision(3)));
}

// ---------------------------------------------------------------------------------------------
// SVG

const escapeXml = (s: string) =>
  s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);

class SvgPainter implements Painter {
  private readonly parts: string[] = [];

  constructor(
    readonly width: number,
    readonly height: number,
  ) {}

  line(points: readonly (readonly [number, number])[], color: string, width: number): void {
    const pts = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
    this.parts.push(
      `<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="${width}" stroke-linejoin="round"/>`,
    );
  }

  text(x: number, y: number, s: string, anchor: Anchor, color: string, scale: 1 | 2): void {
    // y is the top of the text, as in the raster painter; the SVG baseline sits ~0.8 em lower.
    const size = 10 * scale;
    this.parts.push(
      `<text x="${x.toFixed(1)}" y="${(y + size * 0.8).toFixed(1)}" font-size="${size}" text-anchor="${anchor}" fill="${color}">${escapeXml(s)}</text>`,
    );
  }

  finish(): string {
    return [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}" viewBox="0 0 ${this.width} ${this.height}" font-family="sans-serif">`,
      `<rect width="100%" height="100%" fill="#ffffff"/>`,
      ...this.parts,
      "</svg>",
      "",
    ].join("\n");
  }
}

// ---------------------------------------------------------------------------------------------
// PNG

/**
 * The classic 5×7 font of printable ASCII (32..126), five column bytes per glyph, bit 0 at the
 * top (the layout of the Adafruit GFX `glcdfont` and many LCD controllers).
 */
const FONT =
  "000000000000005f00000007000700147f147f14242a7f2a12231308646236495522500005030000001c2241000041221c00082a1c2a0808083e080800503000000808080808006060000020100804023e5149453e00427f400042615149462141454b311814127f1027454545393c4a49493001710905033649494936064949291e003636000000563600000814224100141414141400412214080201510906324979413e7e1111117e7f494949363e414141227f4141221c7f494949417f090909013e4149497a7f0808087f00417f41002040413f017f081422417f404040407f020c027f7f0408107f3e4141413e7f090909063e4151215e7f09192946464949493101017f01013f4040403f1f2040201f3f4038403f631408146307087008076151494543007f41410002040810200041417f0004020102044040404040000102040020545454787f484444383844444420384444487f3854545418087e0901020c5252523e7f0804047800447d40002040443d00007f10284400417f40007c041804787c0804047838444444387c14141408081414187c7c080404084854545420043f4440203c4040207c1c2040201c3c4030403c44281028440c5050503c4464544c44000836410000007f000000413608000804081008";

function colorOf(hex: string): [number, number, number] {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new RangeError(`plot: expected a "#rrggbb" color, got ${JSON.stringify(hex)}`);
  return [Number.parseInt(m[1], 16), Number.parseInt(m[2], 16), Number.parseInt(m[3], 16)];
}

class RasterPainter implements Painter {
  private readonly rgb: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgb = new Uint8Array(width * height * 3).fill(255);
  }

  /** Blends `color` into pixel (x, y) with coverage a ∈ [0, 1]. */
  private blend(x: number, y: number, c: readonly number[], a: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || a <= 0) return;
    const i = (y * this.width + x) * 3;
    for (let k = 0; k < 3; k++) this.rgb[i + k] = Math.round(this.rgb[i + k] * (1 - a) + c[k] * a);
  }

  /** Anti-aliased thick polyline: each pixel's coverage from its distance to the segment. */
  line(points: readonly (readonly [number, number])[], color: string, width: number): void {
    const c = colorOf(color);
    const r = width / 2;
    const cover = new Map<number, number>(); // pixel → coverage, so joints are not drawn twice
    for (let s = 0; s + 1 < points.length; s++) {
      const [x0, y0] = points[s];
      const [x1, y1] = points[s + 1];
      const dx = x1 - x0;
      const dy = y1 - y0;
      const len2 = dx * dx + dy * dy;
      const xa = Math.max(0, Math.floor(Math.min(x0, x1) - r - 1));
      const xb = Math.min(this.width - 1, Math.ceil(Math.max(x0, x1) + r + 1));
      const ya = Math.max(0, Math.floor(Math.min(y0, y1) - r - 1));
      const yb = Math.min(this.height - 1, Math.ceil(Math.max(y0, y1) + r + 1));
      for (let y = ya; y <= yb; y++) {
        for (let x = xa; x <= xb; x++) {
          const cx = x + 0.5;
          const cy = y + 0.5;
          const t =
            len2 > 0 ? Math.max(0, Math.min(1, ((cx - x0) * dx + (cy - y0) * dy) / len2)) : 0;
          const d = Math.hypot(cx - x0 - t * dx, cy - y0 - t * dy);
          const a = Math.max(0, Math.min(1, r + 0.5 - d));
          const key = y * this.width + x;
          if (a > (cover.get(key) ?? 0)) cover.set(key, a);
        }
      }
    }
    for (const [key, a] of cover) this.blend(key % this.width, Math.floor(key / this.width), c, a);
  }

  text(x: number, y: number, s: string, anchor: Anchor, color: string, scale: 1 | 2): void {
    const c = colorOf(color);
    const advance = 6 * scale;
    const w = s.length * advance - scale;
    let at = Math.round(anchor === "start" ? x : anchor === "middle" ? x - w / 2 : x - w);
    const top = Math.round(y);
    for (const ch of s) {
      const code = ch.charCodeAt(0);
      const g = code >= 32 && code <= 126 ? code - 32 : 31; // unknown → "?"
      for (let col = 0; col < 5; col++) {
        const bits = Number.parseInt(FONT.slice((g * 5 + col) * 2, (g * 5 + col) * 2 + 2), 16);
        for (let row = 0; row < 7; row++) {
          if (((bits >> row) & 1) === 0) continue;
          for (let sy = 0; sy < scale; sy++) {
            for (let sx = 0; sx < scale; sx++) {
              this.blend(at + col * scale + sx, top + row * scale + sy, c, 1);
            }
          }
        }
      }
      at += advance;
    }
  }

  /** The image as a PNG file: 8-bit RGB, filter 0 on every row, one zlib stream. */
  png(): Uint8Array {
    const { width, height, rgb } = this;
    const raw = new Uint8Array(height * (1 + width * 3));
    for (let y = 0; y < height; y++) {
      raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
    }
    const ihdr = new Uint8Array(13);
    const v = new DataView(ihdr.buffer);
    v.setUint32(0, width);
    v.setUint32(4, height);
    ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
    const chunks = [
      Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("IHDR", ihdr),
      chunk("IDAT", deflateSync(raw, { level: 9 })),
      chunk("IEND", new Uint8Array(0)),
    ];
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** A PNG chunk: length, type, data, CRC-32 of type + data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
