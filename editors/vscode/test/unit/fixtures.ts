import { BranchView } from "../../src/model";

export function branch(name: string, extra: Partial<BranchView> = {}): BranchView {
  return {
    id: `br-${name}`,
    name,
    parent: null,
    state: "running",
    port: 26000,
    url: `postgresql://pgfork_owner:pw@127.0.0.1:26000/postgres`,
    created_at: "2026-11-25T08:00:00Z",
    expires_at: null,
    protected: false,
    git_branch: name,
    logical_bytes: 30 * 1024 * 1024,
    unique_bytes: 250 * 1024,
    clone_method: "reflink",
    data_dir: `/store/${name}`,
    masked: false,
    deleted_at: null,
    after_create: null,
    port_error: null,
    trash_reason: null,
    gc_spared: [],
    ...extra,
  };
}
