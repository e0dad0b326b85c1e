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
    let created = env.ok(&["branch", "create", "x"]);
    let x_url = env.url("x");
    let x_secret = x_url
        .rsplit_once('@')
        .map(|(l, _)| l.rsplit(':').next().unwrap_or("").to_string())
        .unwrap_or_default();
    assert!(
        !x_secret.is_empty() && !created.contains(&x_secret) && created.contains(":****@"),
        "{created}"
    );
    for shown in [
        env.ok(&["branch", "get", "x"]),
        env.ok(&["branch", "get", "x", "--json"]),
        env.ok(&["branch", "list", "--json"]),
        env.ok(&["status", "--json"]),
    ] {
        assert!(
            !shown.contains(&x_secret) && !shown.contains(&password),
            "{shown}"
        );
    }
    // Asked for, it is there: the same URL `pgfork url` prints.
    let asked = env.json(&["branch", "get", "x", "--show-password"]);
    assert_eq!(asked["url"], x_url.as_str());
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

/// An interactive session, driven through tmux as a person would type it: completions
/// load, a copy-mode `init` warns once with the fix, `git branch -D` says where the
/// database went and how to bring it back.
#[test]
fn an_interactive_session_in_tmux() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        not_run("the tmux session test (apt-get install tmux)");
        return;
    }
    let Some(env) = Env::new("tmux", Storage::Copy) else {
        return;
    };
    let socket = format!("pgfork-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux runs")
    };
    let bin = pgfork_exe();
    let shell = format!(
        "env -i HOME={home} TERM=xterm PATH={bin}:/usr/bin:/bin PGFORK_HOME={home} PGFORK_PORTS={ports} GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t bash --norc --noprofile",
        home = env.home.display(),
        bin = bin.parent().expect("bin dir").display(),
        ports = env.ports,
    );
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "220",
        "-y",
        "60",
        "-c",
        &env.repo.display().to_string(),
        &shell,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    struct Kill<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            (self.0)(&["kill-server"]);
        }
    }
    let _kill = Kill(&tmux);
    let screen = || {
        String::from_utf8_lossy(
            &tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", "t"]).stdout,
        )
        .to_string()
    };
    let type_line = |keys: &str| {
        tmux(&["send-keys", "-t", "t", "-l", keys]);
        tmux(&["send-keys", "-t", "t", "Enter"]);
    };
    let wait_for = |what: &str, needle: &str| {
        wait_until(what, std::time::Duration::from_secs(60), || {
            screen().contains(needle)
        });
    };

    type_line("source <(pgfork completions bash) && echo completions-$((1 + 1))-ready");
    wait_for("the completions to load", "completions-2-ready");
    tmux(&["send-keys", "-t", "t", "-l", "pgfork bran"]);
    tmux(&["send-keys", "-t", "t", "Tab"]);
    wait_for("Tab to complete the command", "pgfork branch ");
    tmux(&["send-keys", "-t", "t", "C-u"]);

    type_line("pgfork init --empty; echo init-$((1 + 1))-done");
    wait_for("init", "init-2-done");
    let after_init = screen();
    assert_eq!(
        after_init.matches("no reflinks").count(),
        1,
        "the copy-mode warning once: {after_init}"
    );
    assert!(
        after_init.contains("mkfs.xfs"),
        "with the fix: {after_init}"
    );

    type_line(
        "git checkout -q -b doomed && git checkout -q main && git branch -D doomed; echo delete-$((1 + 1))-done",
    );
    wait_for("git branch -D", "delete-2-done");
    let after_delete = screen();
    assert!(
        after_delete.contains("pgfork branch recover"),
        "the trash line with the command that undoes it: {after_delete}"
    );
    report("tmux: completions complete `pgfork bran<Tab>`, a copy-mode init warns once with the fix, `git branch -D` prints the recover command");
}

/// `url --direct`: the branch's own socket, no proxy, for the daemon's user; it starts
/// a suspended branch.
#[test]
fn direct_urls_reach_the_branch_socket_and_wake_it() {
    let Some(env) = Env::new("direct", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "stop", "main"]);
    let url = env.ok(&["url", "main", "--direct"]).trim().to_string();
    assert!(url.starts_with("postgresql:///postgres?host=%2F"), "{url}");
    assert_eq!(env.branch("main")["state"], "running", "it was started");
    assert_eq!(
        psql_ok(
            &url,
            "SELECT current_user || ',' || (inet_server_addr() IS NULL)"
        ),
        "pgfork_owner,true",
        "the owner, over the unix socket"
    );
    let err = env.fails(&["url", "main", "--direct", "--secure"]);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// `branch diff` prints a branch's schema changes; `-q` keeps notes off stderr.
#[test]
fn branch_diff_and_quiet_mode() {
    let Some(env) = Env::new("diff-quiet", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "x"]);
    let same = env.run(&["branch", "diff", "x"]);
    assert!(same.status.success());
    assert!(String::from_utf8_lossy(&same.stderr).contains("no schema differences"));
    let quiet = env.run(&["-q", "branch", "diff", "x"]);
    assert!(quiet.status.success());
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "nothing on stderr with -q"
    );
    psql_ok(&env.url("x"), "CREATE TABLE only_on_x (i int)");
    let diff = env.ok(&["branch", "diff", "x"]);
    assert!(diff.contains("+CREATE TABLE public.only_on_x"), "{diff}");
}

/// docs/json.md documents the fields of a branch's JSON view: a checked fact.
#[test]
fn the_documented_branch_fields_are_the_printed_ones() {
    let Some(env) = Env::new("json-doc", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let printed: std::collections::BTreeSet<String> = env
        .branch("main")
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json.md"),
    )
    .expect("docs/json.md");
    let table = doc
        .split("<!-- branch-fields -->")
        .nth(1)
        .and_then(|t| t.split("<!-- /branch-fields -->").next())
        .expect("the branch field table");
    let documented: std::collections::BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    assert_eq!(
        documented, printed,
        "docs/json.md and `branch get --json` disagree"
    );
}

/// The README's first command: `pgfork demo` runs from start to end and cleans up.
#[test]
fn the_demo_runs_end_to_end() {
    let tmp = std::env::temp_dir().join(format!("pgfork-t-demo-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let out = std::process::Command::new(pgfork_exe())
        .args(["demo", "--scale", "1"])
        .env("TMPDIR", &tmp)
        .env_remove("PGFORK_HOME")
        .env_remove("PGFORK_API")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("pgfork demo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("feature-x is back"), "{text}");
    assert!(text.contains("That was pgfork."), "{text}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the demo cleans up after itself: {left:?}");
    let _ = std::fs::remove_dir_all(&tmp);
    report("demo: `pgfork demo` ran end to end and removed its store");
}
