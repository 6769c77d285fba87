// Seeded pseudo-random numbers for everything in the project that draws at random (weight
// initialisation, masking in training, random remasking and Gumbel noise in sampling), so that a
// run is reproducible from its seed and resumable from a checkpoint.
//
// The generator is PCG32 — M. E. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
// Statistically Good Algorithms for Random Number Generation" (2014) — the XSH-RR output function
// over a 64-bit LCG with a 64-bit odd stream increment, bit for bit as `pcg32_random_r` and
// `pcg32_srandom_r` of the reference pcg-c-basic. The 64-bit state is held as two uint32 halves so
// that drawing a number allocates nothing (BigInt only at seeding and serialisation).

import { type ModelConfig, parameterShapes, type Weights } from "./config.js";

/** The LCG multiplier 6364136223846793005 = 0x5851f42d_4c957f2d, in uint32 halves. */
const MULT_HI = 0x5851f42d;
const MULT_LO = 0x4c957f2d;
const TWO_32 = 4294967296;
const TWO_53 = 9007199254740992;
const MASK_64 = (1n << 64n) - 1n;

/** A generator's exact position, as JSON: the LCG state and stream increment in hex. */
export interface RngState {
  algorithm: "pcg32";
  /** 16 lower-case hex digits. */
  state: string;
  /** 16 lower-case hex digits; odd. */
  increment: string;
}

export class Rng {
  private stateHi = 0;
  private stateLo = 0;
  private incHi = 0;
  private incLo = 1;

  /**
   * `pcg32_srandom_r(seed, stream)`: seeds and streams are integers taken modulo 2^64 (negative
   * numbers wrap), so `new Rng(42, 54)` yields the pcg32-demo sequence 0xa15c02b7, 0x7b47f409, ….
   */
  constructor(seed: number | bigint = 0, stream: number | bigint = 0) {
    const s = toUint64("seed", seed);
    const inc = ((toUint64("stream", stream) << 1n) | 1n) & MASK_64;
    this.incHi = Number(inc >> 32n);
    this.incLo = Number(inc & 0xffffffffn);
    this.stateHi = 0;
    this.stateLo = 0;
    this.step();
    const sum = ((BigInt(this.stateHi) << 32n) + BigInt(this.stateLo) + s) & MASK_64;
    this.stateHi = Number(sum >> 32n);
    this.stateLo = Number(sum & 0xffffffffn);
    this.step();
  }

  static fromState(state: RngState): Rng {
    const rng = new Rng();
    rng.setState(state);
    return rng;
  }

  /** A uniform integer in [0, 2^32). */
  nextUint32(): number {
    const hi = this.stateHi;
    const lo = this.stateLo;
    this.step();
    // xorshifted = ((old >> 18) ^ old) >> 27, truncated to 32 bits
    const xHi = hi ^ (hi >>> 18);
    const xLo = lo ^ ((lo >>> 18) | (hi << 14));
    const xorshifted = ((xLo >>> 27) | (xHi << 5)) >>> 0;
    const rot = hi >>> 27; // old >> 59
    return ((xorshifted >>> rot) | (xorshifted << (-rot & 31))) >>> 0;
  }

  /** A uniform float64 in [0, 1) with 53 random bits (two draws, as MT19937's genrand_res53). */
  next(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / TWO_53;
  }

  /**
   * A standard normal float64 by the Box-Muller transform, r·cos(2πu₂) with r = √(−2 ln u₁). Each
   * call draws two fresh uniforms and discards the sine partner, so the generator's state is all
   * there is to checkpoint.
   */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: the logarithm stays finite
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** A uniform integer in [0, n) without modulo bias (`pcg32_boundedrand_r`); 1 ≤ n ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) {
      throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    }
    const threshold = (TWO_32 - n) % n; // 2^32 mod n: the draws below it would bias the result
    for (;;) {
      const r = this.nextUint32();
      if (r >= threshold) return r % n;
    }
  }

  state(): RngState {
    return {
      algorithm: "pcg32",
      state: hex64(this.stateHi, this.stateLo),
      increment: hex64(this.incHi, this.incLo),
    };
  }

  /** Restores a position from `state()` (e.g. read back from a checkpoint's JSON). */
  setState(state: RngState): void {
    if (state?.algorithm !== "pcg32") {
      throw new RangeError(
        `RngState.algorithm: expected "pcg32", got ${JSON.stringify(state?.algorithm)}`,
      );
    }
    const [sHi, sLo] = parseHex64("state", state.state);
    const [iHi, iLo] = parseHex64("increment", state.increment);
    if ((iLo & 1) === 0) throw new RangeError("RngState.increment: must be odd");
    this.stateHi = sHi;
    this.stateLo = sLo;
    this.incHi = iHi;
    this.incLo = iLo;
  }

  /** state ← state × MULT + inc (mod 2^64), on uint32 halves. */
  private step(): void {
    const lo = this.stateLo;
    // full 64-bit product of the low words, from 16-bit pieces
    const a0 = lo & 0xffff;
    const a1 = lo >>> 16;
    const b0 = MULT_LO & 0xffff;
    const b1 = MULT_LO >>> 16;
    const p00 = a0 * b0;
    const p01 = a0 * b1;
    const p10 = a1 * b0;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const prodLo = (mid & 0xffff) * 65536 + (p00 & 0xffff);
    let prodHi = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + Math.floor(mid / 65536);
    // cross terms only reach the high word
    prodHi = (prodHi + Math.imul(this.stateHi, MULT_LO) + Math.imul(lo, MULT_HI)) >>> 0;
    const sumLo = prodLo + this.incLo; // < 2^33, exact
    const carry = sumLo >= TWO_32 ? 1 : 0;
    this.stateLo = sumLo >>> 0;
    this.stateHi = (prodHi + this.incHi + carry) >>> 0;
  }
}

function toUint64(field: string, value: number | bigint): bigint {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new RangeError(`Rng: ${field} must be a safe integer or a bigint, got ${value}`);
  }
  return BigInt(value) & MASK_64;
}

function hex64(hi: number, lo: number): string {
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

function parseHex64(field: string, value: unknown): [number, number] {
  if (typeof value !== "string" || !/^[0-9a-f]{16}$/.test(value)) {
    throw new RangeError(
      `RngState.${field}: expected 16 lower-case hex digits, got ${JSON.stringify(value)}`,
    );
  }
  return [Number.parseInt(value.slice(0, 8), 16), Number.parseInt(value.slice(8), 16)];
}

/**
 * Random weights for every parameter of `parameterShapes(config)`, in that order from one
 * `Rng(seed)`: N(0, std²) for matrices and biases, 1 + N(0, std²) for RMSNorm weights (so that
 * tests exercise them). Deterministic for a given config, seed and std.
 */
export function randomWeights(config: ModelConfig, seed: number, std = 0.02): Weights {
  const rng = new Rng(seed);
  const weights: Weights = new Map();
  for (const { name, shape } of parameterShapes(config)) {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const mean = name.endsWith("norm.weight") ? 1 : 0;
    for (let i = 0; i < values.length; i++) values[i] = mean + std * rng.normal();
    weights.set(name, values);
  }
  return weights;
}
