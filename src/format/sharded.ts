// Sharded checkpoints: `model.safetensors.index.json` maps each tensor name to the shard file that
// holds it ({ "metadata": {...}, "weight_map": { name: "model-00001-of-00002.safetensors" } }).
// The map is checked against the shards' own headers: every shard exists, every mapped tensor is
// in its shard, and no shard holds a tensor that the map does not send there.

import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { SafetensorsError } from "./errors.js";
import { SafetensorsReader } from "./safetensors.js";

export const indexFileName = "model.safetensors.index.json";

/** The weight map of an index file: tensor name -> shard file name (a name in the same folder). */
export async function readShardIndex(indexFile: string): Promise<Map<string, string>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(indexFile, "utf8"));
  } catch (cause) {
    throw new SafetensorsError(indexFile, null, `cannot read the index: ${String(cause)}`, {
      cause,
    });
  }
  const map =
    typeof raw === "object" && raw !== null && !Array.isArray(raw)
      ? (raw as Record<string, unknown>).weight_map
      : undefined;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new SafetensorsError(indexFile, null, "weight_map must be an object");
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    // A shard is a plain file name next to the index: never a path that leaves the folder.
    if (typeof shard !== "string" || shard === "" || basename(shard) !== shard || shard === "..") {
      throw new SafetensorsError(
        indexFile,
        name,
        `weight_map entry ${JSON.stringify(shard)} is not a file name in the checkpoint folder`,
      );
    }
    out.set(name, shard);
  }
  return out;
}

/**
 * Opens every shard named by an index and checks the index against the shards' headers.
 * Returns the open readers by tensor name (one reader per shard, shared); the caller closes
 * them (see closeAll).
 */
export async function openShards(indexFile: string): Promise<Map<string, SafetensorsReader>> {
  const weightMap = await readShardIndex(indexFile);
  const dir = join(indexFile, "..");
  const readers = new Map<string, SafetensorsReader>();
  try {
    for (const shard of new Set(weightMap.values())) {
      try {
        readers.set(shard, await SafetensorsReader.open(join(dir, shard)));
      } catch (cause) {
        const why = cause instanceof Error ? cause.message : String(cause);
        throw new SafetensorsError(indexFile, null, `shard ${shard}: ${why}`, { cause });
      }
    }
    const byTensor = new Map<string, SafetensorsReader>();
    for (const [name, shard] of weightMap) {
      const reader = readers.get(shard)!;
      if (!reader.tensors.has(name)) {
        throw new SafetensorsError(indexFile, name, `maps to ${shard}, which does not hold it`);
      }
      byTensor.set(name, reader);
    }
    for (const [shard, reader] of readers) {
      for (const name of reader.tensors.keys()) {
        if (weightMap.get(name) !== shard) {
          const mapped = weightMap.has(name) ? `maps it to ${weightMap.get(name)}` : "omits it";
          throw new SafetensorsError(
            indexFile,
            name,
            `is in shard ${shard} but the index ${mapped}`,
          );
        }
      }
    }
    return byTensor;
  } catch (error) {
    await closeAll(readers.values());
    throw error;
  }
}

/** Closes readers (each once, even when shared between tensors). */
export async function closeAll(readers: Iterable<SafetensorsReader>): Promise<void> {
  await Promise.all([...new Set(readers)].map((r) => r.close()));
}
