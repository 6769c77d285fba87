// A terminal progress line for long work (training, corpus, tokenizing, evaluation, benchmarks):
// on a TTY one line redrawn in place (at most ten times a second); elsewhere (a log file, CI) a
// plain line every `intervalSeconds`, each state once, so logs stay readable.
//
//   train  45% [##########............] 1.2k/2.7k  loss 3.214  tok/s 5.7k  ETA 1h02m

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  label: string;
  /** Units of work in all; null when unknown (no bar, no percentage, no ETA). */
  total: number | null;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Redraw in place; default: the stream's isTTY. */
  tty?: boolean;
  /** Seconds between lines when not a TTY (default 10). */
  intervalSeconds?: number;
  /** Characters of the bar (default 24). */
  width?: number;
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
}

export type ProgressFields = Record<string, string | number>;

export class ProgressBar {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly start: number;
  private startDone: number | null = null;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private drawn = false;
  /** Off a TTY: the state (done, fields) of the last line printed, so that none prints twice. */
  private printed: string | null = null;

  constructor(readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.start = this.now();
  }

  /** Reports `done` units of work; draws when the throttle allows. */
  update(done: number, fields: ProgressFields = {}): void {
    this.startDone ??= done;
    const t = this.now();
    const period = this.tty ? 100 : (this.options.intervalSeconds ?? 10) * 1000;
    if (t - this.lastDraw < period) return;
    this.lastDraw = t;
    this.draw(this.render(done, fields, t));
    this.printed = stateKey(done, fields);
  }

  /** Prints a line of its own (an evaluation result, a warning) without breaking the bar. */
  log(line: string): void {
    if (this.tty && this.drawn) this.stream.write("\r\x1b[2K");
    this.stream.write(`${line}\n`);
    this.drawn = false;
    this.lastDraw = Number.NEGATIVE_INFINITY;
  }

  /** Draws the final state and ends the line (off a TTY: unless that state is printed already). */
  finish(done: number, fields: ProgressFields = {}): void {
    this.startDone ??= done;
    if (!this.tty && this.printed === stateKey(done, fields)) return;
    this.draw(this.render(done, fields, this.now()));
    if (this.tty) this.stream.write("\n");
    this.drawn = false;
  }

  /** The text of the line (exposed for tests and for callers that log it elsewhere). */
  render(done: number, fields: ProgressFields, t = this.now()): string {
    const { label, total } = this.options;
    const parts = [label];
    if (total !== null && total > 0) {
      const frac = Math.min(1, Math.max(0, done / total));
      const width = this.options.width ?? 24;
      const fill = Math.round(frac * width);
      parts.push(`${(frac * 100).toFixed(0).padStart(3)}%`);
      parts.push(`[${"#".repeat(fill)}${".".repeat(width - fill)}]`);
      parts.push(`${formatCount(done)}/${formatCount(total)}`);
    } else {
      parts.push(formatCount(done));
    }
    for (const [k, v] of Object.entries(fields)) parts.push(`${k} ${v}`);
    const seconds = (t - this.start) / 1000;
    const rate = seconds > 0 ? (done - (this.startDone ?? 0)) / seconds : 0;
    if (total !== null && !("ETA" in fields) && rate > 0 && done < total) {
      parts.push(`ETA ${formatDuration((total - done) / rate)}`);
    } else if (total !== null && done >= total) {
      parts.push(`in ${formatDuration(seconds)}`);
    }
    return parts.join("  ");
  }

  private draw(line: string): void {
    if (this.tty) {
      const cols = this.stream.columns ?? 120;
      this.stream.write(`\r\x1b[2K${line.length >= cols ? line.slice(0, cols - 1) : line}`);
      this.drawn = true;
    } else {
      this.stream.write(`${line}\n`);
    }
  }
}

function stateKey(done: number, fields: ProgressFields): string {
  return JSON.stringify([done, fields]);
}

/** 950 → "950", 12_300 → "12.3k", 4_560_000 → "4.56M". */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  const units: [number, string][] = [
    [1e12, "T"],
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [size, suffix] of units) {
    if (abs >= size) {
      const v = n / size;
      if (Math.abs(v) >= 999.5) return `${v.toFixed(0)}${suffix}`;
      return `${v.toPrecision(3).replace(/\.0+$|(\.\d*?)0+$/, "$1")}${suffix}`;
    }
  }
  return Number.isInteger(n) ? String(n) : n.toPrecision(3);
}

/** Seconds as "42s", "3m05s", "1h02m", "2d03h". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}
