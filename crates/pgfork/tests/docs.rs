//! The README and the docs stay true. Every `pgfork` command they show (in code blocks
//! and inline code) parses with the real grammar, and every ```` ```sh ```` walkthrough
//! not marked `no-run` runs: the blocks of a page, in order, in one shell, in a fresh
//! repository with a fresh store. A page may prepare what its blocks assume with a
//! hidden `<!-- doc-test setup: COMMANDS -->` line before a block.

mod common;
use clap::Parser;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A fenced code block of a page.
struct Block {
    page: String,
    line: usize,
    info: String,
    body: String,
    setup: Vec<String>,
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn page_name(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if name == "README.md" {
        name
    } else {
        format!("docs/{name}")
    }
}

fn blocks(page: &Path) -> (Vec<Block>, String) {
    let text = std::fs::read_to_string(page).expect("page");
    let mut out = Vec::new();
    let mut setup = Vec::new();
    let mut open: Option<Block> = None;
    let mut prose = String::new();
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        if fence && open.is_some() {
            out.extend(open.take());
            continue;
        }
        match open.as_mut() {
            Some(b) => {
                b.body.push_str(line);
                b.body.push('\n');
            }
            None => {
                if let Some(info) = line.trim_start().strip_prefix("```") {
                    open = Some(Block {
                        page: page_name(page),
                        line: i + 1,
                        info: info.trim().to_string(),
                        body: String::new(),
                        setup: std::mem::take(&mut setup),
                    });
                } else if let Some(s) = line
                    .trim()
                    .strip_prefix("<!-- doc-test setup:")
                    .and_then(|s| s.strip_suffix("-->"))
                {
                    setup.push(s.trim().to_string());
                } else {
                    prose.push_str(line);
                    prose.push('\n');
                }
            }
        }
    }
    assert!(
        open.is_none(),
        "{}: a code block is never closed",
        page.display()
    );
    (out, prose)
}

/// The part of a shell line before an unquoted `#` comment.
fn without_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The `pgfork …` commands a shell line runs: at its start (after a YAML `- ` or
/// `run: `), after `&&`, `|` or `;`, and inside `$( … )`.
fn commands_in_line(line: &str) -> Vec<String> {
    let line = without_comment(line);
    let mut found = Vec::new();
    // Inside command substitutions first; they end at the matching parenthesis.
    let mut rest = line;
    while let Some(at) = rest.find("$(") {
        let inner = &rest[at + 2..];
        let mut depth = 1;
        let end = inner
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap_or(inner.len());
        if inner.trim_start().starts_with("pgfork ") {
            found.push(inner[..end].trim().to_string());
        }
        rest = &inner[end.min(inner.len())..];
    }
    let trimmed = line.trim_start();
    let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
    let trimmed = trimmed.strip_prefix("run: ").unwrap_or(trimmed);
    for part in trimmed
        .split("&&")
        .flat_map(|p| p.split(';'))
        .flat_map(|p| p.split(" | "))
    {
        let part = part.trim_start();
        if part.starts_with("pgfork ") || part == "pgfork" {
            // A redirection ends the command's words.
            let words = part
                .split([' '])
                .take_while(|w| !w.starts_with(['>', '<']))
                .collect::<Vec<_>>()
                .join(" ");
            found.push(words.trim().to_string());
        }
    }
    found
}

/// Inline code spans of prose that are whole `pgfork` commands.
fn inline_commands(prose: &str) -> Vec<String> {
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("pgfork ") && !s.contains('\n'))
        .map(str::to_string)
        .collect()
}

/// Whether a command is a pattern with placeholders rather than one to type.
fn is_pattern(cmd: &str) -> bool {
    cmd.contains('…') || cmd.contains("...") || cmd.contains('[') || cmd.contains('|')
}

#[test]
fn every_pgfork_command_in_the_readme_and_docs_parses() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        let (blocks, prose) = blocks(&page);
        let mut cmds: Vec<(String, String)> = Vec::new();
        for b in &blocks {
            if matches!(
                b.info.split_whitespace().next(),
                Some("sh" | "yaml" | "ini")
            ) {
                for (n, line) in b.body.lines().enumerate() {
                    for c in commands_in_line(line) {
                        cmds.push((format!("{}:{}", b.page, b.line + 1 + n), c));
                    }
                }
            }
        }
        for c in inline_commands(&prose) {
            cmds.push((format!("{} (inline)", page_name(&page)), c));
        }
        for (at, cmd) in cmds {
            // Prose names commands (`pgfork branch recover`) as well as showing them.
            let inline = at.ends_with("(inline)");
            if is_pattern(&cmd) {
                continue;
            }
            let Some(words) = shlex::split(&cmd) else {
                wrong.push(format!("{at}: `{cmd}`: unbalanced quotes"));
                continue;
            };
            checked += 1;
            if let Err(e) = pgfork_cli::cli::Cli::try_parse_from(&words) {
                use clap::error::ErrorKind;
                let named = matches!(
                    e.kind(),
                    ErrorKind::MissingRequiredArgument
                        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                );
                if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                    || (inline && named)
                {
                    continue;
                }
                let first = e.to_string();
                let first = first.lines().next().unwrap_or("").to_string();
                wrong.push(format!("{at}: `{cmd}`: {first}"));
            }
        }
    }
    assert!(
        checked > 80,
        "only {checked} commands found: the extraction broke"
    );
    assert!(
        wrong.is_empty(),
        "commands in the docs that pgfork does not accept:\n{}",
        wrong.join("\n")
    );
    report(&format!(
        "docs: {checked} pgfork commands in README.md and docs/ parse"
    ));
}

