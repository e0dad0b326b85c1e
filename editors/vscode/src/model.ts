// What the extension shows, decided from pgfork's JSON without any IO or editor API, so
// it is unit-tested on its own. Every fact comes from pgfork (`status --json`,
// `branch list --all --json`); nothing here re-implements pgfork's rules.

/** `pgfork branch get --json` (DESIGN.md §6). */
export interface BranchView {
  id: string;
  name: string;
  parent: string | null;
  state: string;
  port: number;
  url: string;
  created_at: string;
  expires_at: string | null;
  protected: boolean;
  git_branch: string | null;
  logical_bytes: number | null;
  unique_bytes: number | null;
  clone_method: string;
  data_dir: string;
  masked: boolean;
  deleted_at: string | null;
  after_create: string | null;
  port_error: string | null;
  trash_reason: string | null;
  gc_spared: string[];
}

/** `pgfork status --json`. */
export interface Status {
  repo: string | null;
  head: string | null;
  project: string | null;
  branch: BranchView | null;
  hooks: string;
}

/** What the status bar item says. */
export interface StatusBarView {
  text: string;
  tooltip: string;
  /** Whether the item should look like a warning (no database for HEAD, an error). */
  warning: boolean;
}

export function humanBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) {
    return "";
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v >= 10 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** "in 3 h", "in 2 d", "expired" — the time left before a TTL deletes a branch. */
export function ttlText(expiresAt: string | null, now: Date): string {
  if (!expiresAt) {
    return "";
  }
  const ms = Date.parse(expiresAt) - now.getTime();
  if (Number.isNaN(ms)) {
    return "";
  }
  if (ms <= 0) {
    return "expired";
  }
  const min = Math.round(ms / 60000);
  if (min < 60) {
    return `in ${Math.max(min, 1)} min`;
  }
  const h = Math.round(min / 60);
  if (h < 48) {
    return `in ${h} h`;
  }
  return `in ${Math.round(h / 24)} d`;
}

/** The words for a branch's state, with masking (a masked branch is still running). */
export function stateWord(b: BranchView): string {
  if (b.deleted_at) {
    return "trashed";
  }
  if (b.port_error) {
    return "port taken";
  }
  return b.masked ? `${b.state}, masked` : b.state;
}

export function statusBar(status: Status | null, error: string | null): StatusBarView {
  if (error) {
    return { text: "$(database) pgfork: error", tooltip: error, warning: true };
  }
  if (!status) {
    return { text: "$(database) pgfork", tooltip: "pgfork: loading", warning: false };
  }
  if (!status.project) {
    return {
      text: "$(database) pgfork: not set up",
      tooltip: "This repository has no pgfork project: run “pgfork: Initialise this repository”.",
      warning: false,
    };
  }
  const b = status.branch;
  if (!b) {
    const head = status.head ?? "(detached HEAD)";
    return {
      text: `$(database) ${head}: no database`,
      tooltip: `No database branch is paired with git branch ${head}. ${status.hooks.startsWith("installed") ? "" : "The pgfork git hooks are not installed: "}Create one with “pgfork: Create Branch From…”.`,
      warning: true,
    };
  }
  const size = humanBytes(b.unique_bytes);
  const parts = [stateWord(b)];
  if (size) {
    parts.push(size);
  }
  const icon = b.state === "running" ? "$(database)" : b.state === "suspended" ? "$(debug-pause)" : "$(sync~spin)";
  return {
    text: `${icon} ${b.name} (${parts.join(", ")})`,
    tooltip: [
      `pgfork database branch ${b.name} — paired with git branch ${status.head ?? "?"}`,
      `state: ${stateWord(b)}`,
      b.parent ? `parent: ${b.parent}` : "root branch",
      size ? `unique size: ${size}` : "",
      b.expires_at ? `expires ${ttlText(b.expires_at, new Date())}` : "",
      "Click for actions",
    ]
      .filter((l) => l !== "")
      .join("\n"),
    warning: false,
  };
}

/** One node of the branch tree. */
export interface TreeNode {
  branch: BranchView;
  children: TreeNode[];
}

/** The live branches as a forest (parent → children, by name), the trash apart. */
export function buildTree(branches: BranchView[]): { roots: TreeNode[]; trash: BranchView[] } {
  const live = branches.filter((b) => !b.deleted_at);
  const byName = new Map<string, TreeNode>();
  for (const b of live) {
    byName.set(b.name, { branch: b, children: [] });
  }
  const roots: TreeNode[] = [];
  for (const b of live) {
    const node = byName.get(b.name)!;
    const parent = b.parent ? byName.get(b.parent) : undefined;
    if (parent) {
      parent.children.push(node);
    } else {
      roots.push(node);
    }
  }
  const byCreated = (a: TreeNode, b: TreeNode) => a.branch.created_at.localeCompare(b.branch.created_at);
  const sort = (nodes: TreeNode[]) => {
    nodes.sort(byCreated);
    nodes.forEach((n) => sort(n.children));
  };
  sort(roots);
  const trash = branches
    .filter((b) => b.deleted_at)
    .sort((a, b) => (b.deleted_at ?? "").localeCompare(a.deleted_at ?? ""));
  return { roots, trash };
}

/** The second line of a tree item. */
export function describe(b: BranchView, now: Date, head: string | null): string {
  const bits = [stateWord(b)];
  if (b.git_branch && b.git_branch === head) {
    bits.unshift("HEAD");
  }
  if (b.protected) {
    bits.push("protected");
  }
  const ttl = ttlText(b.expires_at, now);
  if (ttl) {
    bits.push(`TTL ${ttl}`);
  }
  if (b.unique_bytes !== null && b.unique_bytes !== undefined) {
    bits.push(humanBytes(b.unique_bytes));
  }
  bits.push(b.clone_method);
  if (b.trash_reason) {
    bits.push(b.trash_reason);
  }
  return bits.join(" · ");
}

/** A tooltip with every fact the tree shows and a few it does not. */
export function tooltip(b: BranchView, now: Date): string {
  return [
    `${b.name}${b.parent ? ` (from ${b.parent})` : " (root)"}`,
    `state: ${stateWord(b)}`,
    `git branch: ${b.git_branch ?? "none"}`,
    `port: ${b.port}`,
    `clone: ${b.clone_method}`,
    b.unique_bytes !== null ? `unique: ${humanBytes(b.unique_bytes)} of ${humanBytes(b.logical_bytes)}` : "",
    b.protected ? "protected from deletion" : "",
    b.expires_at ? `expires ${ttlText(b.expires_at, now)} (${b.expires_at})` : "",
    b.deleted_at ? `in the trash since ${b.deleted_at}${b.trash_reason ? `: ${b.trash_reason}` : ""}` : "",
    b.after_create ? `after-create: ${b.after_create}` : "",
    b.port_error ? `port problem: ${b.port_error}` : "",
  ]
    .filter((l) => l !== "")
    .join("\n");
}

/** The `contextValue` menus match on: "live,child,running,unprotected" and the like. */
export function contextValue(b: BranchView): string {
  return [
    b.deleted_at ? "trashed" : "live",
    b.parent ? "child" : "root",
    b.state,
    b.protected ? "protected" : "unprotected",
  ].join(",");
}

/** Something pgfork did on its own (a hook, gc, a TTL) that the user should hear of. */
export interface Announcement {
  message: string;
  branch: string;
  /** What Undo does: delete a branch that was created, recover one that was trashed. */
  undo: "delete" | "recover" | null;
}

/**
 * What changed between two listings that the user did not do through the extension:
 * a checkout (or gc, or a TTL) created, recovered or trashed a database branch.
 * `mine` holds the branch names the extension itself just acted on (not announced).
 */
export function announcements(before: BranchView[] | null, after: BranchView[], mine: Set<string>): Announcement[] {
  if (!before) {
    return [];
  }
  const out: Announcement[] = [];
  const prev = new Map(before.map((b) => [b.id, b]));
  for (const b of after) {
    if (mine.has(b.name)) {
      continue;
    }
    const was = prev.get(b.id);
    if (!was && !b.deleted_at) {
      out.push({
        message: `pgfork created database branch “${b.name}”${b.parent ? ` from “${b.parent}”` : ""}${b.git_branch ? ` for git branch ${b.git_branch}` : ""}.`,
        branch: b.name,
        undo: "delete",
      });
    } else if (was && !was.deleted_at && b.deleted_at) {
      out.push({
        message: `pgfork moved database branch “${b.name}” to the trash${b.trash_reason ? ` (${b.trash_reason})` : ""}.`,
        branch: b.name,
        undo: "recover",
      });
    } else if (was && was.deleted_at && !b.deleted_at) {
      out.push({
        message: `pgfork recovered database branch “${b.name}” from the trash.`,
        branch: b.name,
        undo: null,
      });
    }
  }
  return out;
}

/** A branch name the user typed: pgfork decides for real; this catches the obvious. */
export function branchNameProblem(name: string): string | null {
  if (name.trim() === "") {
    return "A branch needs a name.";
  }
  if (/\s/.test(name)) {
    return "Branch names have no spaces.";
  }
  return null;
}
