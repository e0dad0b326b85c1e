//! ARCHITECTURE.md's code map, checked: every crate directory has a row, every row a
//! crate, and each crate's `[dependencies]` name exactly the pgfork crates its row
//! allows. A forbidden edge (the CLI reaching for the daemon's internals, the API
//! shelling out through pg) fails here with the crate and the edge named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// crate name → the pgfork crates it may depend on, from the code-map table.
fn allowed_edges(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut table = BTreeMap::new();
    let mut in_map = false;
    for line in architecture.lines() {
        if line.starts_with("## Code map") {
            in_map = true;
            continue;
        }
        if in_map && line.starts_with("## ") {
            break;
        }
        if !in_map || !line.starts_with("| `pgfork") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", crate, owns, may depend on, must not, ""]
        assert!(cells.len() >= 5, "code-map row has too few columns: {line}");
        let name = cells[1].trim_matches('`').to_string();
        let deps = cells[3]
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_string())
            .filter(|d| d.starts_with("pgfork"))
            .collect();
        table.insert(name, deps);
    }
    table
}

/// crate name → the pgfork crates its `[dependencies]` name.
fn actual_edges(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = text.parse().expect("valid Cargo.toml");
        let name = doc["package"]["name"]
            .as_str()
            .expect("package name")
            .to_string();
        let deps = doc
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|t| {
                t.keys()
                    .filter(|k| k.starts_with("pgfork"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name, deps);
    }
    out
}

fn violations(
    allowed: &BTreeMap<String, BTreeSet<String>>,
    actual: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for name in actual.keys().filter(|n| !allowed.contains_key(*n)) {
        problems.push(format!(
            "crate {name} has no row in ARCHITECTURE.md's code map"
        ));
    }
    for name in allowed.keys().filter(|n| !actual.contains_key(*n)) {
        problems.push(format!(
            "ARCHITECTURE.md lists {name}, which is not a crate in crates/"
        ));
    }
    for (name, deps) in actual {
        let Some(ok) = allowed.get(name) else {
            continue;
        };
        for d in deps.difference(ok) {
            problems.push(format!(
                "forbidden edge {name} -> {d}: the code map does not allow it (fix the dependency, or the architecture and its table)"
            ));
        }
        for d in ok.difference(deps) {
            problems.push(format!(
                "the code map says {name} depends on {d}, but it does not: update the table"
            ));
        }
    }
    problems
}

#[test]
fn the_code_map_is_the_dependency_graph() {
    let root = workspace();
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let allowed = allowed_edges(&architecture);
    assert!(
        allowed.len() >= 10,
        "the code map was not found: {allowed:?}"
    );
    let problems = violations(&allowed, &actual_edges(&root));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The rule DESIGN §5 names: the CLI is an API client only.
    let cli = &allowed["pgfork-cli"];
    for forbidden in ["pgfork-daemon", "pgfork-pg", "pgfork-cow", "pgfork-store"] {
        assert!(
            !cli.contains(forbidden),
            "the table itself lets the CLI use {forbidden}"
        );
    }
}

#[test]
fn a_forbidden_edge_is_caught() {
    let root = workspace();
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let allowed = allowed_edges(&architecture);
    let mut actual = actual_edges(&root);
    actual
        .get_mut("pgfork-cli")
        .expect("cli crate")
        .insert("pgfork-daemon".into());
    let problems = violations(&allowed, &actual);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("pgfork-cli -> pgfork-daemon"),
        "{problems:?}"
    );
}