/// Runs one page's walkthrough blocks in a fresh repository and store; the repository
/// is reachable as `your-repo` and `my-app`, the names the pages use.
fn run_walkthrough(page: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(page);
    let (blocks, _) = blocks(&path);
    let runnable: Vec<&Block> = blocks.iter().filter(|b| b.info == "sh").collect();
    assert!(!runnable.is_empty(), "{page} has no walkthrough to run");
    let Some(env) = Env::new(
        &format!("docs-{}", page.replace(['/', '.'], "-")),
        Storage::Reflink,
    ) else {
        return;
    };
    let sandbox = env.repo.parent().expect("sandbox").to_path_buf();
    for alias in ["your-repo", "my-app"] {
        std::os::unix::fs::symlink(&env.repo, sandbox.join(alias)).expect("alias");
    }
    let home = sandbox.join("user-home");
    std::fs::create_dir_all(&home).expect("home");
    let mut script = String::from("set -euo pipefail\n");
    for b in &runnable {
        script.push_str(&format!("echo '== {}:{}' >&2\n", b.page, b.line));
        for s in &b.setup {
            script.push_str(s);
            script.push('\n');
        }
        script.push_str(&b.body);
    }
    let bin = pgfork_exe();
    let path_var = format!(
        "{}:{PG_BIN}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["600", "bash", "-x", "-c", &script])
        .current_dir(&sandbox)
        .env("PATH", path_var)
        .env("HOME", &home)
        .env("PGFORK_HOME", &env.home)
        .env("PGFORK_PORTS", &env.ports)
        .env_remove("PGFORK_PROJECT")
        .env_remove("PGFORK_API")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    assert!(
        out.status.success(),
        "a walkthrough of {page} failed ({}); its last lines:\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    report(&format!(
        "docs: {page}: {} walkthrough block{} ran",
        runnable.len(),
        if runnable.len() == 1 { "" } else { "s" }
    ));
}

#[test]
fn the_readme_walkthrough_runs() {
    run_walkthrough("README.md");
}

#[test]
fn the_git_workflow_page_runs() {
    run_walkthrough("docs/git.md");
}

#[test]
fn the_history_page_runs() {
    run_walkthrough("docs/history.md");
}

#[test]
fn the_production_page_runs() {
    run_walkthrough("docs/production.md");
}

#[test]
fn the_agents_page_runs() {
    run_walkthrough("docs/agents.md");
}

#[test]
fn the_extraction_finds_commands_where_shells_run_them() {
    assert_eq!(
        commands_in_line(r#"psql "$(pgfork url feature-x)"  # real Postgres"#),
        vec!["pgfork url feature-x"]
    );
    assert_eq!(
        commands_in_line("  - pgfork branch create \"ci-$ID\" --ttl 2h"),
        vec!["pgfork branch create \"ci-$ID\" --ttl 2h"]
    );
    assert_eq!(
        commands_in_line("mkdir -p d && pgfork completions bash > d/pgfork   # zsh too"),
        vec!["pgfork completions bash"]
    );
    assert!(commands_in_line("cargo install --git https://x/pgfork pgfork").is_empty());
    assert_eq!(
        inline_commands("run `pgfork branch recover x` or `pgfork`"),
        vec!["pgfork branch recover x"]
    );
}

#[test]
fn every_example_in_the_help_parses() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, String)>, path: &str) {
        if let Some(help) = cmd.get_after_help() {
            for line in help.to_string().lines() {
                let line = line.trim_start();
                if line.starts_with("pgfork ") || line.starts_with("PGFORK_") {
                    for c in commands_in_line(
                        line.split_once(' ')
                            .filter(|_| line.starts_with("PGFORK_"))
                            .map(|(_, r)| r)
                            .unwrap_or(line),
                    ) {
                        out.push((path.to_string(), c));
                    }
                }
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out, &format!("{path} {}", sub.get_name()));
        }
    }
    let mut examples = Vec::new();
    walk(&pgfork_cli::cli::Cli::command(), &mut examples, "pgfork");
    let mut wrong = Vec::new();
    for (at, cmd) in &examples {
        match shlex::split(cmd) {
            None => wrong.push(format!("{at}: `{cmd}`: unbalanced quotes")),
            Some(words) => {
                if let Err(e) = pgfork_cli::cli::Cli::try_parse_from(&words) {
                    let e = e.to_string();
                    wrong.push(format!("{at}: `{cmd}`: {}", e.lines().next().unwrap_or("")));
                }
            }
        }
    }
    assert!(
        examples.len() > 60,
        "only {} examples found",
        examples.len()
    );
    assert!(
        wrong.is_empty(),
        "examples pgfork does not accept:\n{}",
        wrong.join("\n")
    );
}
