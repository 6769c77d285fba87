/**
 * Pure text functions of corpus assembly: which files to take from a package, how to normalise
 * them, and the quality filter of `data/corpus/README.md`.
 */
import { createHash } from "node:crypto";

/** Why a file was left out of the corpus. */
export type RejectReason =
  | "too-small"
  | "too-large"
  | "generated"
  | "long-lines"
  | "base64"
  | "low-alnum"
  | "imports"
  | "duplicate"
  | "package-cap";

export type Language = "typescript" | "declarations" | "javascript";

export const MIN_FILE_BYTES = 300;
export const MAX_FILE_BYTES = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Selection: which files of an installed package are hand-written sources

/** Folders never read: builds, vendored deps, tests, docs, locale tables, old typings copies. */
const SKIP_DIRS = new Set([
  "node_modules",
  "dist",
  "cjs",
  "esm",
  "build",
  "min",
  "umd",
  "bundle",
  "locale",
  "locales",
  "test",
  "tests",
  "__tests__",
  "spec",
  "__mocks__",
  "fixtures",
  "__fixtures__",
  "examples",
  "example",
  "docs",
  "skills",
  "ai-docs",
  "scripts",
  "bench",
  "benchmarks",
  "integration",
  "coverage",
]);
/** `ts5.6/`, `ts3.1-typings/`: copies of a package's typings for older compilers. */
const TYPINGS_COPY_DIR = /^ts\d+\.\d+(-typings)?$/;
/** Bundles and embedded assets, by file name. */
const SKIP_FILES = new Set([
  "typescript.js",
  "_tsc.js",
  "_tsserver.js",
  "_typingsInstaller.js",
  "tsc.js",
  "tsserver.js",
  "tsserverlibrary.js",
  "typingsInstaller.js",
  "watchGuard.js",
  "cancellationToken.js",
  "httpApiScalar.ts",
  "httpApiSwagger.ts",
]);
/** Monolithic builds of code that the package also ships module by module, by package/path. */
const SKIP_PATHS = new Set(["lodash/lodash.js", "lodash/core.js"]);
const SKIP_FILE_RE =
  /\.min\.[cm]?js$|[.-]bundle\.[cm]?js$|\.(test|spec|bench|test-d)\.[cm]?[jt]sx?$|\.check\.js$|(^|\/)[^/]*\.config\.[cm]?[jt]s$/;
const CODE_FILE_RE = /\.(d\.[cm]?ts|[cm]?ts|tsx|[cm]?js|jsx)$/;

/** The language of a source path, or null when it is not a code file we take. */
export function languageOf(path: string): Language | null {
  const m = CODE_FILE_RE.exec(path);
  if (m === null) return null;
  const ext = m[1];
  if (ext.startsWith("d.")) return "declarations";
  return ext.includes("ts") ? "typescript" : "javascript";
}

/**
 * Chooses the hand-written sources among a package's files (paths relative to the package
 * root, `/`-separated). A package that ships a `src/` folder contributes only files under some
 * `src/` folder (preact keeps `hooks/src/` etc.); builds, bundles, minified files, tests, docs,
 * locale tables and old typings copies are never taken; `x.cjs`/`x.d.cts`/`x.d.mts` is left out
 * when `x.js`/`x.d.ts` is there; lodash's monolithic `lodash.js`/`core.js` are left out for its
 * per-function modules. Returns the chosen paths sorted.
 */
