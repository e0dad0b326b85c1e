//! `pgfork demo`: the product in two minutes, in a throwaway repository and store.
//!
//! It runs this very binary as a user would type it (so what it shows is what users
//! get), with its own `PGFORK_HOME`, and cleans up after itself: the daemon it started
//! is stopped and the temporary directory removed unless `--keep`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Demo {
    exe: PathBuf,
    repo: PathBuf,
    home: PathBuf,
    psql: PathBuf,
}

impl Demo {
    fn pgfork(&self, args: &[&str]) -> Result<String> {
        println!("\n$ pgfork {}", args.join(" "));
        let t = Instant::now();
        let out = Command::new(&self.exe)
            .args(args)
            .current_dir(&self.repo)
            .env("PGFORK_HOME", &self.home)
            .env_remove("PGFORK_PROJECT")
            .env_remove("PGFORK_API")
            .output()
            .with_context(|| format!("could not run {}", self.exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        println!("  ({:.2} s)", t.elapsed().as_secs_f64());
        if !out.status.success() {
            bail!("`pgfork {}` failed", args.join(" "));
        }
        Ok(stdout)
    }

    fn pgfork_quiet(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.exe)
            .args(args)
            .current_dir(&self.repo)
            .env("PGFORK_HOME", &self.home)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn sql(&self, url: &str, query: &str) -> Result<String> {
        println!("$ psql <{}> -c {query:?}", url_label(url));
        let out = Command::new(&self.psql)
            .args(["-X", "-A", "-t", "-d", url, "-c", query])
            .output()
            .with_context(|| format!("could not run {}", self.psql.display()))?;
        if !out.status.success() {
            bail!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("  {s}");
        Ok(s)
    }

    fn url(&self, branch: &str) -> Result<String> {
        let out = Command::new(&self.exe)
            .args(["url", branch])
            .current_dir(&self.repo)
            .env("PGFORK_HOME", &self.home)
            .output()?;
        if !out.status.success() {
            bail!(
                "pgfork url {branch} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn url_label(url: &str) -> String {
    // Hide the password in what the demo prints.
    match (url.find("://"), url.find('@')) {
        (Some(a), Some(b)) if b > a => format!("{}://…{}", &url[..a], &url[b..]),
        _ => url.to_string(),
    }
}

fn git(repo: &Path, args: &[&str]) -> Result<()> {
    let st = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "pgfork demo")
        .env("GIT_AUTHOR_EMAIL", "demo@pgfork.invalid")
        .env("GIT_COMMITTER_NAME", "pgfork demo")
        .env("GIT_COMMITTER_EMAIL", "demo@pgfork.invalid")
        .output()
        .context("could not run git: install it (apt-get install git)")?;
    if !st.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&st.stderr).trim()
        );
    }
    Ok(())
}

/// As root, the demo's store is a small XFS loop image with reflinks, so it shows
/// copy-on-write branches even on a machine whose disks are ext4. Returns the image.
fn mount_reflink_store(home: &Path) -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let img = home.with_extension("img");
    std::fs::create_dir_all(home).ok()?;
    let sized = std::fs::File::create(&img)
        .and_then(|f| f.set_len(8 << 30))
        .is_ok();
    let quiet = |cmd: &mut Command| {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if sized
        && quiet(
            Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", "reflink=1"])
                .arg(&img),
        )
        && quiet(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(home),
        )
    {
        println!("(as root, the demo's store is an XFS loop image with reflinks: branches are copy-on-write)");
        return Some(img);
    }
    let _ = std::fs::remove_file(&img);
    println!(
        "(no XFS loop image for the demo: install xfsprogs for copy-on-write; using full copies)"
    );
    None
}

pub async fn run(scale: u32, keep: bool) -> Result<i32> {
    let base = std::env::temp_dir().join(format!("pgfork-demo-{}", std::process::id()));
    let repo = base.join("shop");
    let home = base.join("store");
    std::fs::create_dir_all(&repo)
        .with_context(|| format!("could not create {}", repo.display()))?;
    let image = if keep {
        None
    } else {
        mount_reflink_store(&home)
    };
    let demo = Demo {
        exe: std::env::current_exe().context("could not find the pgfork executable")?,
        repo: repo.clone(),
        home: home.clone(),
        psql: crate::pgbin::find("psql").context("psql was not found: install PostgreSQL (`apt-get install postgresql`) or set PGFORK_PG_BIN")?,
    };
    println!(
        "pgfork demo: a throwaway git repository at {} with its own store.",
        repo.display()
    );
    let result = walkthrough(&demo, scale);
    // Always stop the demo's daemon (and with it every Postgres it started).
    let _ = Command::new(&demo.exe)
        .args(["daemon", "stop"])
        .env("PGFORK_HOME", &home)
        .output();
    if let Some(img) = image {
        let _ = Command::new("umount").arg(&home).status();
        let _ = std::fs::remove_file(img);
    }
    if keep {
        println!("\nkept {} (PGFORK_HOME={})", base.display(), home.display());
    } else {
        let _ = std::fs::remove_dir_all(&base);
    }
    result?;
    println!("\nThat was pgfork. In your own repository: `pgfork init --sample` (or --from URL), then just use git.");
    Ok(0)
}

impl Demo {
    /// A git command as the user types it; the hooks run with the demo's store.
    fn git(&self, args: &[&str]) -> Result<String> {
        println!("\n$ git {}", args.join(" "));
        let t = Instant::now();
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.repo)
            .env("PGFORK_HOME", &self.home)
            .env("GIT_AUTHOR_NAME", "pgfork demo")
            .env("GIT_AUTHOR_EMAIL", "demo@pgfork.invalid")
            .env("GIT_COMMITTER_NAME", "pgfork demo")
            .env("GIT_COMMITTER_EMAIL", "demo@pgfork.invalid")
            .output()
            .context("could not run git: install it (apt-get install git)")?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        println!("  ({:.2} s)", t.elapsed().as_secs_f64());
        if !out.status.success() {
            bail!("`git {}` failed", args.join(" "));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn env_url(&self) -> Result<String> {
        let text =
            std::fs::read_to_string(self.repo.join(".env")).context("no .env was written")?;
        pgfork_git::env_file::get(&text, "DATABASE_URL").context("no DATABASE_URL in .env")
    }
}

fn walkthrough(d: &Demo, scale: u32) -> Result<()> {
    git(&d.repo, &["init", "-q", "-b", "main"])?;
    std::fs::write(d.repo.join("README.md"), "# shop\n")?;
    git(&d.repo, &["add", "."])?;
    git(&d.repo, &["commit", "-q", "-m", "initial"])?;

    println!(
        "\n1. `pgfork init`: a root database with sample data (pgbench-shaped, scale {scale}),"
    );
    println!("   paired with the current git branch; git hooks, .env and .gitignore set up.");
    d.pgfork(&["init", "--sample", "--scale", &scale.to_string()])?;
    git(&d.repo, &["add", "."])?;
    git(&d.repo, &["commit", "-q", "-m", "pgfork"])?;
    let main_url = d.url("main")?;

    println!("\n2. A new git branch gets its own database: no pgfork command, the hook does it,");
    println!("   from the *running* parent, copy-on-write where the filesystem allows.");
    d.git(&["checkout", "-b", "feature-x"])?;
    let feat_url = d.env_url()?;
    println!("  .env now says DATABASE_URL=<{}>", url_label(&feat_url));

    println!("\n3. It is real Postgres with main's data, and isolated from it.");
    let q = "SELECT abalance FROM pgbench_accounts WHERE aid = 1";
    d.sql(
        &feat_url,
        "UPDATE pgbench_accounts SET abalance = abalance + 100 WHERE aid = 1",
    )?;
    let on_branch = d.sql(&feat_url, q)?;
    let on_main = d.sql(&main_url, q)?;
    if on_branch == on_main {
        bail!("the branch's write is visible on main: isolation is broken");
    }
    println!("  feature-x sees {on_branch}, main still sees {on_main}.");

    println!("\n4. Back on main, .env points back at main's database (nothing is created).");
    d.git(&["checkout", "main"])?;
    println!(
        "  .env now says DATABASE_URL=<{}>",
        url_label(&d.env_url()?)
    );

    println!("\n5. Branches, their sizes and what they cost (unique bytes).");
    d.pgfork(&["branch", "list"])?;

    println!("\n6. Reset: back to main's current state, same URL and password.");
    d.pgfork(&["branch", "reset", "feature-x"])?;
    let after = d.sql(&feat_url, q)?;
    if after != on_main {
        bail!("after reset the branch shows {after}, main shows {on_main}");
    }

    println!(
        "\n7. Deleting the git branch moves its database to the trash (recoverable for 24 h)."
    );
    d.git(&["branch", "-D", "feature-x"])?;
    let t = Instant::now();
    while !d
        .pgfork_quiet(&["branch", "list", "--all"])?
        .contains("deleted")
    {
        if t.elapsed() > std::time::Duration::from_secs(20) {
            bail!("the database branch was not moved to the trash");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    d.pgfork(&["branch", "list", "--all"])?;
    d.pgfork(&["branch", "recover", "feature-x"])?;
    d.sql(&feat_url, "SELECT 'feature-x is back' AS status")?;

    println!("\n8. What works here, and the fix for what does not.");
    d.pgfork(&["doctor"])?;
    Ok(())
}
