/**
 * Corpus assembly from the pinned npm packages of `data/corpus/packages.json`, and the
 * training of the project's tokenizer on it.
 *
 * `buildCorpus` installs the packages into a cache folder (`npm install --ignore-scripts`),
 * takes their hand-written sources (`selectSourceFiles`), normalises them, drops licence-only
 * headers, applies the README's quality filter, deduplicates exactly, caps each package, splits
 * held-out files by a hash of their path and writes `train.jsonl`, `valid.jsonl` and
 * `manifest.json`. Everything is sorted, so the same inputs give the same bytes.
 */
import { spawn } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { rename, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  BpeTokenizer,
  bpeTokenizerConfig,
  bpeToTokenizerJson,
  type TrainProgress,
  trainBpe,
} from "./bpe.js";
import {
  isHeldOut,
  type Language,
  languageOf,
  MAX_FILE_BYTES,
  normalizeSource,
  type RejectReason,
  rejectReason,
  selectSourceFiles,
  sha256Hex,
  stripLicenseHeader,
} from "./corpus-filter.js";

export interface CorpusOptions {
  /** The repository root (default: the folder of the `unmask` package.json above this file). */
  root?: string;
  /** The pinned package list (default `<root>/data/corpus/packages.json`). */
  packagesJson?: string;
  /** Only these packages of the list (default: all of them). */
  only?: readonly string[];
  /** Where train.jsonl, valid.jsonl and manifest.json go (default `<root>/.cache/corpus`). */
  outDir?: string;
  /** Install folder (default `<outDir>/packages`). */
  packagesDir?: string;
  /** Read packages from this existing node_modules-like folder and skip the install. */
  nodeModules?: string;
  /** Bytes kept per package at most (default 6 MB). */
  packageCapBytes?: number;
  /** Share of files held out for validation (default 0.02). */
  validFraction?: number;
}

export interface CorpusProgress {
  /** "install" is reported once, before `npm install` runs (never when it is skipped). */
  phase: "install" | "scan" | "write";
  filesDone: number;
  filesTotal: number;
  /** Bytes of normalised text read so far. */
  bytes: number;
}

/** Provenance of one corpus file (also the fields of each JSONL line, besides `text`). */
export interface CorpusFile {
  package: string;
  version: string;
  license: string;
  path: string;
  language: Language;
  bytes: number;
  sha256: string;
}

export interface CorpusDocument extends CorpusFile {
  text: string;
}

interface SplitStats {
  files: number;
  bytes: number;
  byLanguage: Record<Language, { files: number; bytes: number }>;
}

export interface CorpusManifest {
  packagesJsonSha256: string;
  packageCapBytes: number;
  validFraction: number;
  splits: { train: SplitStats; valid: SplitStats };
  packages: Record<
    string,
    { version: string; license: string; selected: number; kept: number; bytes: number }
  >;
  rejections: Partial<Record<RejectReason, { files: number; bytes: number }>>;
  files: (CorpusFile & { split: "train" | "valid" })[];
}

/** Thrown when the corpus cannot be assembled (missing files, install failure, version skew). */
export class CorpusError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CorpusError";
  }
}

// ---------------------------------------------------------------------------------------------
// Paths

/** The folder holding the `unmask` package.json, searched upward from this module. */
export function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, "package.json");
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, "utf8")).name === "unmask") return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** Where the repository keeps its pinned package list. */
export const packagesJsonPath = "data/corpus/packages.json";

function resolvePackagesJson(root: string, given: string | undefined): string {
  const path = given === undefined ? resolve(root, packagesJsonPath) : resolve(given);
  if (!existsSync(path)) throw new CorpusError(`${path}: not found`);
  return path;
}

/** The pinned versions of the list, narrowed to `only` (each of which must be on it). */
function pinnedPackages(
  path: string,
  text: string,
  only: readonly string[] | undefined,
): Record<string, string> {
  let pinned: unknown;
  try {
    pinned = (JSON.parse(text) as { dependencies?: unknown }).dependencies;
  } catch (cause) {
    throw new CorpusError(`${path}: not JSON`, { cause });
  }
  if (typeof pinned !== "object" || pinned === null) {
    throw new CorpusError(`${path}: no "dependencies" object`);
  }
  const all = pinned as Record<string, string>;
  if (only === undefined) return all;
  const missing = only.filter((name) => !(name in all));
  if (missing.length > 0) {
    throw new CorpusError(`${path}: does not pin ${missing.join(", ")}`);
  }
  return Object.fromEntries(only.map((name) => [name, all[name]]));
}

