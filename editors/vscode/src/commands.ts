// Every action of the extension: which branch it applies to, what it asks, which pgfork
// command it runs, what it says afterwards. The editor is reached only through `Ui`, so
// the flows are unit-tested with a scripted Ui and a scripted pgfork.

import { PgforkError, Runner, runJson } from "./cli";
import { BranchView, branchNameProblem } from "./model";

export interface Ui {
  pick(items: { label: string; description?: string; value: string }[], placeholder: string): Promise<string | undefined>;
  input(prompt: string, value: string, validate: (v: string) => string | null): Promise<string | undefined>;
  /** A modal question; resolves to the chosen button, or undefined when dismissed. */
  confirm(message: string, detail: string, button: string): Promise<boolean>;
  info(message: string, ...buttons: string[]): Promise<string | undefined>;
  error(message: string): void;
  copy(text: string): Promise<void>;
  terminal(name: string, command: string[]): void;
  showDiff(title: string, diff: string): Promise<void>;
  progress<T>(title: string, work: () => Promise<T>): Promise<T>;
}

/** The state the commands need: the branches as last listed, and HEAD's. */
export interface Context {
  branches(): BranchView[];
  headBranch(): BranchView | null;
  /** Names the extension acts on itself, so the refresh does not announce them. */
  markMine(name: string): void;
  refresh(): Promise<void>;
}

export type Target = BranchView | { branch: BranchView } | undefined;

function fromArg(arg: Target): BranchView | undefined {
  if (!arg) {
    return undefined;
  }
  return "branch" in arg && typeof arg.branch === "object" ? arg.branch : (arg as BranchView);
}

export class Commands {
  constructor(
    private readonly pgfork: Runner,
    private readonly ui: Ui,
    private readonly ctx: Context,
  ) {}

  /** The branch a command acts on: the clicked one, else HEAD's, else one the user picks. */
  private async target(arg: Target, placeholder: string, filter: (b: BranchView) => boolean = (b) => !b.deleted_at): Promise<BranchView | undefined> {
    const clicked = fromArg(arg);
    if (clicked) {
      return clicked;
    }
    const head = this.ctx.headBranch();
    if (head && filter(head)) {
      return head;
    }
    return this.pickBranch(placeholder, filter);
  }

  private async pickBranch(placeholder: string, filter: (b: BranchView) => boolean): Promise<BranchView | undefined> {
    const candidates = this.ctx.branches().filter(filter);
    if (candidates.length === 0) {
      this.ui.error("pgfork: there is no branch this applies to.");
      return undefined;
    }
    const name = await this.ui.pick(
      candidates.map((b) => ({ label: b.name, description: b.parent ? `from ${b.parent}` : "root", value: b.name })),
      placeholder,
    );
    return candidates.find((b) => b.name === name);
  }

  /** Runs one pgfork command, reports its error in pgfork's words, then refreshes. */
  private async act(title: string, args: string[], mine?: string): Promise<string | undefined> {
    if (mine) {
      this.ctx.markMine(mine);
    }
    try {
      return await this.ui.progress(title, () => this.pgfork.run(args));
    } catch (e) {
      this.ui.error(`pgfork: ${e instanceof PgforkError ? e.message : String(e)}`);
      return undefined;
    } finally {
      await this.ctx.refresh();
    }
  }

  async create(arg?: Target): Promise<void> {
    const parent = fromArg(arg) ?? (await this.pickParent());
    if (!parent) {
      return;
    }
    const name = await this.ui.input(`Name of the new branch (a copy of “${parent.name}” as it is now)`, `${parent.name}-copy`, branchNameProblem);
    if (!name) {
      return;
    }
    const out = await this.act(`Creating “${name}” from “${parent.name}”…`, ["branch", "create", name, "--parent", parent.name], name);
    if (out !== undefined) {
      await this.ui.info(`pgfork: created “${name}” from “${parent.name}”.`);
    }
  }

  private async pickParent(): Promise<BranchView | undefined> {
    const head = this.ctx.headBranch();
    const live = this.ctx.branches().filter((b) => !b.deleted_at);
    const ordered = head ? [head, ...live.filter((b) => b.id !== head.id)] : live;
    if (ordered.length === 0) {
      this.ui.error("pgfork: this project has no branch to copy.");
      return undefined;
    }
    const name = await this.ui.pick(
      ordered.map((b) => ({ label: b.name, description: b.id === head?.id ? "HEAD" : b.parent ? `from ${b.parent}` : "root", value: b.name })),
      "Create a branch from…",
    );
    return ordered.find((b) => b.name === name);
  }

  async reset(arg?: Target): Promise<void> {
    const b = await this.target(arg, "Reset which branch from its parent?", (x) => !x.deleted_at && x.parent !== null);
    if (!b) {
      return;
    }
    if (!b.parent) {
      this.ui.error(`pgfork: “${b.name}” is the root branch: it has no parent to reset from.`);
      return;
    }
    const ok = await this.ui.confirm(
      `Reset “${b.name}” from “${b.parent}”?`,
      `Every change made in “${b.name}” since it was created is replaced by “${b.parent}” as it is now. Its URL and password stay the same.`,
      "Reset",
    );
    if (!ok) {
      return;
    }
    const out = await this.act(`Resetting “${b.name}” from “${b.parent}”…`, ["branch", "reset", b.name], b.name);
    if (out !== undefined) {
      await this.ui.info(`pgfork: “${b.name}” now holds “${b.parent}” as it is now.`);
    }
  }

