// Wiring: the status bar item, the branch tree, the commands, and the refresh loop that
// follows HEAD. What to show and what to run is decided in `model` and `commands`.

import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import { Cli, PgforkError, findPgfork, runJson } from "./cli";
import { Commands, Context, Ui } from "./commands";
import { BranchView, Status, announcements, statusBar } from "./model";
import { BranchTree } from "./tree";

const DIFF_SCHEME = "pgfork-diff";

/** The file git rewrites on every checkout, for a work tree or a linked work tree. */
export function headFile(root: string): string | null {
  const dotGit = path.join(root, ".git");
  try {
    const st = fs.statSync(dotGit);
    if (st.isDirectory()) {
      return path.join(dotGit, "HEAD");
    }
    const m = /^gitdir:\s*(.+)$/m.exec(fs.readFileSync(dotGit, "utf8"));
    if (m) {
      return path.join(path.resolve(root, m[1].trim()), "HEAD");
    }
  } catch {
    // Not a git work tree (yet): nothing to follow.
  }
  return null;
}

class Extension implements Context {
  private status: Status | null = null;
  private list: BranchView[] | null = null;
  private error: string | null = null;
  private readonly mine = new Set<string>();
  private refreshing: Promise<void> | null = null;
  private again = false;
  private lastHead: string | null = null;
  readonly tree = new BranchTree();
  readonly item = vscode.window.createStatusBarItem("pgfork.head", vscode.StatusBarAlignment.Left, 100);
  private readonly diffs = new Map<string, string>();

  constructor(
    readonly root: string,
    readonly cli: Cli,
    readonly out: vscode.OutputChannel,
  ) {
    this.item.name = "pgfork: HEAD's database branch";
    this.item.command = "pgfork.actions";
    this.item.show();
    this.render();
  }

  branches(): BranchView[] {
    return this.list ?? [];
  }

  headBranch(): BranchView | null {
    return this.status?.branch ?? null;
  }

  markMine(name: string): void {
    this.mine.add(name);
  }