// ---------------------------------------------------------------------------------------------
// Install

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    child.on("error", (e) => fail(new CorpusError(`cannot run ${cmd}`, { cause: e })));
    child.on("close", (code) => {
      if (code === 0) ok();
      else fail(new CorpusError(`${cmd} ${args.join(" ")} exited with ${code}:\n${stderr}`));
    });
  });
}

/**
 * Installs the pinned packages into `dir` unless a stamp says that this exact packages.json is
 * installed already. `--legacy-peer-deps`: the pins are read, never run, and some of them have
 * conflicting peer ranges (@effect/platform wants effect 3, effect is pinned at 4).
 */
async function installPackages(
  dir: string,
  packagesJsonText: string,
  onInstall: () => void,
): Promise<string> {
  const stampPath = join(dir, ".unmask-install.json");
  const sha = sha256Hex(packagesJsonText);
  const nodeModules = join(dir, "node_modules");
  if (existsSync(stampPath) && existsSync(join(nodeModules, ".package-lock.json"))) {
    try {
      if (JSON.parse(readFileSync(stampPath, "utf8")).packagesJsonSha256 === sha) {
        return nodeModules;
      }
    } catch {
      // a broken stamp: install again
    }
  }
  onInstall();
  mkdirSync(dir, { recursive: true });
  await writeFile(join(dir, "package.json"), packagesJsonText);
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  await run(
    npm,
    ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--legacy-peer-deps"],
    dir,
  );
  await writeFile(stampPath, `${JSON.stringify({ packagesJsonSha256: sha })}\n`);
  return nodeModules;
}

// ---------------------------------------------------------------------------------------------
// Build

/** All file paths under `dir`, relative and `/`-separated; never enters node_modules. */
function listFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (e.name !== "node_modules") out.push(...listFiles(dir, rel));
    } else if (e.isFile()) {
      out.push(rel);
    }
  }
  return out;
}

function licenseOf(pkgJson: Record<string, unknown>): string {
  const l = pkgJson.license;
  if (typeof l === "string") return l;
  if (typeof l === "object" && l !== null && typeof (l as { type?: unknown }).type === "string") {
    return (l as { type: string }).type;
  }
  return "UNKNOWN";
}

