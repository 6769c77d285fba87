// The learning-rate schedule: linear warm-up, then cosine decay to a floor — nanoGPT's
// `get_lr` (karpathy/nanoGPT train.py), with steps counted from 0:
//
//   step < warmup:            lr · (step + 1) / (warmup + 1)
//   warmup ≤ step ≤ decay:    floor + ½(1 + cos(π · (step − warmup) / (decay − warmup))) · (lr − floor)
//   step > decay:             floor

export interface ScheduleOptions {
  /** Peak learning rate, reached at the end of warm-up. */
  lr: number;
  /** Steps of linear warm-up (0: none). */
  warmupSteps: number;
  /** Step at which the cosine reaches the floor (usually the run's total steps). */
  decaySteps: number;
  /** The floor (nanoGPT and Chinchilla: a tenth of the peak). */
  minLr: number;
}

export function learningRate(step: number, o: ScheduleOptions): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / (o.warmupSteps + 1);
  if (step > o.decaySteps) return o.minLr;
  const span = o.decaySteps - o.warmupSteps;
  const ratio = span > 0 ? (step - o.warmupSteps) / span : 1;
  return o.minLr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (o.lr - o.minLr);
}
