// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header, then the data section. The header maps each tensor
// name to { dtype, shape, data_offsets: [begin, end] } (offsets relative to the data section),
// plus an optional "__metadata__" string map.
//
// The header is validated in full before any tensor byte is read (the checks of the reference
// implementation's `validate`): bounded length, a JSON object, known dtypes, shapes of
// non-negative integers, byte lengths that match shape x dtype, offsets that tile the data
// section exactly, without overlap or gap. Tensors are then read one at a time by position, so a
// checkpoint never sits in memory whole: float32 tensors go straight into their final array,
// F16/BF16/F64 through a small scratch buffer.

import { readSync } from "node:fs";
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { SafetensorsError } from "./errors.js";
import { bf16ToF32, f16ToF32 } from "./half.js";

/** Element types of the safetensors format that we read. */
export type Dtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Bytes per element of each dtype. */
export const dtypeBytes: Readonly<Record<Dtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** The dtypes that readFloat32 converts. */
export const floatDtypes: readonly Dtype[] = ["F64", "F32", "F16", "BF16"];

/** The largest header we accept, as the reference implementation does (100 MB). */
export const maxHeaderBytes = 100_000_000;

/** Largest read of a tensor that needs conversion. */
export const scratchBytes = 1 << 20;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Offset of the tensor's first byte in the file (not the data section). */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  /** Tensors in file order. */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDtype(v: unknown): v is Dtype {
  return typeof v === "string" && Object.hasOwn(dtypeBytes, v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Number of elements of a shape ([] is a scalar: 1). */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Validates the JSON header of a safetensors file whose header is `headerBytes` long and whose
 * data section is `dataBytes` long. Pure: used by SafetensorsReader.open and by tests.
 */
export function parseSafetensorsHeader(
  file: string,
  header: Uint8Array,
  dataBytes: number,
): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(header));
  } catch (cause) {
    throw new SafetensorsError(file, null, `header is not valid UTF-8 JSON: ${String(cause)}`, {
      cause,
    });
  }
  if (!isObject(raw)) throw new SafetensorsError(file, null, "header is not a JSON object");
  const dataStart = 8 + header.length;
  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(raw)) {
    if (name === "__metadata__") {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === "string")) {
        throw new SafetensorsError(file, null, "__metadata__ must map strings to strings");
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const fail = (message: string) => new SafetensorsError(file, name, message);
    if (!isObject(entry)) throw fail("header entry is not an object");
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDtype(dtype)) {
      throw fail(
        `unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(dtypeBytes).join(", ")})`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      throw fail(`shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every(isIndex) ||
      offsets[0] > offsets[1]
    ) {
      throw fail(
        `data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataBytes) {
      throw fail(
        `data_offsets [${begin}, ${end}] run past the end of the data section (${dataBytes} bytes): the file is truncated or the offsets are out of range`,
      );
    }
    const expected = shapeSize(shape) * dtypeBytes[dtype];
    if (!Number.isSafeInteger(expected) || expected !== end - begin) {
      throw fail(
        `shape [${shape.join(", ")}] of ${dtype} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  // The tensors must tile the data section: sorted by offset, each starts where the last ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: string | null = null;
  for (const t of sorted) {
    if (t.begin < cursor) {
      throw new SafetensorsError(
        file,
        t.name,
        `data_offsets [${t.begin}, ${t.end}] overlap those of ${JSON.stringify(previous)} (which end at ${cursor})`,
      );
    }
    if (t.begin > cursor) {
      throw new SafetensorsError(
        file,
        t.name,
        `data_offsets [${t.begin}, ${t.end}] leave a gap after byte ${cursor} of the data section`,
      );
    }
    cursor = t.end;
    previous = t.name;
  }
  if (cursor !== dataBytes) {
    throw new SafetensorsError(
      file,
      null,
      `the tensors cover ${cursor} bytes but the data section holds ${dataBytes}`,
    );
  }
  const tensors = new Map<string, TensorInfo>();
  for (const t of sorted) {
    tensors.set(t.name, {
      dtype: t.dtype,
      shape: t.shape,
      offset: dataStart + t.begin,
      byteLength: t.end - t.begin,
    });
  }
  return { tensors, metadata };
}

/** Largest single read or write (the OS caps one call a little under 2 GiB). */
const ioChunk = 1 << 30;

/**
 * Fills `target` from `position`, however many reads it takes. Synchronous: tensors are also read
 * while a graph is serialised (weights streamed into a session), which is synchronous code.
 */
function readExactlySync(
  handle: FileHandle,
  file: string,
  target: Uint8Array,
  position: number,
): void {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(ioChunk, target.length - done);
    const bytesRead = readSync(handle.fd, target, done, length, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(file, null, `unexpected end of file at byte ${position + done}`);
    }
    done += bytesRead;
  }
}

/** An open safetensors file with a validated header; read tensors by name, then close(). */
export class SafetensorsReader implements SafetensorsHeader {
  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  /** Opens `file` and validates its header; throws SafetensorsError on any inconsistency. */
  static async open(file: string): Promise<SafetensorsReader> {
    if (!isLittleEndian) throw new SafetensorsError(file, null, "big-endian hosts are unsupported");
    let handle: FileHandle;
    try {
      handle = await open(file, "r");
    } catch (cause) {
      throw new SafetensorsError(file, null, `cannot open: ${String(cause)}`, { cause });
    }
    try {
      const { size } = await handle.stat();
      if (size < 8) {
        throw new SafetensorsError(file, null, `file is ${size} bytes, too short for a header`);
      }
      const prefix = new Uint8Array(8);
      readExactlySync(handle, file, prefix, 0);
      const n = new DataView(prefix.buffer).getBigUint64(0, true);
      if (n > BigInt(maxHeaderBytes)) {
        throw new SafetensorsError(
          file,
          null,
          `header length ${n} exceeds the limit of ${maxHeaderBytes} bytes`,
        );
      }
      if (n > BigInt(size - 8)) {
        throw new SafetensorsError(
          file,
          null,
          `header length ${n} is larger than the file (${size} bytes) allows`,
        );
      }
      const header = new Uint8Array(Number(n));
      readExactlySync(handle, file, header, 8);
      const { tensors, metadata } = parseSafetensorsHeader(file, header, size - 8 - header.length);
      return new SafetensorsReader(file, handle, tensors, metadata);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  private info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(this.file, name, "no such tensor");
    return info;
  }

  /** The tensor's raw little-endian bytes, whatever its dtype. */
  async readBytes(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    const out = new Uint8Array(info.byteLength);
    readExactlySync(this.handle, this.file, out, info.offset);
    return out;
  }

  /**
   * A floating-point tensor (F32, F16, BF16, F64) as a new Float32Array, row-major. F32 is read
   * straight into the result; other dtypes are converted through `scratch` (at most 1 MiB; a
   * caller reading tensors one after another can pass one to reuse), so a read never holds more
   * than the result plus that.
   */
  async readFloat32(name: string, scratch?: ArrayBuffer): Promise<Float32Array> {
    return this.readFloat32Sync(name, scratch);
  }

  /** readFloat32, synchronously (for weights read while a graph is serialised). */
  readFloat32Sync(name: string, scratch?: ArrayBuffer): Float32Array {
    const info = this.info(name);
    if (!floatDtypes.includes(info.dtype)) {
      throw new SafetensorsError(
        this.file,
        name,
        `dtype ${info.dtype} is not a floating-point type`,
      );
    }
    const size = dtypeBytes[info.dtype];
    const n = info.byteLength / size;
    const out = new Float32Array(n);
    if (info.dtype === "F32") {
      readExactlySync(this.handle, this.file, new Uint8Array(out.buffer), info.offset);
      return out;
    }
    const buffer = scratch ?? new ArrayBuffer(Math.min(scratchBytes, info.byteLength));
    const perChunk = Math.floor(buffer.byteLength / size);
    for (let start = 0; start < n; start += perChunk) {
      const count = Math.min(perChunk, n - start);
      const chunk = new Uint8Array(buffer, 0, count * size);
      readExactlySync(this.handle, this.file, chunk, info.offset + start * size);
      const target = out.subarray(start, start + count);
      if (info.dtype === "F64") target.set(new Float64Array(buffer, 0, count));
      else if (info.dtype === "F16") f16ToF32(new Uint16Array(buffer, 0, count), target);
      else bf16ToF32(new Uint16Array(buffer, 0, count), target);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads every floating-point tensor of a file as float32 (for small files and tests). */
export async function readSafetensors(
  file: string,
): Promise<{ tensors: Map<string, Float32Array>; metadata: Record<string, string> }> {
  const reader = await SafetensorsReader.open(file);
  try {
    const tensors = new Map<string, Float32Array>();
    for (const name of reader.tensors.keys()) tensors.set(name, await reader.readFloat32(name));
    return { tensors, metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const length = Math.min(ioChunk, bytes.length - done);
    done += (await handle.write(bytes, done, length)).bytesWritten;
  }
}

export interface TensorEntry {
  dtype: Dtype;
  shape: readonly number[];
  /**
   * The elements in the dtype's own little-endian layout (e.g. F16 bits as a Uint16Array), or a
   * function that makes them when their turn to be written comes (a large file written without
   * holding all of it).
   */
  data: ArrayBufferView | (() => ArrayBufferView);
}

/**
 * Writes a safetensors file as the reference does: tensors ordered by element size (largest
 * first, so every tensor stays aligned), then by name; the header padded with spaces to a
 * multiple of 8 bytes. Written to a temporary file and renamed, so a crash leaves no half file.
 */
/** A tensor's data must hold exactly shape × dtype bytes. */
function checkEntryBytes(file: string, name: string, entry: TensorEntry, data: ArrayBufferView) {
  const bytes = shapeSize(entry.shape) * dtypeBytes[entry.dtype];
  if (data.byteLength !== bytes) {
    throw new SafetensorsError(
      file,
      name,
      `shape [${entry.shape.join(", ")}] of ${entry.dtype} needs ${bytes} bytes, data holds ${data.byteLength}`,
    );
  }
}

export async function writeSafetensors(
  file: string,
  tensors: ReadonlyMap<string, TensorEntry>,
  metadata?: Record<string, string>,
): Promise<void> {
  if (!isLittleEndian) throw new SafetensorsError(file, null, "big-endian hosts are unsupported");
  const names = [...tensors.keys()].sort((a, b) => {
    const bytes = dtypeBytes[tensors.get(b)!.dtype] - dtypeBytes[tensors.get(a)!.dtype];
    return bytes !== 0 ? bytes : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(file, null, `__metadata__ value of ${k} is not a string`);
      }
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors.get(name)!;
    if (name === "__metadata__" || name === "") {
      throw new SafetensorsError(file, name, "reserved tensor name");
    }
    if (!isDtype(dtype)) throw new SafetensorsError(file, name, `unknown dtype ${String(dtype)}`);
    if (!shape.every(isIndex)) {
      throw new SafetensorsError(file, name, `bad shape ${JSON.stringify(shape)}`);
    }
    const bytes = shapeSize(shape) * dtypeBytes[dtype];
    if (typeof data !== "function") checkEntryBytes(file, name, tensors.get(name)!, data);
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);

  const temp = `${file}.tmp-${process.pid}`;
  const handle = await open(temp, "w");
  try {
    await writeFully(handle, head);
    for (const name of names) {
      const entry = tensors.get(name)!;
      const data = typeof entry.data === "function" ? entry.data() : entry.data;
      checkEntryBytes(file, name, entry, data);
      await writeFully(handle, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    await handle.close();
    await rename(temp, file);
  } catch (error) {
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw error;
  }
}
