use super::*;

fn project() -> Project {
    Project {
        id: "prj-1".into(),
        name: "shop".into(),
        pg_major: 15,
        db_name: "postgres".into(),
        role_name: "pgfork_owner".into(),
        superuser: "postgres".into(),
        created_at: Utc::now(),
    }
}

fn branch(id: &str, name: &str, port: u16, parent: Option<&str>) -> Branch {
    let now = Utc::now();
    Branch {
        id: id.into(),
        project_id: "prj-1".into(),
        name: name.into(),
        parent_id: parent.map(str::to_string),
        state: BranchState::Running,
        port,
        password: "pw".into(),
        data_dir: PathBuf::from(format!("/store/{name}")),
        home_dir: PathBuf::from(format!("/store/{name}")),
        clone_method: "reflink".into(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        protected: false,
        git_branch: None,
        masked: false,
        deleted_at: None,
        parent_lsn: None,
        after_create: None,
        suspend_timeout_seconds: 0,
    }
}

#[test]
fn project_and_tree_round_trip() {
    let mut s = Store::open_in_memory().expect("open");
    s.insert_project_with_root(&project(), &branch("br-main", "main", 55000, None))
        .expect("insert");
    s.insert_branch(&branch("br-a", "feature/a", 55001, Some("br-main")), "shop")
        .expect("child");
    let all = s.branches("prj-1", false).expect("list");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].parent_id.as_deref(), Some("br-main"));
    assert_eq!(s.project("shop").expect("q").expect("found").id, "prj-1");
    assert_eq!(s.project("prj-1").expect("q").expect("found").name, "shop");
    let got = s.branch("br-a").expect("q").expect("found");
    assert_eq!(got, all[1]);
    assert_eq!(s.used_ports().expect("ports").len(), 2);
}

#[test]
fn live_names_are_unique_but_trash_may_repeat() {
    let mut s = Store::open_in_memory().expect("open");
    s.insert_project_with_root(&project(), &branch("br-main", "main", 55000, None))
        .expect("insert");
    let mut a = branch("br-a", "x", 55001, Some("br-main"));
    s.insert_branch(&a, "shop").expect("first");
    let dup = s.insert_branch(&branch("br-b", "x", 55002, Some("br-main")), "shop");
    assert!(
        matches!(dup, Err(StoreError::BranchExists { .. })),
        "{dup:?}"
    );
    a.state = BranchState::Deleted;
    a.deleted_at = Some(Utc::now());
    s.update_branch(&a).expect("trash");
    s.insert_branch(&branch("br-b", "x", 55002, Some("br-main")), "shop")
        .expect("same name after delete");
    assert_eq!(
        s.live_branch_by_name("prj-1", "x")
            .expect("q")
            .expect("live")
            .id,
        "br-b"
    );
    assert_eq!(
        s.trashed_branch_by_name("prj-1", "x")
            .expect("q")
            .expect("trash")
            .id,
        "br-a"
    );
    assert_eq!(s.branches("prj-1", true).expect("all").len(), 3);
}

#[test]
fn purge_keeps_children() {
    let mut s = Store::open_in_memory().expect("open");
    s.insert_project_with_root(&project(), &branch("br-main", "main", 55000, None))
        .expect("insert");
    s.insert_branch(&branch("br-a", "a", 55001, Some("br-main")), "shop")
        .expect("a");
    s.insert_branch(&branch("br-b", "b", 55002, Some("br-a")), "shop")
        .expect("b");
    s.purge_branch("br-a").expect("purge");
    let b = s.branch("br-b").expect("q").expect("child survives");
    assert_eq!(
        b.parent_id.as_deref(),
        Some("br-a"),
        "the parent id stays as history"
    );
    assert!(s.branch("br-a").expect("q").is_none());
}