function emptySplit(): SplitStats {
  const z = () => ({ files: 0, bytes: 0 });
  return {
    files: 0,
    bytes: 0,
    byLanguage: { typescript: z(), declarations: z(), javascript: z() },
  };
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

/** Assembles the corpus; see the module comment. Resolves to the manifest it wrote. */
export async function buildCorpus(
  options: CorpusOptions = {},
  onProgress?: (p: CorpusProgress) => void,
): Promise<CorpusManifest> {
  const root = options.root ?? findRepoRoot();
  const outDir = resolve(root, options.outDir ?? ".cache/corpus");
  const cap = options.packageCapBytes ?? 6_000_000;
  const validFraction = options.validFraction ?? 0.02;
  const pjPath = resolvePackagesJson(root, options.packagesJson);
  const listText = readFileSync(pjPath, "utf8");
  const pinned = pinnedPackages(pjPath, listText, options.only);
  // what is installed: the list narrowed to `only` (the whole list's text when not narrowed)
  const pjText =
    options.only === undefined
      ? listText
      : `${JSON.stringify({ private: true, dependencies: pinned }, null, 1)}\n`;

  let nodeModules = options.nodeModules;
  if (nodeModules === undefined) {
    nodeModules = await installPackages(
      resolve(options.packagesDir ?? join(outDir, "packages")),
      pjText,
      () => onProgress?.({ phase: "install", filesDone: 0, filesTotal: 0, bytes: 0 }),
    );
  }

  // Which files to read, package by package in name order.
  const plan: { name: string; version: string; license: string; dir: string; paths: string[] }[] =
    [];
  for (const name of Object.keys(pinned).sort()) {
    const dir = join(nodeModules, name);
    let pkgJson: Record<string, unknown>;
    try {
      pkgJson = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    } catch (cause) {
      throw new CorpusError(`package ${name} is not installed in ${nodeModules}`, { cause });
    }
    if (pkgJson.version !== pinned[name]) {
      throw new CorpusError(
        `package ${name}: installed ${String(pkgJson.version)}, pinned ${pinned[name]}`,
      );
    }
    const paths = selectSourceFiles(listFiles(dir), name);
    plan.push({ name, version: pinned[name], license: licenseOf(pkgJson), dir, paths });
  }
  const filesTotal = plan.reduce((n, p) => n + p.paths.length, 0);

  // Read, normalise, filter, deduplicate, cap.
  const rejections: CorpusManifest["rejections"] = {};
  const reject = (reason: RejectReason, bytes: number) => {
    const r = rejections[reason] ?? { files: 0, bytes: 0 };
    r.files++;
    r.bytes += bytes;
    rejections[reason] = r;
  };
  const seenHashes = new Set<string>();
  const kept: CorpusDocument[] = [];
  const packages: CorpusManifest["packages"] = {};
  let filesDone = 0;
  let bytesRead = 0;
  for (const pkg of plan) {
    const candidates: CorpusDocument[] = [];
    for (const path of pkg.paths) {
      filesDone++;
      const file = join(pkg.dir, path);
      const size = (await stat(file)).size;
      if (size > 4 * MAX_FILE_BYTES) {
        reject("too-large", size);
        continue;
      }
      const text = stripLicenseHeader(normalizeSource(readFileSync(file, "utf8")));
      const bytes = Buffer.byteLength(text, "utf8");
      bytesRead += bytes;
      const reason = rejectReason(text);
      const sha256 = sha256Hex(text);
      if (reason !== null) reject(reason, bytes);
      else if (seenHashes.has(sha256)) reject("duplicate", bytes);
      else {
        seenHashes.add(sha256);
        candidates.push({
          package: pkg.name,
          version: pkg.version,
          license: pkg.license,
          path,
          language: languageOf(path)!,
          bytes,
          sha256,
          text,
        });
      }
      if (filesDone % 200 === 0) {
        onProgress?.({ phase: "scan", filesDone, filesTotal, bytes: bytesRead });
      }
    }
    // The cap keeps a hash-ordered (so unbiased, deterministic) sample of the package.
    const order = candidates
      .map((d) => ({ d, h: sha256Hex(`cap\0${d.package}\0${d.path}`) }))
      .sort((x, y) => (x.h < y.h ? -1 : x.h > y.h ? 1 : 0));
    let total = 0;
    const keep = new Set<CorpusDocument>();
    for (const { d } of order) {
      if (total + d.bytes > cap) reject("package-cap", d.bytes);
      else {
        total += d.bytes;
        keep.add(d);
      }
    }
    const mine = candidates.filter((d) => keep.has(d));
    kept.push(...mine);
    packages[pkg.name] = {
      version: pkg.version,
      license: pkg.license,
      selected: pkg.paths.length,
      kept: mine.length,
      bytes: total,
    };
  }
  onProgress?.({ phase: "scan", filesDone, filesTotal, bytes: bytesRead });

  // Split and write, in (package, path) order.
  const splits = { train: emptySplit(), valid: emptySplit() };
  const lines = { train: [] as string[], valid: [] as string[] };
  const files: CorpusManifest["files"] = [];
  for (const d of kept) {
    const split = isHeldOut(d.package, d.path, validFraction) ? "valid" : "train";
    const s = splits[split];
    s.files++;
    s.bytes += d.bytes;
    s.byLanguage[d.language].files++;
    s.byLanguage[d.language].bytes += d.bytes;
    const { text, ...provenance } = d;
    files.push({ ...provenance, split });
    lines[split].push(`${JSON.stringify({ ...provenance, text })}\n`);
  }
  const manifest: CorpusManifest = {
    packagesJsonSha256: sha256Hex(pjText),
    packageCapBytes: cap,
    validFraction,
    splits,
    packages,
    rejections: Object.fromEntries(Object.entries(rejections).sort(([a], [b]) => (a < b ? -1 : 1))),
    files,
  };
  onProgress?.({ phase: "write", filesDone, filesTotal, bytes: bytesRead });
  mkdirSync(outDir, { recursive: true });
  await writeAtomic(join(outDir, "train.jsonl"), lines.train.join(""));
  await writeAtomic(join(outDir, "valid.jsonl"), lines.valid.join(""));
  await writeAtomic(join(outDir, "manifest.json"), `${JSON.stringify(manifest, null, 1)}\n`);
  return manifest;
}

// ---------------------------------------------------------------------------------------------
// Reading and tokenizer training

/** The documents of a corpus JSONL file, in file order. */
export async function* readCorpusJsonl(path: string): AsyncGenerator<CorpusDocument> {
  const rl = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (line.length === 0) continue;
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch (cause) {
      throw new CorpusError(`${path}:${n}: not JSON`, { cause });
    }
    if (
      typeof doc !== "object" ||
      doc === null ||
      typeof (doc as { text?: unknown }).text !== "string"
    ) {
      throw new CorpusError(`${path}:${n}: expected an object with a "text" string`);
    }
    yield doc as CorpusDocument;
  }
}

