import * as assert from "assert";
import { standIn } from "./vscode-stand-in";
import { BranchTree } from "../../src/tree";
import { branch } from "./fixtures";

describe("branch tree (with the vscode stand-in)", () => {
  it("shows roots, children under parents, and a trash node", () => {
    const tree = new BranchTree();
    let fired = 0;
    tree.onDidChangeTreeData(() => fired++);
    tree.update([branch("main"), branch("feature", { parent: "main" }), branch("old", { parent: "main", deleted_at: "t", trash_reason: "merged" })], "feature");
    assert.strictEqual(fired, 1);
    const top = tree.getChildren();
    assert.strictEqual(top.length, 2);
    const mainItem = tree.getTreeItem(top[0]) as unknown as InstanceType<typeof standIn.TreeItem>;
    assert.strictEqual(mainItem.label, "main");
    assert.strictEqual(mainItem.collapsibleState, standIn.TreeItemCollapsibleState.Expanded);
    const [child] = tree.getChildren(top[0]);
    const featureItem = tree.getTreeItem(child) as unknown as InstanceType<typeof standIn.TreeItem>;
    assert.strictEqual(featureItem.label, "feature");
    assert.ok(String(featureItem.description).startsWith("HEAD · running"), String(featureItem.description));
    const icon = featureItem.iconPath as InstanceType<typeof standIn.ThemeIcon>;
    assert.strictEqual(icon.id, "database");
    assert.strictEqual(icon.color?.id, "charts.green", "HEAD's branch stands out");
    assert.strictEqual(BranchTree.branchOf(child)?.name, "feature");
    const trashItem = tree.getTreeItem(top[1]) as unknown as InstanceType<typeof standIn.TreeItem>;
    assert.strictEqual(trashItem.label, "Trash (1)");
    const [trashed] = tree.getChildren(top[1]);
    assert.strictEqual(tree.getTreeItem(trashed).contextValue, "trashed,child,running,unprotected");
  });
});