  async delete(arg?: Target): Promise<void> {
    const b = await this.target(arg, "Delete which branch?", (x) => !x.deleted_at && !x.protected);
    if (!b) {
      return;
    }
    const ok = await this.ui.confirm(`Delete “${b.name}”?`, "It goes to the trash and can be recovered until its grace period ends.", "Delete");
    if (!ok) {
      return;
    }
    const out = await this.act(`Deleting “${b.name}”…`, ["branch", "delete", b.name], b.name);
    if (out !== undefined) {
      const choice = await this.ui.info(`pgfork: “${b.name}” is in the trash.`, "Undo");
      if (choice === "Undo") {
        await this.recover(b);
      }
    }
  }

  async recover(arg?: Target): Promise<void> {
    const clicked = fromArg(arg);
    const b = clicked ?? (await this.pickBranch("Recover which branch from the trash?", (x) => x.deleted_at !== null));
    if (!b) {
      return;
    }
    const out = await this.act(`Recovering “${b.name}”…`, ["branch", "recover", b.name], b.name);
    if (out !== undefined) {
      await this.ui.info(`pgfork: recovered “${b.name}”.`);
    }
  }

  async copyUrl(arg?: Target): Promise<void> {
    const b = await this.target(arg, "Copy the URL of which branch?");
    if (!b) {
      return;
    }
    try {
      const url = (await this.pgfork.run(["url", b.name])).trim();
      await this.ui.copy(url);
      await this.ui.info(`pgfork: copied the URL of “${b.name}” (it holds the password).`);
    } catch (e) {
      this.ui.error(`pgfork: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async psql(arg?: Target): Promise<void> {
    const b = await this.target(arg, "Open psql on which branch?");
    if (b) {
      this.ui.terminal(`psql: ${b.name}`, ["psql", b.name]);
    }
  }

  async diff(arg?: Target): Promise<void> {
    const b = await this.target(arg, "Compare which branch with its parent?", (x) => !x.deleted_at && x.parent !== null);
    if (!b) {
      return;
    }
    try {
      const diff = await this.ui.progress(`Comparing “${b.name}” with “${b.parent}”…`, () => this.pgfork.run(["branch", "diff", b.name]));
      if (diff.trim() === "") {
        await this.ui.info(`pgfork: “${b.name}” has the same schema as “${b.parent}”.`);
        return;
      }
      await this.ui.showDiff(`${b.name} vs ${b.parent}.diff`, diff);
    } catch (e) {
      this.ui.error(`pgfork: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async setTtl(arg?: Target): Promise<void> {
    const b = await this.target(arg, "Set the time to live of which branch?");
    if (!b) {
      return;
    }
    const ttl = await this.ui.input(`Delete “${b.name}” automatically after (e.g. 24h, 7d; “none” keeps it)`, b.expires_at ? "none" : "24h", (v) =>
      /^(none|\d+\s*[smhdw])$/.test(v.trim()) ? null : "A duration like 30m, 24h or 7d, or none.",
    );
    if (!ttl) {
      return;
    }
    await this.act(`Setting the TTL of “${b.name}”…`, ["branch", "set-ttl", b.name, ttl.trim()], b.name);
  }

  async protect(arg: Target, on: boolean): Promise<void> {
    const b = await this.target(arg, on ? "Protect which branch?" : "Unprotect which branch?");
    if (b) {
      await this.act(`${on ? "Protecting" : "Unprotecting"} “${b.name}”…`, ["branch", on ? "protect" : "unprotect", b.name], b.name);
    }
  }

  async run(arg: Target, start: boolean): Promise<void> {
    const b = await this.target(arg, start ? "Start which branch?" : "Stop which branch?");
    if (b) {
      await this.act(`${start ? "Starting" : "Stopping"} “${b.name}”…`, ["branch", start ? "start" : "stop", b.name], b.name);
    }
  }

  async migrate(arg?: Target): Promise<void> {
    const b = await this.target(arg, "Run the after-create command on which branch?");
    if (!b) {
      return;
    }
    const out = await this.act(`Running the after-create command on “${b.name}”…`, ["branch", "migrate", b.name], b.name);
    if (out !== undefined) {
      await this.ui.info(`pgfork: ${out.trim() || "the after-create command succeeded"}`);
    }
  }

  async init(sample: boolean): Promise<void> {
    const args = sample ? ["init", "--sample"] : ["init", "--empty"];
    const out = await this.act(sample ? "Initialising pgfork with sample data…" : "Initialising pgfork…", args);
    if (out !== undefined) {
      await this.ui.info("pgfork: this repository now has a database branch per git branch; DATABASE_URL is in .env.");
    }
  }

  /** Lists every branch, trash included. */
  static async list(pgfork: Runner): Promise<BranchView[]> {
    return runJson<BranchView[]>(pgfork, ["branch", "list", "--all"]);
  }
}
