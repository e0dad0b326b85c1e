// The one way the extension talks to pgfork: its CLI, in the work tree. All the logic
// (which project, which daemon or remote server, pairing rules, errors in words) stays
// in pgfork, so the extension behaves exactly as the terminal does, locally or against a
// team server the CLI is configured for.

import { execFile } from "child_process";
import * as path from "path";

/**
 * Where pgfork is. Editors started from a desktop often have a PATH without the user's
 * additions (`~/.cargo/bin`), so after the setting and PATH come the binary the
 * repository's git hooks run (pgfork wrote its path there) and the usual install places.
 */
export function findPgfork(configured: string, searchPath: string, home: string, hookText: string | null, isExecutable: (p: string) => boolean): string {
  if (configured.includes("/")) {
    return configured;
  }
  const candidates = searchPath
    .split(path.delimiter)
    .filter((d) => d !== "")
    .map((d) => path.join(d, configured));
  const fromHook = hookText ? /pgfork_bin='([^']+)'/.exec(hookText)?.[1] : undefined;
  if (configured === "pgfork") {
    if (fromHook) {
      candidates.push(fromHook);
    }
    candidates.push(path.join(home, ".cargo", "bin", "pgfork"), "/usr/local/bin/pgfork", "/usr/bin/pgfork");
  }
  return candidates.find(isExecutable) ?? configured;
}

/** A failed pgfork command: its own one-sentence error, ready to show. */
export class PgforkError extends Error {
  constructor(
    message: string,
    readonly args: string[],
    readonly code: number | null,
  ) {
    super(message);
  }
}

export interface Runner {
  run(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
}

/** The last non-empty line of pgfork's stderr, without its "error: " prefix. */
export function errorSentence(stderr: string, fallback: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const line = lines.find((l) => l.startsWith("error:")) ?? lines[lines.length - 1];
  return (line ?? fallback).replace(/^error:\s*/, "");
}

export class Cli implements Runner {
  constructor(
    private readonly executable: () => string,
    private readonly cwd: string,
    private readonly log: (line: string) => void,
  ) {}

  run(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const exe = this.executable();
    return new Promise((resolve, reject) => {
      execFile(
        exe,
        args,
        {
          cwd: this.cwd,
          timeout: opts.timeoutMs ?? 120_000,
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, NO_COLOR: "1" },
        },
        (err, stdout, stderr) => {
          if (err) {
            const code = typeof err.code === "number" ? err.code : null;
            const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
            const message = missing
              ? `could not run ${exe}: install pgfork or set “pgfork.path” in the settings`
              : errorSentence(stderr, err.message);
            this.log(`pgfork ${args.join(" ")} failed: ${message}`);
            reject(new PgforkError(message, args, code));
            return;
          }
          if (stderr.trim() !== "") {
            this.log(`pgfork ${args.join(" ")}: ${stderr.trim()}`);
          }
          resolve(stdout);
        },
      );
    });
  }
}

export async function runJson<T>(runner: Runner, args: string[]): Promise<T> {
  const out = await runner.run([...args, "--json"]);
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new PgforkError(`pgfork ${args.join(" ")} did not print JSON: ${out.slice(0, 200)}`, args, null);
  }
}
