// Token ids as the CLI shows them: decoded text with special tokens dropped, and a mask still on
// the canvas (a run stopped early) drawn as the placeholder.

import { renderCanvas } from "../diffusion/denoise.js";
import type { LoadedModel } from "../host/models.js";
import { endTokenIds } from "../model/config.js";
import { type CanvasLook, maskGlyph } from "./terminal.js";

/** Decodes ids for display: special tokens (BOS, EOS, pad) are not text. */
export function displayDecode(loaded: LoadedModel): (ids: ArrayLike<number>) => string {
  return (ids) => loaded.tokenizer.decode(ids, { skipSpecialTokens: true });
}

/** The text of `ids`, masks shown as the placeholder. */
export function idsText(loaded: LoadedModel, ids: ArrayLike<number>): string {
  const mask = loaded.config.maskTokenId ?? -1;
  return renderCanvas(ids, 0, ids.length, displayDecode(loaded), mask, maskGlyph);
}

/** How the live canvas draws this model's canvases over `view`. */
export function canvasLook(loaded: LoadedModel, view: readonly [number, number]): CanvasLook {
  return {
    view,
    maskId: loaded.config.maskTokenId ?? -1,
    endTokens: endTokenIds(loaded.config),
    decode: displayDecode(loaded),
  };
}
