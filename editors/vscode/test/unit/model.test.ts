import * as assert from "assert";
import { announcements, buildTree, contextValue, describe as describeBranch, humanBytes, statusBar, ttlText } from "../../src/model";
import { branch } from "./fixtures";

const now = new Date("2026-11-25T10:00:00Z");

describe("model", () => {
  it("sizes and TTLs read as people say them", () => {
    assert.strictEqual(humanBytes(512), "512 B");
    assert.strictEqual(humanBytes(250 * 1024), "250 KiB");
    assert.strictEqual(humanBytes(1.5 * 1024 * 1024), "1.5 MiB");
    assert.strictEqual(humanBytes(null), "");
    assert.strictEqual(ttlText("2026-11-25T10:20:00Z", now), "in 20 min");
    assert.strictEqual(ttlText("2026-11-25T13:00:00Z", now), "in 3 h");
    assert.strictEqual(ttlText("2026-11-28T10:00:00Z", now), "in 3 d");
    assert.strictEqual(ttlText("2026-11-25T09:00:00Z", now), "expired");
    assert.strictEqual(ttlText(null, now), "");
  });

  it("the status bar names HEAD's branch, its state and unique size", () => {
    const v = statusBar({ repo: "/r", head: "feature", project: "shop", branch: branch("feature", { parent: "main" }), hooks: "installed in /r/.git/hooks" }, null);
    assert.strictEqual(v.text, "$(database) feature (running, 250 KiB)");
    assert.ok(v.tooltip.includes("parent: main"), v.tooltip);
    assert.strictEqual(v.warning, false);
    const masked = statusBar({ repo: "/r", head: "m", project: "shop", branch: branch("m", { state: "suspended", masked: true }), hooks: "" }, null);
    assert.strictEqual(masked.text, "$(debug-pause) m (suspended, masked, 250 KiB)");
  });

  it("the status bar says when HEAD has no database, no project, or pgfork failed", () => {
    const none = statusBar({ repo: "/r", head: "wip", project: "shop", branch: null, hooks: "not installed: run `pgfork hooks install`" }, null);
    assert.strictEqual(none.text, "$(database) wip: no database");
    assert.ok(none.warning);
    assert.ok(none.tooltip.includes("hooks are not installed"), none.tooltip);
    assert.strictEqual(statusBar({ repo: "/r", head: "main", project: null, branch: null, hooks: "" }, null).text, "$(database) pgfork: not set up");
    const err = statusBar(null, "the daemon did not start");
    assert.ok(err.warning);
    assert.strictEqual(err.tooltip, "the daemon did not start");
  });

  it("the tree puts children under parents, oldest first, and the trash apart", () => {
    const t = buildTree([
      branch("b", { parent: "main", created_at: "2026-11-25T09:00:00Z" }),
      branch("main"),
      branch("a", { parent: "main", created_at: "2026-11-25T08:30:00Z" }),
      branch("a1", { parent: "a" }),
      branch("old", { parent: "main", deleted_at: "2026-11-24T00:00:00Z", trash_reason: "merged into main" }),
    ]);
    assert.deepStrictEqual(
      t.roots.map((r) => r.branch.name),
      ["main"],
    );
    assert.deepStrictEqual(
      t.roots[0].children.map((c) => c.branch.name),
      ["a", "b"],
    );
    assert.deepStrictEqual(
      t.roots[0].children[0].children.map((c) => c.branch.name),
      ["a1"],
    );
    assert.deepStrictEqual(
      t.trash.map((b) => b.name),
      ["old"],
    );
  });

  it("a branch whose parent is in the trash still shows, at the top", () => {
    const t = buildTree([branch("main"), branch("gone", { parent: "main", deleted_at: "x" }), branch("orphan", { parent: "gone" })]);
    assert.deepStrictEqual(
      t.roots.map((r) => r.branch.name),
      ["main", "orphan"],
    );
  });

  it("descriptions and menu contexts carry what the tree shows", () => {
    const b = branch("f", { parent: "main", protected: true, expires_at: "2026-11-26T10:00:00Z" });
    assert.strictEqual(describeBranch(b, now, "f"), "HEAD · running · protected · TTL in 24 h · 250 KiB · reflink");
    assert.strictEqual(contextValue(b), "live,child,running,protected");
    assert.strictEqual(contextValue(branch("main")), "live,root,running,unprotected");
    assert.strictEqual(contextValue(branch("x", { parent: "main", deleted_at: "t" })), "trashed,child,running,unprotected");
  });

  it("announces what a checkout, gc or TTL did, with the right Undo, and not what the user did", () => {
    const before = [branch("main"), branch("old", { parent: "main" }), branch("back", { parent: "main", deleted_at: "t" })];
    const after = [
      branch("main"),
      branch("old", { parent: "main", deleted_at: "t2", trash_reason: "git branch old was deleted" }),
      branch("back", { parent: "main" }),
      branch("feature", { parent: "main" }),
      branch("mine", { parent: "main" }),
    ];
    const a = announcements(before, after, new Set(["mine"]));
    assert.deepStrictEqual(
      a.map((x) => [x.branch, x.undo]),
      [
        ["old", "recover"],
        ["back", null],
        ["feature", "delete"],
      ],
    );
    assert.ok(a[0].message.includes("git branch old was deleted"), a[0].message);
    assert.ok(a[2].message.includes("from “main”"), a[2].message);
    assert.deepStrictEqual(announcements(null, after, new Set()), [], "nothing on the first listing");
  });
});
