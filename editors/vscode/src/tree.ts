// The "Database branches" view: the project's branch tree (parent → children) and the
// trash, built from the last listing by `model.buildTree`.

import * as vscode from "vscode";
import { BranchView, TreeNode, buildTree, contextValue, describe, tooltip } from "./model";

type Item = { kind: "branch"; node: TreeNode } | { kind: "trash"; branches: BranchView[] } | { kind: "trashed"; branch: BranchView };

export class BranchTree implements vscode.TreeDataProvider<Item> {
  private readonly changed = new vscode.EventEmitter<Item | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private roots: TreeNode[] = [];
  private trash: BranchView[] = [];
  private head: string | null = null;

  update(branches: BranchView[], head: string | null): void {
    const t = buildTree(branches);
    this.roots = t.roots;
    this.trash = t.trash;
    this.head = head;
    this.changed.fire(undefined);
  }

  getChildren(item?: Item): Item[] {
    if (!item) {
      const top: Item[] = this.roots.map((node) => ({ kind: "branch", node }));
      if (this.trash.length > 0) {
        top.push({ kind: "trash", branches: this.trash });
      }
      return top;
    }
    if (item.kind === "branch") {
      return item.node.children.map((node) => ({ kind: "branch", node }));
    }
    if (item.kind === "trash") {
      return item.branches.map((branch) => ({ kind: "trashed", branch }));
    }
    return [];
  }

  getTreeItem(item: Item): vscode.TreeItem {
    const now = new Date();
    if (item.kind === "trash") {
      const t = new vscode.TreeItem(`Trash (${item.branches.length})`, vscode.TreeItemCollapsibleState.Collapsed);
      t.iconPath = new vscode.ThemeIcon("trash");
      t.contextValue = "trash";
      return t;
    }
    const b = item.kind === "branch" ? item.node.branch : item.branch;
    const hasChildren = item.kind === "branch" && item.node.children.length > 0;
    const t = new vscode.TreeItem(b.name, hasChildren ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
    // The editor remembers a node's expansion by id: a branch that just got its first
    // child must count as a new node to open expanded.
    t.id = hasChildren ? `${b.id}/parent` : b.id;
    t.description = describe(b, now, this.head);
    t.tooltip = tooltip(b, now);
    t.contextValue = contextValue(b);
    const isHead = !b.deleted_at && b.git_branch !== null && b.git_branch === this.head;
    t.iconPath = new vscode.ThemeIcon(
      b.deleted_at ? "trash" : b.state === "running" ? "database" : b.state === "suspended" ? "debug-pause" : "sync",
      isHead ? new vscode.ThemeColor("charts.green") : undefined,
    );
    return t;
  }

  /** The branch an item stands for (commands receive items from menus). */
  static branchOf(item: unknown): BranchView | undefined {
    const i = item as Item | undefined;
    if (!i) {
      return undefined;
    }
    if (i.kind === "branch") {
      return i.node.branch;
    }
    if (i.kind === "trashed") {
      return i.branch;
    }
    return undefined;
  }
}
