//! The command line itself: completions, project commands and their confirmations.

mod common;
use common::*;

#[test]
fn completions_for_each_shell_name_the_commands() {
    let Some(env) = Env::new("completions", Storage::Copy) else {
        return;
    };
    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["completions", shell]);
        for word in ["branch", "remote", "token", "mcp", "project"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let err = env.fails(&["completions", "tcsh"]);
    assert!(err.contains("tcsh"), "{err}");
}

#[test]
fn projects_are_listed_and_deleted_only_when_confirmed() {
    let Some(env) = Env::new("projects", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks", "--project", "keep"]);
    env.ok(&["init", "--empty", "--no-hooks", "--project", "drop"]);
    let listed = env.json(&["project", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(env.ok(&["project", "get", "keep"]).contains("keep"));
    let err = env.fails(&["project", "delete", "drop"]);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        env.json(&["project", "ls"]).as_array().map(Vec::len),
        Some(2),
        "nothing deleted"
    );
    env.ok(&["project", "rm", "drop", "--yes"]);
    let left = env.json(&["project", "list"]);
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
    assert_eq!(
        psql_ok(
            env.ok(&["url", "main", "--project", "keep"]).trim(),
            "SELECT 1"
        ),
        "1"
    );
    let err = env.fails(&["project", "get", "drop"]);
    assert!(err.contains("drop"), "{err}");
}

#[test]
fn passwords_are_printed_only_by_the_commands_that_are_about_them() {
    let Some(env) = Env::new("secrets", Storage::Copy) else {
        return;
    };
    let init = env.ok(&["init", "--empty", "--no-hooks"]);
    let url = env.url("main");
    let password = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split_once('@'))
        .and_then(|(up, _)| up.split_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("a password in `pgfork url`");
    assert!(
        !init.contains(&password) && init.contains("pgfork_owner:****@"),
        "{init}"
    );
    env.ok(&["branch", "create", "x"]);
    env.ok(&["branch", "delete", "x"]);
    let recovered = env.ok(&["branch", "recover", "x"]);
    let x_password = env.url("x");
    let x_password = x_password
        .rsplit_once('@')
        .map(|(l, _)| l.rsplit(':').next().unwrap_or(""))
        .unwrap_or("");
    assert!(
        !x_password.is_empty() && !recovered.contains(x_password),
        "{recovered}"
    );
    let status = env.ok(&["status"]);
    assert!(!status.contains(&password), "{status}");
}

#[test]
fn a_copy_store_is_announced_once_at_init_and_noted_by_status() {
    let Some(env) = Env::new("copy-note", Storage::Copy) else {
        return;
    };
    let out = env.run(&["init", "--empty", "--no-hooks"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        said.matches("no reflinks").count(),
        1,
        "once, at init: {said}"
    );
    assert!(said.contains("XFS"), "with the fix: {said}");
    let status = env.run(&["status"]);
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(
        !err.contains("no reflinks"),
        "status does not repeat it: {err}"
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("pgfork doctor"), "{text}");
}

#[test]
fn help_shows_examples_and_verbose_shows_what_pgfork_does() {
    let Some(env) = Env::new("help", Storage::Copy) else {
        return;
    };
    for cmd in ["init", "branch", "url", "token", "remote", "mcp"] {
        let help = env.ok(&[cmd, "--help"]);
        assert!(
            help.contains("Examples:") && help.contains("pgfork "),
            "{cmd}: {help}"
        );
    }
    env.ok(&["init", "--empty", "--no-hooks"]);
    let quiet = env.run(&["branch", "list"]);
    let loud = env.run(&["-vv", "branch", "list"]);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    assert!(!loud.stderr.is_empty(), "-vv logs to stderr");
    assert_eq!(quiet.stdout, loud.stdout, "logs never reach stdout");
}