export interface TrainTokenizerOptions {
  root?: string;
  /** Folder of train.jsonl/valid.jsonl (default `<root>/.cache/corpus`). */
  corpusDir?: string;
  /** Where tokenizer.json (and tokenizer_config.json beside it) go (default `<corpusDir>/tokenizer.json`). */
  out?: string;
  vocabSize?: number;
}

export interface TrainTokenizerResult {
  path: string;
  vocabSize: number;
  trainFiles: number;
  trainBytes: number;
  validFiles: number;
  validBytes: number;
  validTokens: number;
  /** UTF-8 bytes per token on the held-out split. */
  validBytesPerToken: number;
  trainSeconds: number;
}

/**
 * Trains the byte-level BPE on train.jsonl only (held-out files never reach the tokenizer),
 * writes tokenizer.json and tokenizer_config.json, and measures bytes/token on valid.jsonl.
 */
export async function trainTokenizerFromCorpus(
  options: TrainTokenizerOptions = {},
  onProgress?: (p: TrainProgress) => void,
): Promise<TrainTokenizerResult> {
  const root = options.root ?? findRepoRoot();
  const dir = resolve(root, options.corpusDir ?? ".cache/corpus");
  const out = resolve(root, options.out ?? join(dir, "tokenizer.json"));
  let trainFiles = 0;
  let trainBytes = 0;
  async function* texts(): AsyncGenerator<string> {
    for await (const d of readCorpusJsonl(join(dir, "train.jsonl"))) {
      trainFiles++;
      trainBytes += Buffer.byteLength(d.text, "utf8");
      yield d.text;
    }
  }
  const t0 = performance.now();
  const model = await trainBpe(texts(), { vocabSize: options.vocabSize ?? 8192, onProgress });
  const trainSeconds = (performance.now() - t0) / 1000;

  mkdirSync(dirname(out), { recursive: true });
  await writeAtomic(out, JSON.stringify(bpeToTokenizerJson(model)));
  await writeAtomic(
    join(dirname(out), "tokenizer_config.json"),
    `${JSON.stringify(bpeTokenizerConfig(model), null, 2)}\n`,
  );

  const tok = new BpeTokenizer(model);
  let validFiles = 0;
  let validBytes = 0;
  let validTokens = 0;
  for await (const d of readCorpusJsonl(join(dir, "valid.jsonl"))) {
    validFiles++;
    validBytes += Buffer.byteLength(d.text, "utf8");
    validTokens += tok.encodeOrdinary(d.text).length;
  }
  return {
    path: out,
    vocabSize: tok.vocabSize,
    trainFiles,
    trainBytes,
    validFiles,
    validBytes,
    validTokens,
    validBytesPerToken: validBytes / Math.max(1, validTokens),
    trainSeconds,
  };
}