  /** Refreshes; calls during a refresh are folded into one more run after it. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.load();
      } while (this.again);
      this.refreshing = null;
    })();
    return this.refreshing;
  }

  private async load(): Promise<void> {
    try {
      const status = await runJson<Status>(this.cli, ["status"]);
      const branches = status.project ? await Commands.list(this.cli) : [];
      const news = announcements(this.list, branches, this.mine);
      this.mine.clear();
      this.status = status;
      this.list = branches;
      this.error = null;
      for (const a of news) {
        this.announce(a.message, a.branch, a.undo);
      }
    } catch (e) {
      this.error = e instanceof PgforkError ? e.message : String(e);
    }
    this.render();
  }

  private announce(message: string, branch: string, undo: "delete" | "recover" | null): void {
    this.out.appendLine(message);
    const buttons = undo ? ["Undo"] : [];
    void vscode.window.showInformationMessage(message, ...buttons).then(async (choice) => {
      if (choice !== "Undo" || !undo) {
        return;
      }
      this.markMine(branch);
      try {
        await this.cli.run(["branch", undo, branch]);
        void vscode.window.showInformationMessage(undo === "delete" ? `pgfork: “${branch}” is in the trash (recoverable).` : `pgfork: recovered “${branch}”.`);
      } catch (e) {
        void vscode.window.showErrorMessage(`pgfork: ${e instanceof Error ? e.message : String(e)}`);
      }
      await this.refresh();
    });
  }

  private render(): void {
    const v = statusBar(this.status, this.error);
    this.item.text = v.text;
    this.item.tooltip = v.tooltip;
    this.item.backgroundColor = v.warning ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
    this.tree.update(this.branches(), this.status?.head ?? null);
    const state = this.error ? "error" : this.status && !this.status.project ? "uninitialised" : "ready";
    void vscode.commands.executeCommand("setContext", "pgfork.state", state);
  }

  /** HEAD moved: pair it when no git hook will (optional), then refresh. */
  async headChanged(): Promise<void> {
    const before = this.lastHead;
    const now = headFile(this.root);
    const text = now ? safeRead(now) : null;
    if (text === before) {
      return;
    }
    this.lastHead = text;
    if (before === null) {
      return;
    }
    const hooksInstalled = this.status?.hooks.startsWith("installed") ?? false;
    const pair = vscode.workspace.getConfiguration("pgfork").get<boolean>("pairOnHeadChange", true);
    if (this.status?.project && !hooksInstalled && pair) {
      this.out.appendLine("HEAD changed and the pgfork git hooks are not installed: pairing it (pgfork.pairOnHeadChange)");
      try {
        await this.cli.run(["hook", "post-checkout", "0", "0", "1"]);
      } catch (e) {
        this.out.appendLine(`pairing failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    await this.refresh();
  }

  diffContent(uri: vscode.Uri): string {
    return this.diffs.get(uri.toString()) ?? "";
  }

  ui(): Ui {
    return {
      pick: async (items, placeholder) => (await vscode.window.showQuickPick(items, { placeHolder: placeholder }))?.value,
      input: (prompt, value, validate) => Promise.resolve(vscode.window.showInputBox({ prompt, value, validateInput: validate })),
      confirm: async (message, detail, button) => (await vscode.window.showWarningMessage(message, { modal: true, detail }, button)) === button,
      info: (message, ...buttons) => Promise.resolve(vscode.window.showInformationMessage(message, ...buttons)),
      error: (message) => void vscode.window.showErrorMessage(message),
      copy: (text) => Promise.resolve(vscode.env.clipboard.writeText(text)),
      terminal: (name, args) => {
        const exe = executable();
        const t = vscode.window.createTerminal({ name, shellPath: exe, shellArgs: args, cwd: this.root });
        t.show();
      },
      showDiff: async (title, diff) => {
        const uri = vscode.Uri.from({ scheme: DIFF_SCHEME, path: `/${title}`, query: String(Date.now()) });
        this.diffs.set(uri.toString(), diff);
        const doc = await vscode.workspace.openTextDocument(uri);
        await vscode.languages.setTextDocumentLanguage(doc, "diff");
        await vscode.window.showTextDocument(doc, { preview: true });
      },
      progress: (title, work) => Promise.resolve(vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title }, work)),
    };
  }
}

function safeRead(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

let workTree = "";
/** The executable found last, kept while it exists: uninstalling the git hooks (one of
 * the places it is found) must not make the extension lose pgfork. */
let found: { configured: string; exe: string } | null = null;

function executable(): string {
  const configured = vscode.workspace.getConfiguration("pgfork").get<string>("path", "pgfork") || "pgfork";
  if (found && found.configured === configured && isExecutable(found.exe)) {
    return found.exe;
  }
  const head = workTree ? headFile(workTree) : null;
  const hook = head ? safeRead(path.join(path.dirname(head), "hooks", "post-checkout")) ?? safeRead(path.join(workTree, ".git", "hooks", "post-checkout")) : null;
  const exe = findPgfork(configured, process.env.PATH ?? "", os.homedir(), hook, isExecutable);
  found = isExecutable(exe) ? { configured, exe } : null;
  return exe;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export function activate(context: vscode.ExtensionContext): void {
  const folder = vscode.workspace.workspaceFolders?.[0];
  const out = vscode.window.createOutputChannel("pgfork");
  context.subscriptions.push(out);
  if (!folder) {
    out.appendLine("no folder open: pgfork needs a repository");
    return;
  }
  const root = folder.uri.fsPath;
  workTree = root;
  const cli = new Cli(executable, root, (l) => out.appendLine(l));
  const ext = new Extension(root, cli, out);
  context.subscriptions.push(ext.item);
  context.subscriptions.push(vscode.window.registerTreeDataProvider("pgfork.branches", ext.tree));
  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(DIFF_SCHEME, { provideTextDocumentContent: (uri) => ext.diffContent(uri) }),
  );
  const cmds = new Commands(cli, ext.ui(), ext);
  const arg = (x: unknown) => BranchTree.branchOf(x);
  const register = (id: string, f: (x: unknown) => Promise<void>) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, (x: unknown) => f(x)));
  register("pgfork.refresh", () => ext.refresh());
  register("pgfork.init", () => cmds.init(true));
  register("pgfork.initEmpty", () => cmds.init(false));
  register("pgfork.create", (x) => cmds.create(arg(x)));
  register("pgfork.reset", (x) => cmds.reset(arg(x)));
  register("pgfork.delete", (x) => cmds.delete(arg(x)));
  register("pgfork.recover", (x) => cmds.recover(arg(x)));
  register("pgfork.copyUrl", (x) => cmds.copyUrl(arg(x)));
  register("pgfork.psql", (x) => cmds.psql(arg(x)));
  register("pgfork.diff", (x) => cmds.diff(arg(x)));
  register("pgfork.setTtl", (x) => cmds.setTtl(arg(x)));
  register("pgfork.protect", (x) => cmds.protect(arg(x), true));
  register("pgfork.unprotect", (x) => cmds.protect(arg(x), false));
  register("pgfork.start", (x) => cmds.run(arg(x), true));
  register("pgfork.stop", (x) => cmds.run(arg(x), false));
  register("pgfork.migrate", (x) => cmds.migrate(arg(x)));
  register("pgfork.showLog", async () => out.show());
  register("pgfork.actions", async () => {
    const actions: [string, string][] = [
      ["Copy Connection URL", "pgfork.copyUrl"],
      ["Open psql", "pgfork.psql"],
      ["Reset From Parent", "pgfork.reset"],
      ["Show Schema Diff Against Parent", "pgfork.diff"],
      ["Create Branch From…", "pgfork.create"],
      ["Set Time To Live…", "pgfork.setTtl"],
      ["Run the After-Create Command Again", "pgfork.migrate"],
      ["Refresh", "pgfork.refresh"],
    ];
    const picked = await vscode.window.showQuickPick(
      actions.map(([label, command]) => ({ label, command })),
      { placeHolder: `pgfork: ${ext.headBranch()?.name ?? "no database branch for HEAD"}` },
    );
    if (picked) {
      await vscode.commands.executeCommand(picked.command);
    }
  });

  // Follow HEAD (polling the file: .git is usually excluded from the editor's watcher,
  // and a linked work tree's HEAD lives outside the folder).
  const head = headFile(root);
  void ext.headChanged().then(() => ext.refresh());
  if (head) {
    fs.watchFile(head, { interval: 700 }, () => void ext.headChanged());
    context.subscriptions.push({ dispose: () => fs.unwatchFile(head) });
  }
  const seconds = Math.max(2, vscode.workspace.getConfiguration("pgfork").get<number>("refreshSeconds", 10));
  const timer = setInterval(() => void ext.refresh(), seconds * 1000);
  context.subscriptions.push({ dispose: () => clearInterval(timer) });
}

export function deactivate(): void {}
