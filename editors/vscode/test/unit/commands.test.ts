import * as assert from "assert";
import { PgforkError, Runner, errorSentence, findPgfork } from "../../src/cli";
import { Commands, Context, Ui } from "../../src/commands";
import { BranchView } from "../../src/model";
import { branch } from "./fixtures";

/** pgfork as a script: each call is recorded; answers come from `replies`. */
class FakePgfork implements Runner {
  calls: string[][] = [];
  constructor(private readonly replies: (args: string[]) => string | Error = () => "") {}
  async run(args: string[]): Promise<string> {
    this.calls.push(args);
    const r = this.replies(args);
    if (r instanceof Error) {
      throw r;
    }
    return r;
  }
}

/** The editor as a script: answers to questions, and a record of what was said. */
class FakeUi implements Ui {
  said: string[] = [];
  errors: string[] = [];
  copied: string[] = [];
  terminals: [string, string[]][] = [];
  diffs: [string, string][] = [];
  constructor(private readonly answers: { pick?: string; input?: string; confirm?: boolean; info?: string } = {}) {}
  async pick(): Promise<string | undefined> {
    return this.answers.pick;
  }
  async input(_p: string, _v: string, validate: (v: string) => string | null): Promise<string | undefined> {
    if (this.answers.input !== undefined) {
      assert.strictEqual(validate(this.answers.input), null, `the scripted input ${this.answers.input} is valid`);
    }
    return this.answers.input;
  }
  async confirm(message: string): Promise<boolean> {
    this.said.push(message);
    return this.answers.confirm ?? false;
  }
  async info(message: string, ...buttons: string[]): Promise<string | undefined> {
    this.said.push(message);
    return buttons.includes(this.answers.info ?? "") ? this.answers.info : undefined;
  }
  error(message: string): void {
    this.errors.push(message);
  }
  async copy(text: string): Promise<void> {
    this.copied.push(text);
  }
  terminal(name: string, command: string[]): void {
    this.terminals.push([name, command]);
  }
  async showDiff(title: string, diff: string): Promise<void> {
    this.diffs.push([title, diff]);
  }
  progress<T>(_t: string, work: () => Promise<T>): Promise<T> {
    return work();
  }
}

function context(branches: BranchView[], head: string | null): Context & { refreshed: number; mine: string[] } {
  const c = {
    refreshed: 0,
    mine: [] as string[],
    branches: () => branches,
    headBranch: () => branches.find((b) => b.name === head) ?? null,
    markMine: (n: string) => void c.mine.push(n),
    refresh: async () => void c.refreshed++,
  };
  return c;
}

const main = branch("main");
const feature = branch("feature", { parent: "main" });

