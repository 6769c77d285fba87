// `unmask pull OWNER/NAME[@REV]`: a model repository from the hub (or a mirror) into the local
// cache in the hub's layout (src/format/hub.ts); prints the snapshot folder, which --model takes.

import { defaultHubCache, HubError, parseRepoRef, pullRepo } from "../format/hub.js";
import { type CommandSpec, flag, intOption, parse, stringOption, UsageError } from "./args.js";
import type { Command } from "./command.js";
import { PhasedProgress } from "./progress.js";

const spec: CommandSpec = {
  name: "pull",
  usage: ["pull [options] OWNER/NAME[@REVISION]"],
  description: `
Downloads a model repository (a branch, tag or commit; default main) from the Hugging Face hub
into a local cache in the hub's own layout (blobs, snapshots/COMMIT, refs), and prints the
snapshot folder: pass it to --model. Every file is checked against the repository listing (sha256
for LFS files, the git blob hash for the others) before it is used; a file that does not match is
deleted and the pull fails. An interrupted download resumes where it stopped, in the same run
(a cut connection) or the next one. A file name in the listing that would be written outside the
cache folder is refused.

Environment: HF_TOKEN (sent as a bearer token, for gated or private repositories), HF_ENDPOINT
(a mirror instead of https://huggingface.co), HF_HUB_CACHE or HF_HOME (the cache folder, default
~/.cache/huggingface/hub). Progress goes to stderr.`,
  options: [
    {
      name: "cache",
      type: "string",
      value: "DIR",
      description: "the cache folder (default: see Environment)",
    },
    {
      name: "endpoint",
      type: "string",
      value: "URL",
      description: "the hub (default HF_ENDPOINT or https://huggingface.co)",
    },
    {
      name: "retries",
      type: "string",
      value: "N",
      description: "resumed attempts per file after a cut connection (default 5)",
    },
    { name: "json", type: "boolean", description: "print the result as JSON" },
  ],
  examples: [
    "unmask pull Dream-org/Dream-Coder-v0-Instruct-7B",
    "unmask pull GSAI-ML/LLaDA-8B-Instruct@main --cache /data/hub",
    "HF_ENDPOINT=https://hf-mirror.example unmask pull Qwen/Qwen2.5-Coder-0.5B",
  ],
  sections: [
    [
      "JSON output",
      "repo, revision, commit, snapshot (the folder), files, downloaded (bytes fetched by this run).",
    ],
  ],
  maxPositionals: 1,
};

async function run(argv: string[]): Promise<number> {
  const parsed = parse(spec, argv);
  const [target] = parsed.positionals;
  if (target === undefined) throw new UsageError("pull: name a repository, OWNER/NAME[@REVISION]");
  let ref: ReturnType<typeof parseRepoRef>;
  try {
    ref = parseRepoRef(target);
  } catch (error) {
    throw new UsageError(`pull: ${(error as Error).message}`);
  }
  const bar = new PhasedProgress("pull");
  try {
    const result = await pullRepo(ref, {
      cache: stringOption(parsed, "cache") ?? defaultHubCache(),
      endpoint: stringOption(parsed, "endpoint"),
      retries: intOption(parsed, "retries", 0) ?? undefined,
      onProgress: (p) =>
        bar.update(p.state === "skip" ? `${p.path} (cached)` : p.path, p.done, p.size),
    });
    bar.end();
    if (flag(parsed, "json")) {
      process.stdout.write(
        `${JSON.stringify({ repo: ref.repo, revision: ref.revision, ...result })}\n`,
      );
    } else {
      process.stdout.write(`${result.snapshot}\n`);
    }
    return 0;
  } catch (error) {
    bar.end();
    if (error instanceof HubError) {
      process.stderr.write(`unmask pull: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

export const pull: Command = { spec, run };
