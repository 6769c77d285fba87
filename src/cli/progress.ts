// Progress of long work in phases (install, scan, write; count, merge...): one progress bar of
// src/train/progress.ts per phase, on stderr, replaced when the phase changes.

import { ProgressBar, type ProgressFields } from "../train/progress.js";

export class PhasedProgress {
  private bar: ProgressBar | null = null;
  private phase = "";
  private last = { done: 0, fields: {} as ProgressFields };

  constructor(private readonly prefix: string) {}

  /** Reports `done` of `total` (null: unknown) units in `phase`. */
  update(phase: string, done: number, total: number | null, fields: ProgressFields = {}): void {
    if (phase !== this.phase || this.bar === null) {
      this.end();
      this.phase = phase;
      this.bar = new ProgressBar({ label: `${this.prefix} ${phase}`, total });
    }
    this.last = { done, fields };
    this.bar.update(done, fields);
  }

  /** Draws the current phase's last state and ends its line (nothing when none began). */
  end(): void {
    this.bar?.finish(this.last.done, this.last.fields);
    this.bar = null;
  }
}