export function selectSourceFiles(paths: readonly string[], pkg = ""): string[] {
  const all = new Set(paths);
  const hasSrc = paths.some((p) => p.startsWith("src/") && languageOf(p) !== null);
  const chosen = paths.filter((p) => {
    if (languageOf(p) === null) return false;
    const parts = p.split("/");
    const name = parts[parts.length - 1];
    const dirs = parts.slice(0, -1);
    if (hasSrc && !dirs.includes("src")) return false;
    if (dirs.some((d) => SKIP_DIRS.has(d) || TYPINGS_COPY_DIR.test(d))) return false;
    if (SKIP_FILES.has(name) || SKIP_FILE_RE.test(p) || SKIP_PATHS.has(`${pkg}/${p}`)) return false;
    const twin = p.replace(/\.d\.[cm]ts$/, ".d.ts").replace(/\.cjs$/, ".js");
    return twin === p || !all.has(twin);
  });
  return chosen.sort();
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/** LF line endings, no trailing white space, no BOM, exactly one final newline (or empty). */
export function normalizeSource(text: string): string {
  const body = text
    .replace(/^\ufeff/, "")
    .replace(/\r\n?/g, "\n")
    .replace(/[ \t\f\v]+$/gm, "")
    .replace(/\n+$/, "");
  return body.length === 0 ? "" : `${body}\n`;
}

const LEADING_COMMENT_RE = /^(?:\/\*[\s\S]*?\*\/|(?:\/\/[^\n]*(?:\n|$))+)\n*/;
const LICENSE_WORDS_RE =
  /\b(copyright|licen[cs]ed?|spdx-license-identifier|all rights reserved)\b/i;
const LICENSE_TEXT_RE =
  /permission is hereby granted|licensed under the apache license|redistribution and use in source/i;
const DOC_TAGS_RE = /@(fileoverview|file|module|packageDocumentation|description|overview|see)\b/;

/**
 * Drops a leading comment that is only a licence header, with the blank lines after it: it
 * names a licence or copyright, carries no file-level documentation tag, and is either short
 * (at most 12 lines) or the full text of a licence (MIT, Apache, BSD). A long comment that also
 * explains the file (mobx's tour of its sources) is kept. Run after `normalizeSource`.
 */
export function stripLicenseHeader(text: string): string {
  const m = LEADING_COMMENT_RE.exec(text);
  if (m === null) return text;
  const comment = m[0];
  if (!LICENSE_WORDS_RE.test(comment) || DOC_TAGS_RE.test(comment)) return text;
  const lines = comment.trimEnd().split("\n").length;
  if (lines > 12 && !LICENSE_TEXT_RE.test(comment)) return text;
  return text.slice(comment.length);
}

// ---------------------------------------------------------------------------------------------
// The filter

const GENERATED_RE = /@generated|DO NOT EDIT|auto-generated/i;
const BASE64_RUN_RE = /[A-Za-z0-9+/=_-]{300,}/;
const IMPORT_LINE_RE =
  /^\s*(?:import[\s{*'"]|import$|export\s+(?:type\s+)?(?:\*|\{[^}]*\})\s*(?:as\s+\w+\s*)?from\b|export\s*\{[^}]*\}\s*;?\s*$|(?:const|let|var)\s+[^=]+=\s*require\(|module\.exports\s*=\s*require\()/;

/**
 * The README's filter, on normalised text; returns why the file is rejected, or null to keep it.
 * Rejects a file that: is under 300 B or over 1 MB (UTF-8); has `@generated`, `DO NOT EDIT` or
 * `auto-generated` (any case) in its first 2 KB; has an average line length over 100 or more
 * than 5% of its characters in lines over 300; holds a run of 300+ base64-like characters; is
 * less than 30% ASCII alphanumeric; or has more than 60% import/re-export lines among its
 * non-blank lines (ESM imports, `export … from`, `export { … }`, `require` bindings).
 */
export function rejectReason(text: string): RejectReason | null {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes < MIN_FILE_BYTES) return "too-small";
  if (bytes > MAX_FILE_BYTES) return "too-large";
  if (GENERATED_RE.test(text.slice(0, 2048))) return "generated";

  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  let inLongLines = 0;
  let nonBlank = 0;
  let importLines = 0;
  for (const line of lines) {
    if (line.length > 300) inLongLines += line.length;
    if (line.trim().length === 0) continue;
    nonBlank++;
    if (IMPORT_LINE_RE.test(line)) importLines++;
  }
  const chars = text.length;
  if (chars / Math.max(1, lines.length) > 100 || inLongLines > 0.05 * chars) return "long-lines";
  if (BASE64_RUN_RE.test(text)) return "base64";
  let alnum = 0;
  for (let i = 0; i < chars; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) alnum++;
  }
  if (alnum < 0.3 * chars) return "low-alnum";
  if (importLines > 0.6 * nonBlank) return "imports";
  return null;
}

// ---------------------------------------------------------------------------------------------
// Hashes

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Whether a file goes to the held-out split: a deterministic hash of its package and path,
 * never of its contents or lines, so a file stays in its split when it changes.
 */
export function isHeldOut(pkg: string, path: string, fraction: number): boolean {
  const h = createHash("sha256").update(`split\0${pkg}\0${path}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < fraction;
}