describe("commands", () => {
  it("reset asks first, then resets HEAD's branch, and refreshes", async () => {
    const pg = new FakePgfork();
    const ui = new FakeUi({ confirm: true });
    const ctx = context([main, feature], "feature");
    await new Commands(pg, ui, ctx).reset();
    assert.deepStrictEqual(pg.calls, [["branch", "reset", "feature"]]);
    assert.ok(ui.said[0].includes("Reset “feature” from “main”"), ui.said[0]);
    assert.strictEqual(ctx.refreshed, 1);
    assert.deepStrictEqual(ctx.mine, ["feature"], "the extension's own reset is not announced");
  });

  it("a declined reset runs nothing; the root cannot be reset", async () => {
    const pg = new FakePgfork();
    await new Commands(pg, new FakeUi({ confirm: false }), context([main, feature], "feature")).reset();
    assert.deepStrictEqual(pg.calls, []);
    const ui = new FakeUi({ confirm: true });
    await new Commands(pg, ui, context([main], "main")).reset(main);
    assert.deepStrictEqual(pg.calls, []);
    assert.ok(ui.errors[0].includes("root branch"), ui.errors[0]);
  });

  it("pgfork's own sentence is what the user reads when a command fails", async () => {
    const pg = new FakePgfork(() => new PgforkError("branch \"feature\" is protected: unprotect it first", [], 1));
    const ui = new FakeUi({ confirm: true });
    const ctx = context([main, feature], "feature");
    await new Commands(pg, ui, ctx).delete(feature);
    assert.deepStrictEqual(ui.errors, ["pgfork: branch \"feature\" is protected: unprotect it first"]);
    assert.strictEqual(ctx.refreshed, 1, "refreshes even after a failure");
  });

  it("delete offers Undo, which recovers", async () => {
    const pg = new FakePgfork();
    await new Commands(pg, new FakeUi({ confirm: true, info: "Undo" }), context([main, feature], "main")).delete(feature);
    assert.deepStrictEqual(pg.calls, [
      ["branch", "delete", "feature"],
      ["branch", "recover", "feature"],
    ]);
  });

  it("create copies the picked parent under the typed name", async () => {
    const pg = new FakePgfork();
    await new Commands(pg, new FakeUi({ pick: "feature", input: "feature-2" }), context([main, feature], "main")).create();
    assert.deepStrictEqual(pg.calls, [["branch", "create", "feature-2", "--parent", "feature"]]);
  });

  it("copy URL, psql, TTL, diff and run go to the right pgfork commands", async () => {
    const pg = new FakePgfork((a) => (a[0] === "url" ? "postgresql://pgfork_owner:s3cret@127.0.0.1:26001/postgres\n" : a[1] === "diff" ? "+CREATE TABLE t (i int);\n" : ""));
    const ui = new FakeUi({ input: "7d" });
    const c = new Commands(pg, ui, context([main, feature], "feature"));
    await c.copyUrl();
    assert.deepStrictEqual(ui.copied, ["postgresql://pgfork_owner:s3cret@127.0.0.1:26001/postgres"]);
    await c.psql();
    assert.deepStrictEqual(ui.terminals, [["psql: feature", ["psql", "feature"]]]);
    await c.setTtl();
    await c.diff();
    assert.deepStrictEqual(ui.diffs, [["feature vs main.diff", "+CREATE TABLE t (i int);\n"]]);
    await c.run(undefined, false);
    await c.protect(main, true);
    assert.deepStrictEqual(pg.calls.slice(1), [
      ["branch", "set-ttl", "feature", "7d"],
      ["branch", "diff", "feature"],
      ["branch", "stop", "feature"],
      ["branch", "protect", "main"],
    ]);
  });

  it("recover picks from the trash only", async () => {
    const gone = branch("gone", { parent: "main", deleted_at: "t" });
    const pg = new FakePgfork();
    await new Commands(pg, new FakeUi({ pick: "gone" }), context([main, gone], "main")).recover();
    assert.deepStrictEqual(pg.calls, [["branch", "recover", "gone"]]);
  });

  it("finds pgfork where a desktop-started editor's PATH does not look", () => {
    const exists = (set: string[]) => (p: string) => set.includes(p);
    const hook = "pgfork_bin='/opt/pgfork/bin/pgfork'; [ -x \"$pgfork_bin\" ] || pgfork_bin=$(command -v pgfork)";
    assert.strictEqual(findPgfork("pgfork", "/usr/bin:/bin", "/home/u", hook, exists(["/opt/pgfork/bin/pgfork"])), "/opt/pgfork/bin/pgfork");
    assert.strictEqual(findPgfork("pgfork", "/a:/b", "/home/u", null, exists(["/b/pgfork", "/home/u/.cargo/bin/pgfork"])), "/b/pgfork", "PATH first");
    assert.strictEqual(findPgfork("pgfork", "/a", "/home/u", null, exists(["/home/u/.cargo/bin/pgfork"])), "/home/u/.cargo/bin/pgfork");
    assert.strictEqual(findPgfork("/x/pgfork", "/a", "/h", hook, exists([])), "/x/pgfork", "an explicit path is taken as is");
    assert.strictEqual(findPgfork("pgfork", "", "/h", null, exists([])), "pgfork", "else the error names the setting");
  });

  it("errors are pgfork's last sentence, without its prefix", () => {
    assert.strictEqual(errorSentence("note: x\nerror: no project here: run pgfork init\n", "f"), "no project here: run pgfork init");
    assert.strictEqual(errorSentence("", "fallback"), "fallback");
  });
});
