// IEEE 754 half precision (F16) and bfloat16 (BF16) <-> float32, bit-exact. Widening is exact
// (every F16/BF16 value is a float32); narrowing rounds to nearest, ties to even, overflows to
// infinity and keeps NaN a NaN, as numpy and PyTorch do.

let f16Table: Uint32Array | null = null;

/** float32 bits of every F16 value, built once (256 KiB). */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) {
      table[h] = sign | 0x7f800000 | (mant << 13); // inf, NaN (payload kept)
    } else if (exp !== 0) {
      table[h] = sign | ((exp + 112) << 23) | (mant << 13); // normal: rebias 15 -> 127
    } else if (mant === 0) {
      table[h] = sign; // ±0
    } else {
      let e = 113; // subnormal m * 2^-24: normalise so that the implicit bit is set
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      table[h] = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
  }
  f16Table = table;
  return table;
}

/** Widens F16 bit patterns into `out` (float32), exactly. */
export function f16ToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const table = f16ToF32Table();
  const bits = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]];
  return out;
}

/** Widens BF16 bit patterns into `out` (float32), exactly: the upper half of the float32. */
export function bf16ToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** Rounds one float32 bit pattern to F16 bits. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const e = exp - 112; // F16 exponent field
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // F16 subnormal (or zero): m = value / 2^-24, rounded.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const rest = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let m = full >>> shift;
    if (rest > half || (rest === half && (m & 1) === 1)) m++; // 0x400 is the smallest normal
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let out = sign | (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (out & 1) === 1)) out++; // a carry rounds up to inf
  return out;
}

/** Narrows float32 to F16 bits, round to nearest even. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

/** Narrows float32 to BF16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = (x >>> 16) | 0x40;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}