#[test]
fn file_store_is_wal_and_reopens() {
    let dir = std::env::temp_dir().join(format!("pgfork-store-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("meta.db");
    {
        let mut s = Store::open(&path).expect("open");
        s.insert_project_with_root(&project(), &branch("br-main", "main", 55000, None))
            .expect("insert");
    }
    let s = Store::open(&path).expect("reopen");
    let mode: String = s
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode.to_lowercase(), "wal");
    assert_eq!(s.projects().expect("list").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_version_1_store_is_migrated() {
    let dir = std::env::temp_dir().join(format!("pgfork-store-mig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("meta.db");
    {
        let conn = Connection::open(&path).expect("open");
        let v1 = SCHEMA.to_string();
        conn.execute_batch(&format!("BEGIN; {v1} PRAGMA user_version = 1; COMMIT;"))
            .expect("v1");
    }
    let mut s = Store::open(&path).expect("migrates");
    s.insert_project(&project()).expect("project");
    s.add_repo("prj-1", std::path::Path::new("/src/shop"))
        .expect("repo");
    s.add_repo("prj-1", std::path::Path::new("/src/shop"))
        .expect("idempotent");
    assert_eq!(
        s.repos("prj-1").expect("repos"),
        vec![PathBuf::from("/src/shop")]
    );
    s.delete_project("prj-1").expect("delete");
    let mut root = branch("br-main", "main", 55000, None);
    root.after_create = Some("ok".into());
    s.insert_project_with_root(&project(), &root)
        .expect("insert");
    assert_eq!(
        s.branch("br-main")
            .expect("q")
            .expect("row")
            .after_create
            .as_deref(),
        Some("ok")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gc_reasons_are_spared_after_a_recover_and_trash_gives_ports_up() {
    let mut s = Store::open_in_memory().expect("open");
    s.insert_project_with_root(&project(), &branch("br-root", "main", 100, None))
        .expect("root");
    let mut b = branch("br-x", "x", 101, Some("br-root"));
    s.insert_branch(&b, "shop").expect("insert");
    assert!(s.spared("br-x").expect("spared").is_empty());
    // gc trashes it as merged; the user recovers it: merged is spared from then on.
    s.set_trash_reason("br-x", Some("merged")).expect("reason");
    assert_eq!(
        s.trash_reason("br-x").expect("r").as_deref(),
        Some("merged")
    );
    s.spare_trash_reason("br-x").expect("spare");
    s.set_trash_reason("br-x", Some("merged")).expect("reason");
    s.spare_trash_reason("br-x").expect("spare twice");
    s.set_trash_reason("br-x", Some("gone")).expect("reason");
    s.spare_trash_reason("br-x").expect("spare");
    assert_eq!(s.spared("br-x").expect("spared"), ["merged", "gone"]);
    assert_eq!(s.trash_reason("br-x").expect("r"), None);
    // A live branch never gives its port up; a trashed one does, and several can.
    s.release_port("br-x").expect("release");
    assert_eq!(s.branch("br-x").expect("get").expect("row").port, 101);
    b.state = BranchState::Deleted;
    b.deleted_at = Some(Utc::now() - chrono::Duration::hours(2));
    s.update_branch(&b).expect("trash");
    let mut y = branch("br-y", "y", 102, Some("br-root"));
    y.state = BranchState::Deleted;
    y.deleted_at = Some(Utc::now());
    s.insert_branch(&y, "shop").expect("insert y");
    let oldest = s
        .oldest_trashed_with_port(Utc::now() - chrono::Duration::hours(1))
        .expect("query")
        .expect("one");
    assert_eq!(oldest.id, "br-x");
    s.release_port("br-x").expect("release");
    s.release_port("br-y").expect("release");
    assert_eq!(s.branch("br-x").expect("get").expect("row").port, 0);
    assert_eq!(s.branch("br-y").expect("get").expect("row").port, 0);
}

#[test]
fn role_secrets_are_replaced_per_branch_and_go_with_it() {
    let mut s = Store::open_in_memory().expect("open");
    s.insert_project_with_root(&project(), &branch("br-root", "main", 100, None))
        .expect("root");
    s.set_role_secrets("br-root", &[("app".into(), "SCRAM-SHA-256$a".into())])
        .expect("set");
    assert_eq!(
        s.role_secret("br-root", "app").expect("get").as_deref(),
        Some("SCRAM-SHA-256$a")
    );
    s.set_role_secrets("br-root", &[("other".into(), "x".into())])
        .expect("replace");
    assert_eq!(s.role_secret("br-root", "app").expect("get"), None);
    s.purge_branch("br-root").expect("purge");
    assert_eq!(s.role_secret("br-root", "other").expect("get"), None);
}

#[test]
fn migrations_follow_each_other_and_end_at_the_schema_version() {
    for (i, (from, _)) in MIGRATIONS.iter().enumerate() {
        assert_eq!(
            *from,
            i as i64 + 1,
            "migration {i} starts at the version the previous one left"
        );
    }
    let s = Store::open_in_memory().expect("open");
    let v: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("pragma");
    assert_eq!(v, SCHEMA_VERSION);
}
