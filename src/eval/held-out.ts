// The held-out split of the corpus (`valid.jsonl`, files never trained on) in the two forms the
// evaluation needs: its files as documents (infill tasks, prompts of samples), and its token
// stream packed into rows for bits per byte — exactly as training's own validation packs it
// (documents joined by EOS, the project's byte-level BPE, rows of `length` tokens), so that
// `unmask eval` and the loss curve of `unmask train` measure the same bytes.

import { BpeTokenizer, bpeFromTokenizerJson } from "../train/bpe.js";
import { type CorpusDocument, readCorpusJsonl } from "../train/corpus.js";
import { PackedRows, type TokenizeProgress, tokenizeCorpus } from "../train/data.js";
import { type EvalText, packedEvalText } from "../train/eval.js";
import type { SourceDocument } from "./infill-tasks.js";

/** The files of a corpus JSONL split, named `<package>@<version>/<path>`. */
export async function readHeldOutDocuments(file: string): Promise<SourceDocument[]> {
  const docs: SourceDocument[] = [];
  for await (const d of readCorpusJsonl(file)) {
    // only `text` is checked by the reader: the provenance may be missing
    const { package: pkg, version, path } = d as Partial<CorpusDocument>;
    if (typeof path !== "string") {
      docs.push({ source: `${file}:${docs.length + 1}`, text: d.text });
    } else {
      docs.push({
        source: typeof pkg === "string" ? `${pkg}@${version}/${path}` : path,
        path,
        text: d.text,
      });
    }
  }
  return docs;
}

export interface HeldOutRowsOptions {
  /** The corpus JSONL split (`valid.jsonl`). */
  corpus: string;
  /** The model's tokenizer.json, parsed: one of the project's byte-level BPEs. */
  tokenizerJson: unknown;
  /** Tokens per row. */
  length: number;
  /** Rows at most (the first ones of the stream). */
  rows: number;
  onProgress?: (p: TokenizeProgress) => void;
}

/**
 * The first `rows` rows of `length` tokens of the split, with their exact byte count (the token
 * stream is cached beside the corpus, as training caches it). Throws RangeError when the split
 * holds fewer than `length` tokens.
 */
export async function heldOutRows(o: HeldOutRowsOptions): Promise<EvalText> {
  const bpe = new BpeTokenizer(bpeFromTokenizerJson(o.tokenizerJson));
  const stream = await tokenizeCorpus({
    corpus: o.corpus,
    tokenizer: bpe,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  const rows = new PackedRows(stream.tokens, o.length);
  if (rows.count === 0) {
    throw new RangeError(`${o.corpus}: fewer than ${o.length} tokens, not one row to score`);
  }
  return packedEvalText(rows, bpe, o.rows);
}
