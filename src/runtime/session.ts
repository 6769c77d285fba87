// The one module that imports onnxruntime: sessions, threads, feeds and fetches.
// Everything else speaks HostTensor, so a browser (onnxruntime-web) or CUDA backend is a change
// here only.

import { once } from "node:events";
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import ort from "onnxruntime-node";
import type { Graph } from "../graph/graph.js";

export type HostData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
export type HostType = "float32" | "float64" | "int32" | "int64" | "bool";

/** A tensor in host memory, as fed to or fetched from a session. */
export interface HostTensor {
  type: HostType;
  data: HostData;
  dims: readonly number[];
}

export const floatTensor = (data: Float32Array, dims: readonly number[]): HostTensor => ({
  type: "float32",
  data,
  dims,
});
export const int32Tensor = (data: Int32Array, dims: readonly number[]): HostTensor => ({
  type: "int32",
  data,
  dims,
});

/** An int64 [1] holding n: a length or count chosen at run time (Slice's end, TopK's k). */
export const countTensor = (n: number): HostTensor => ({
  type: "int64",
  data: BigInt64Array.of(BigInt(n)),
  dims: [1],
});

export interface SessionOptions {
  /** Intra-op threads; default: $UNMASK_THREADS, else every core. */
  threads?: number;
  /**
   * Graphs with more weight bytes than this go through an external-data file (default 64 MiB;
   * at most protobuf's 2 GB limit): their weights are streamed to it tensor by tensor, where an
   * in-memory model would hold a serialised copy of them beside onnxruntime's own.
   */
  externalDataAbove?: number;
  /**
   * Whether idle worker threads spin waiting for work (onnxruntime's default: faster for one
   * busy session, but two sessions used in turn steal each other's cores).
   */
  spinning?: boolean;
  /**
   * Where the graph runs (default "cpu"). "cuda" needs onnxruntime-node's CUDA execution
   * provider (Linux x64, CUDA 12 and cuDNN 9 on the machine): see devices' install hint.
   */
  device?: Device;
}

export type Device = "cpu" | "cuda";
export const devices: readonly Device[] = ["cpu", "cuda"];

/** How to get the CUDA execution provider's binaries (onnxruntime-node's README). */
export const cudaInstallHint =
  "install onnxruntime-node's CUDA binaries (Linux x64, CUDA 12 and cuDNN 9 on the machine): npm install onnxruntime-node --onnxruntime-node-install-cuda=v12; or run on the CPU (the default)";

/** The device asked for cannot run the graph (its execution provider is not installed). */
export class DeviceError extends Error {
  override name = "DeviceError";
}

/** The largest piece written in one call (the OS refuses a single write of 2 GiB or more). */
const writeLimit = 2 ** 30;

function defaultThreads(): number {
  const fromEnv = Number(process.env.UNMASK_THREADS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : availableParallelism();
}

export class RuntimeError extends Error {
  override name = "RuntimeError";
}

export class Session {
  private constructor(
    private readonly inner: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  /** Compiles a graph into a session (in memory, or through a temporary file when large). */
  static async fromGraph(graph: Graph, options: SessionOptions = {}): Promise<Session> {
    const weightBytes = graph.initializers.reduce((n, i) => n + i.byteLength, 0);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: options.threads ?? defaultThreads(),
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: options.spinning === false ? "0" : "1" } } },
      executionProviders: [options.device ?? "cpu"],
    };
    let inner: ort.InferenceSession;
    if (weightBytes <= Math.min(options.externalDataAbove ?? 64 * 2 ** 20, 1.5 * 2 ** 30)) {
      const { model } = graph.toModel();
      inner = await createChecked(
        () => ort.InferenceSession.create(model, sessionOptions),
        options.device,
      );
    } else {
      // The weights go to an external-data file that onnxruntime reads (streamed out tensor by
      // tensor, lazy ones read just then: no second copy in memory), removed once loaded.
      const dir = mkdtempSync(join(tmpdir(), "unmask-"));
      try {
        const { model, external } = graph.toModel({ externalData: "weights.bin" });
        const stream = createWriteStream(join(dir, "weights.bin"));
        for (const chunk of external) {
          // one write call takes under 2 GiB (an embedding of a 150k vocabulary is more)
          for (let at = 0; at < chunk.byteLength; at += writeLimit) {
            if (!stream.write(chunk.subarray(at, at + writeLimit))) await once(stream, "drain");
          }
        }
        stream.end();
        await once(stream, "finish");
        writeFileSync(join(dir, "model.onnx"), model);
        inner = await createChecked(
          () => ort.InferenceSession.create(join(dir, "model.onnx"), sessionOptions),
          options.device,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    return new Session(inner, inner.inputNames, inner.outputNames);
  }

  /**
   * Runs the session; returns the requested outputs (default: all). `timing.ms` receives the
   * milliseconds spent inside onnxruntime's run call (feeds wrapped, outputs not yet converted).
   */
  async run(
    feeds: Record<string, HostTensor>,
    outputs: readonly string[] = this.outputNames,
    timing?: { ms: number },
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      ortFeeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    }
    let result: ort.InferenceSession.ReturnType;
    const t0 = performance.now();
    try {
      result = await this.inner.run(ortFeeds, outputs as string[]);
      if (timing !== undefined) timing.ms = performance.now() - t0;
    } catch (cause) {
      throw new RuntimeError(`onnxruntime run failed: ${(cause as Error).message}`, { cause });
    }
    const out: Record<string, HostTensor> = {};
    for (const name of outputs) {
      const t = result[name];
      out[name] = { type: t.type as HostType, data: t.data as HostData, dims: t.dims };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

async function createChecked(
  create: () => Promise<ort.InferenceSession>,
  device: Device = "cpu",
): Promise<ort.InferenceSession> {
  try {
    return await create();
  } catch (cause) {
    const message = (cause as Error).message;
    if (device === "cuda" && /cuda|shared library|provider/i.test(message)) {
      throw new DeviceError(
        `--device cuda: the CUDA execution provider cannot be loaded (${message}); ${cudaInstallHint}`,
        {
          cause,
        },
      );
    }
    throw new RuntimeError(`onnxruntime could not load the graph: ${(cause as Error).message}`, {
      cause,
    });
  }
}
