//! `pgfork-bench`: how fast is a branch, really?
//!
//! For each storage (reflink on an XFS loop image, copy on the plain disk) and each root
//! size (pgbench scale chosen to match), it measures create → first query through the
//! real CLI and a real libpq-protocol client, with the parent idle and under a pgbench
//! write load, and in the same run the floor: `cp -a --reflink=always` (or `cp -a` for
//! the copy path) of the same data directory. It prints p50/p95, ratios and the unique
//! bytes of a fresh branch. Figures, not pass/fail: machines differ.
//!
//! Usage: `cargo run --release -p pgfork-bench -- [--sizes 100M,1G,5G] [--runs 10]
//!         [--storage reflink,copy] [--xfs-dir DIR]` (needs root for the XFS image unless
//! `--xfs-dir` points at a reflink filesystem).
//!
//! `pgfork-bench proxy [DIR]` measures the front door instead: pgbench through the
//! proxy vs straight to the socket, connect latency, wake latency, and the daemon's
//! footprint with 101 suspended branches (DIR should be a reflink filesystem).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    sizes: Vec<(String, u32)>,
    runs: usize,
    storages: Vec<String>,
    xfs_dir: Option<PathBuf>,
    pgfork: PathBuf,
}

fn parse_size(s: &str) -> Result<(String, u32)> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix('G') {
        (n, 1024.0)
    } else if let Some(n) = s.strip_suffix('M') {
        (n, 1.0)
    } else {
        bail!("size {s:?}: write it like 100M or 5G");
    };
    let mb: f64 = num.parse::<f64>().context("size number")? * mult;
    // pgbench: ~15 MB per scale unit on disk including indexes.
    Ok((s.to_string(), ((mb / 15.0).round() as u32).max(1)))
}

fn opts() -> Result<Opts> {
    let mut o = Opts {
        sizes: vec![parse_size("100M")?, parse_size("1G")?, parse_size("5G")?],
        runs: 10,
        storages: vec!["reflink".into(), "copy".into()],
        xfs_dir: None,
        pgfork: std::env::current_exe()?.with_file_name("pgfork"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--sizes" => o.sizes = val.split(',').map(parse_size).collect::<Result<_>>()?,
            "--runs" => o.runs = val.parse().context("--runs")?,
            "--storage" => o.storages = val.split(',').map(str::to_string).collect(),
            "--xfs-dir" => o.xfs_dir = Some(PathBuf::from(val)),
            "--pgfork" => o.pgfork = PathBuf::from(val),
            other => bail!("unknown argument {other}"),
        }
        i += 2;
    }
    if !o.pgfork.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p pgfork) or pass --pgfork",
            o.pgfork.display()
        );
    }
    Ok(o)
}

struct Store {
    home: PathBuf,
    repo: PathBuf,
    pgfork: PathBuf,
}

impl Store {
    fn new(base: &Path, name: &str, pgfork: &Path) -> Result<Store> {
        let root = base.join(format!("pgfork-bench-{name}"));
        let _ = std::fs::remove_dir_all(&root);
        let repo = root.join("repo");
        std::fs::create_dir_all(&repo)?;
        Ok(Store {
            home: root.join("home"),
            repo,
            pgfork: pgfork.to_path_buf(),
        })
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.pgfork)
            .args(args)
            .current_dir(&self.repo)
            .env("PGFORK_HOME", &self.home)
            .env("PGFORK_PORTS", "27000-27999")
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "pgfork {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut a = args.to_vec();
        a.push("--json");
        Ok(serde_json::from_str(&self.run(&a)?)?)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.run(&["daemon", "stop"]);
        if let Some(root) = self.home.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

async fn first_query(url: &str) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let h = tokio::spawn(conn);
    client.query_one("SELECT 1", &[]).await?;
    drop(client);
    let _ = h.await;
    Ok(())
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx]
}

fn cp_floor(src: &Path, reflink: bool, runs: usize) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for i in 0..runs {
        let dst = src.with_file_name(format!("cp-floor-{i}"));
        let t = Instant::now();
        let mut cmd = Command::new("cp");
        cmd.arg("-a");
        if reflink {
            cmd.arg("--reflink=always");
        }
        let st = cmd.arg(src).arg(&dst).stderr(Stdio::null()).status()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let _ = std::fs::remove_dir_all(&dst);
        if !st.success() && reflink {
            bail!("cp --reflink=always failed: not a reflink filesystem");
        }
    }
    Ok(times)
}

/// The copy backend alone against `cp -a`, alternating, on the stopped root (so both
/// copy the same bytes): the "copy fallback throughput" target.
fn copy_throughput(st: &Store, data_dir: &Path, size: &str) -> Result<()> {
    st.run(&["branch", "stop", "main"])?;
    let (mut ours, mut cp) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let dst = data_dir.with_file_name(format!("copy-bench-{i}"));
        let t = Instant::now();
        pgfork_cow::clone_tree(
            data_dir,
            &dst,
            &pgfork_cow::TreeOptions::new(pgfork_cow::CloneMethod::Copy),
        )?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        let _ = std::fs::remove_dir_all(&dst);
        cp.extend(cp_floor(data_dir, false, 1)?);
    }
    let bytes = pgfork_cow::usage(data_dir)
        .map(|u| u.logical_bytes)
        .unwrap_or(0) as f64;
    let (o50, c50) = (pct(&ours, 50.0), pct(&cp, 50.0));
    println!(
        "copy backend at {size}: {:.0} ms ({:.0} MB/s) vs cp -a {:.0} ms ({:.0} MB/s): {:.2}x cp -a",
        o50,
        bytes / o50 / 1000.0,
        c50,
        bytes / c50 / 1000.0,
        c50 / o50
    );
    st.run(&["branch", "start", "main"])?;
    Ok(())
}

fn pgbench_load(url: &str) -> Result<Child> {
    let child = Command::new("/usr/lib/postgresql/15/bin/pgbench")
        .args(["-n", "-c", "4", "-j", "2", "-T", "3600", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("pgbench")?;
    std::thread::sleep(Duration::from_secs(2));
    Ok(child)
}

struct Row {
    storage: String,
    size: String,
    parent: &'static str,
    p50: f64,
    p95: f64,
    floor_p50: f64,
    unique: Option<u64>,
    logical: u64,
}

async fn bench_one(
    o: &Opts,
    storage: &str,
    base: &Path,
    size: &(String, u32),
    rows: &mut Vec<Row>,
) -> Result<()> {
    let st = Store::new(base, &format!("{storage}-{}", size.0), &o.pgfork)?;
    let t = Instant::now();
    st.run(&[
        "init",
        "--sample",
        "--scale",
        &size.1.to_string(),
        "--no-hooks",
    ])?;
    let main = st.json(&["branch", "get", "main", "--show-password"])?;
    let logical = main["logical_bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "  {storage} {}: root of {:.2} GB built in {:.0} s",
        size.0,
        logical as f64 / 1e9,
        t.elapsed().as_secs_f64()
    );
    let main_url = main["url"].as_str().unwrap_or_default().to_string();
    let data_dir = PathBuf::from(main["data_dir"].as_str().unwrap_or_default());
    let floor_runs = if storage == "copy" {
        3.min(o.runs)
    } else {
        o.runs
    };
    let floor = cp_floor(&data_dir, storage == "reflink", floor_runs)?;
    if storage == "copy" {
        copy_throughput(&st, &data_dir, &size.0)?;
    }
    let runs = if storage == "copy" && logical > 2_000_000_000 {
        3.min(o.runs)
    } else {
        o.runs
    };
    for parent in ["idle", "pgbench load"] {
        let mut load = if parent == "idle" {
            None
        } else {
            Some(pgbench_load(&main_url)?)
        };
        let mut times = Vec::new();
        let mut unique = None;
        for i in 0..runs {
            let name = format!("b{i}");
            let t = Instant::now();
            st.run(&["branch", "create", &name])?;
            let url = st.run(&["url", &name])?.trim().to_string();
            first_query(&url).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            if i == 0 {
                unique = st.json(&["branch", "get", &name])?["unique_bytes"].as_u64();
            }
            st.run(&["branch", "delete", &name, "--purge"])?;
        }
        if let Some(l) = load.as_mut() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(l.id() as i32, libc::SIGTERM) };
            let _ = l.wait();
        }
        eprintln!(
            "  {storage} {} {parent}: p50 {:.0} ms",
            size.0,
            pct(&times, 50.0)
        );
        rows.push(Row {
            storage: storage.to_string(),
            size: size.0.clone(),
            parent,
            p50: pct(&times, 50.0),
            p95: pct(&times, 95.0),
            floor_p50: pct(&floor, 50.0),
            unique,
            logical,
        });
    }
    Ok(())
}

fn mount_xfs() -> Result<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("pgfork-bench-xfs-{}", std::process::id()));
    let img = dir.with_extension("img");
    std::fs::create_dir_all(&dir)?;
    std::fs::File::create(&img)?.set_len(40 << 30)?;
    if !Command::new("mkfs.xfs")
        .args(["-q", "-f", "-m", "reflink=1"])
        .arg(&img)
        .status()?
        .success()
    {
        bail!("mkfs.xfs failed (apt-get install xfsprogs)");
    }
    if !Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&dir)
        .status()?
        .success()
    {
        bail!("mount of the XFS image failed (needs root)");
    }
    Ok((dir, img))
}

/// `pgfork-bench proxy`: the front door's costs, measured in one run.
/// What pgfork's git hooks add to a `git checkout` of a branch that already has its
/// database (post-checkout pairs `.env`, reference-transaction watches deletions):
/// alternating checkouts with the hooks and with `core.hooksPath` pointing nowhere.
fn bench_checkout(pgfork: &Path, base: &Path) -> Result<()> {
    let st = Store::new(base, "checkout", pgfork)?;
    let git = |args: &[&str], hooks: bool| -> Result<()> {
        let mut c = Command::new("git");
        if !hooks {
            c.args(["-c", "core.hooksPath=/dev/null"]);
        }
        let out = c
            .args(args)
            .current_dir(&st.repo)
            .env("PGFORK_HOME", &st.home)
            .env("PGFORK_PORTS", "27000-27999")
            .env("GIT_AUTHOR_NAME", "b")
            .env("GIT_AUTHOR_EMAIL", "b@b")
            .env("GIT_COMMITTER_NAME", "b")
            .env("GIT_COMMITTER_EMAIL", "b@b")
            .output()?;
        if !out.status.success() {
            bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    git(&["init", "-q", "-b", "main"], true)?;
    git(&["commit", "-q", "--allow-empty", "-m", "init"], true)?;
    st.run(&["init", "--empty"])?;
    git(&["checkout", "-q", "-b", "feature"], true)?;
    git(&["checkout", "-q", "main"], true)?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        for (hooks, into) in [(true, &mut with), (false, &mut without)] {
            for target in ["feature", "main"] {
                let t = Instant::now();
                git(&["checkout", "-q", target], hooks)?;
                into.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    println!(
        "git checkout of a branch with its database, 40 each, alternating: with pgfork's hooks p50 {:.1} ms (p95 {:.1}), without {:.1} ms: the hooks add {:.1} ms at p50",
        pct(&with, 50.0),
        pct(&with, 95.0),
        pct(&without, 50.0),
        pct(&with, 50.0) - pct(&without, 50.0)
    );
    Ok(())
}

/// Masking throughput: 1,000,000 rows × 3 columns (email, full name, phone; a unique
/// index on the email), rewrite included, against an unmasked branch of the same data.
fn bench_mask(pgfork: &Path, base: &Path) -> Result<()> {
    let rows = 1_000_000u64;
    let st = Store::new(base, "mask", pgfork)?;
    st.run(&["init", "--empty", "--no-hooks"])?;
    let url = st.run(&["url", "main"])?.trim().to_string();
    let out = Command::new("/usr/lib/postgresql/15/bin/psql")
        .args([url.as_str(), "-Xqc"])
        .arg(format!(
            "CREATE TABLE people (id bigint PRIMARY KEY, email text UNIQUE, name text, phone text); \
             INSERT INTO people SELECT g, 'user' || g || '@corp.example', 'Name ' || g, '+49 170 ' || g FROM generate_series(1, {rows}) g"
        ))
        .arg("-c")
        .arg("VACUUM ANALYZE people")
        .output()?;
    if !out.status.success() {
        bail!(
            "loading the table failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = st.home.join("rules.toml");
    let rule = |column: &str, f: &str| {
        format!("[[masking_rules]]\ndatabase_name = \"postgres\"\nschema_name = \"public\"\ntable_name = \"people\"\ncolumn_name = \"{column}\"\nmasking_function = \"{f}\"\n\n")
    };
    std::fs::write(
        &rules,
        format!(
            "{}{}{}",
            rule("email", "email"),
            rule("name", "full_name"),
            rule("phone", "phone")
        ),
    )?;
    let t = Instant::now();
    st.run(&["branch", "create", "plain"])?;
    let plain = t.elapsed().as_secs_f64();
    let t = Instant::now();
    st.run(&[
        "branch",
        "create",
        "masked",
        "--mask",
        &rules.display().to_string(),
    ])?;
    let masked = t.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(st.home.join("daemon.log")).unwrap_or_default();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("masked a database"))
        .unwrap_or("")
        .to_string();
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (update_ms, rewrite_ms) = (field("update_ms"), field("rewrite_ms"));
    println!(
        "masking {rows} rows × 3 columns (email unique): update {:.1} s ({:.0} rows/s), rewrite {:.1} s, update + rewrite {:.0} rows/s",
        update_ms / 1000.0,
        rows as f64 / (update_ms / 1000.0),
        rewrite_ms / 1000.0,
        rows as f64 / ((update_ms + rewrite_ms) / 1000.0)
    );
    println!(
        "branch create: unmasked {plain:.1} s, masked {masked:.1} s (masking adds {:.1} s: {:.0} rows/s end to end)",
        masked - plain,
        rows as f64 / (masked - plain).max(0.001)
    );
    Ok(())
}

async fn bench_proxy(pgfork: &Path, base: &Path) -> Result<()> {
    let st = Store::new(base, "proxy", pgfork)?;
    st.run(&["init", "--sample", "--scale", "10", "--no-hooks"])?;
    let main = st.json(&["branch", "get", "main", "--show-password"])?;
    let url = main["url"].as_str().unwrap_or_default().to_string();
    // The branch's own socket (its directory is the runtime directory's, not the
    // store's): what `url --direct` names.
    let own = url::Url::parse(st.run(&["url", "main", "--direct"])?.trim())?;
    let query = |k: &str| {
        own.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let socket_dir = PathBuf::from(query("host"));
    let port: u64 = query("port").parse().unwrap_or(0);
    let direct = format!(
        "postgresql:///postgres?host={}&port={port}&user=postgres",
        socket_dir.display()
    );
    front_door_throughput(&st, &url, &direct, &socket_dir, port)?;
    let connect = |u: String| async move {
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            first_query(&u).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok::<_, anyhow::Error>(times)
    };
    let (cp, cd) = (connect(url.clone()).await?, connect(direct.clone()).await?);
    println!(
        "connect + SELECT 1, 200 each: proxy p50 {:.2} ms, direct p50 {:.2} ms: extra {:.2} ms (proxy includes SCRAM; direct is trust on the socket)",
        pct(&cp, 50.0),
        pct(&cd, 50.0),
        pct(&cp, 50.0) - pct(&cd, 50.0)
    );
    let mut wake = Vec::new();
    for _ in 0..10 {
        st.run(&["branch", "stop", "main"])?;
        let t = Instant::now();
        first_query(&url).await?;
        wake.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "wake: suspended branch → first query answered: p50 {:.0} ms, p95 {:.0} ms (10 runs)",
        pct(&wake, 50.0),
        pct(&wake, 95.0)
    );
    for i in 0..100 {
        st.run(&["branch", "create", &format!("s{i}")])?;
        st.run(&["branch", "stop", &format!("s{i}")])?;
    }
    st.run(&["branch", "stop", "main"])?;
    let pid = st.json(&["daemon", "status"])?["pid"].as_u64().unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let needle = st.home.display().to_string();
    let postgres = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            String::from_utf8_lossy(c).contains(&needle)
                && String::from_utf8_lossy(c).contains("postgres")
        })
        .count();
    println!(
        "101 branches, all suspended: daemon RSS {:.1} MB, {postgres} Postgres processes",
        rss as f64 / 1024.0
    );
    Ok(())
}

/// pgbench -S through each front door, alternating rounds in one run: pgfork's proxy,
/// pgbouncer (session mode, SCRAM, in front of the same branch's unix socket), `pgfork url
/// --direct`, and each door with TLS. Same data, same server, same client.
fn front_door_throughput(
    st: &Store,
    url: &str,
    direct: &str,
    socket_dir: &Path,
    port: u64,
) -> Result<()> {
    let seconds = std::env::var("PGFORK_BENCH_SECONDS").unwrap_or_else(|_| "10".into());
    let rounds: usize = std::env::var("PGFORK_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let pgbench = |target: &str| -> Result<f64> {
        let out = Command::new("/usr/lib/postgresql/15/bin/pgbench")
            .args(["-n", "-S", "-c", "8", "-j", "2", "-T", &seconds, target])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("tps = ")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .with_context(|| {
                format!(
                    "pgbench printed no tps: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    let bouncer = Pgbouncer::start(st, url, socket_dir, port)?;
    let url_direct = st.run(&["url", "main", "--direct"])?.trim().to_string();
    // pgbouncer has no channel binding: neither side uses it, so the TLS rows compare
    // the same handshake and the same record layer.
    let tls = |u: &str| {
        let sep = if u.contains('?') { '&' } else { '?' };
        format!("{u}{sep}sslmode=require&channel_binding=disable")
    };
    let doors: Vec<(&str, String)> = vec![
        ("pgfork proxy", url.to_string()),
        ("pgbouncer", bouncer.url.clone()),
        ("pgfork proxy, TLS", tls(url)),
        ("pgbouncer, TLS", tls(&bouncer.url)),
        ("pgfork url --direct (unix socket)", url_direct),
        (
            "straight to the unix socket (superuser)",
            direct.to_string(),
        ),
    ];
    let mut tps: Vec<Vec<f64>> = vec![Vec::new(); doors.len()];
    for _ in 0..rounds {
        for (i, (_, target)) in doors.iter().enumerate() {
            tps[i].push(pgbench(target)?);
        }
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let direct_tps = mean(&tps[5]);
    println!("pgbench -S -c 8 -j 2, {rounds}×{seconds} s per door, alternating:");
    for (i, (name, _)) in doors.iter().enumerate() {
        println!(
            "  {name:<42} {:>8.0} tps  ({:.2}× direct)",
            mean(&tps[i]),
            mean(&tps[i]) / direct_tps
        );
    }
    println!(
        "  proxy / pgbouncer: {:.2}× plain, {:.2}× TLS",
        mean(&tps[0]) / mean(&tps[1]),
        mean(&tps[2]) / mean(&tps[3])
    );
    drop(bouncer);
    Ok(())
}

/// A pgbouncer in session mode in front of a branch's unix socket, with the branch
/// owner's SCRAM verifier as its auth file: the same authentication as pgfork's proxy.
struct Pgbouncer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Pgbouncer {
    fn start(st: &Store, url: &str, socket_dir: &Path, port: u64) -> Result<Pgbouncer> {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::process::CommandExt;
        let exe = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("pgbouncer is not installed (apt-get install pgbouncer)")?;
        let parsed = url::Url::parse(url)?;
        let role = parsed.username().to_string();
        let password = parsed.password().unwrap_or_default().to_string();
        let owner = std::fs::metadata(socket_dir)?;
        let dir = st.home.parent().unwrap_or(&st.home).join("pgbouncer");
        std::fs::create_dir_all(&dir)?;
        let superuser = format!(
            "postgresql:///postgres?host={}&port={port}&user=postgres",
            socket_dir.display()
        );
        let verifier = Command::new("/usr/lib/postgresql/15/bin/psql")
            .args(["-XAtq", "-d", &superuser, "-c"])
            .arg(format!(
                "SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"
            ))
            .output()?;
        let verifier = String::from_utf8_lossy(&verifier.stdout).trim().to_string();
        if !verifier.starts_with("SCRAM-SHA-256$") {
            bail!("{role} has no SCRAM verifier to give pgbouncer");
        }
        let listen = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()?;
        if !made.success() {
            bail!("openssl could not make pgbouncer's certificate");
        }
        std::fs::write(
            dir.join("users.txt"),
            format!("\"{role}\" \"{verifier}\"\n"),
        )?;
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\npostgres = host={} port={port} dbname=postgres user={role}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {}\npool_mode = session\nmax_client_conn = 100\ndefault_pool_size = 20\nlog_connections = 0\nlog_disconnections = 0\nlogfile = {}\npidfile = {}\nclient_tls_sslmode = allow\nclient_tls_key_file = {}\nclient_tls_cert_file = {}\n",
                socket_dir.display(),
                dir.join("users.txt").display(),
                dir.join("pgbouncer.log").display(),
                dir.join("pgbouncer.pid").display(),
                key.display(),
                cert.display(),
            ),
        )?;
        for f in std::fs::read_dir(&dir)?.flatten() {
            std::os::unix::fs::chown(f.path(), Some(owner.uid()), Some(owner.gid()))?;
        }
        std::os::unix::fs::chown(&dir, Some(owner.uid()), Some(owner.gid()))?;
        let mut cmd = Command::new(exe);
        cmd.arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if nix_is_root() {
            cmd.uid(owner.uid()).gid(owner.gid());
        }
        let child = cmd.spawn()?;
        let url = format!("postgresql://{role}:{password}@127.0.0.1:{listen}/postgres");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "pgbouncer did not start: {}",
                    std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Pgbouncer { child, dir, url })
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `pgfork-bench production [XFS_DIR]`: create → first query of branches of a root
/// adopted from a data directory tuned like production (512 MB of shared buffers, a
/// large WAL reserve, preload libraries, 300 connections), next to branches of a sample
/// root of the same data size, in one run on a reflink store.
async fn bench_production(pgfork: &Path, xfs: Option<PathBuf>) -> Result<()> {
    let (base, mounted) = match xfs {
        Some(d) => (d, None),
        None => {
            let (d, img) = mount_xfs()?;
            (d.clone(), Some((d, img)))
        }
    };
    let result = production_rows(pgfork, &base).await;
    if let Some((d, img)) = mounted {
        let _ = Command::new("umount").arg(&d).status();
        let _ = std::fs::remove_file(&img);
        let _ = std::fs::remove_dir(&d);
    }
    result
}

async fn production_rows(pgfork: &Path, base: &Path) -> Result<()> {
    const BIN: &str = "/usr/lib/postgresql/15/bin";
    let src = base.join("prod-src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src)?;
    let pgdata = src.join("pgdata");
    let as_postgres = |program: &str| {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(Path::new(BIN).join(program));
        c
    };
    if !Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&src)
        .status()?
        .success()
    {
        bail!("could not give {} to the postgres user", src.display());
    }
    let ok = |c: &mut Command, what: &str| -> Result<()> {
        let out = c.stdin(Stdio::null()).output()?;
        if !out.status.success() {
            bail!("{what}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    ok(
        as_postgres("initdb").args(["-D"]).arg(&pgdata).args([
            "-U",
            "postgres",
            "--data-checksums",
            "-A",
            "trust",
        ]),
        "initdb",
    )?;
    let tuning = "shared_buffers = '512MB'\nmax_connections = 300\nmin_wal_size = '1GB'\nmax_wal_size = '4GB'\nwal_keep_size = '512MB'\ncheckpoint_timeout = '30min'\neffective_cache_size = '8GB'\nmaintenance_work_mem = '256MB'\nwal_buffers = '16MB'\nshared_preload_libraries = 'pg_stat_statements'\nlogging_collector = on\nmax_wal_senders = 10\nwal_level = replica\n";
    let conf = pgdata.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf)?;
    text.push_str(tuning);
    std::fs::write(&conf, text)?;
    let sock = src.display().to_string();
    ok(
        as_postgres("pg_ctl")
            .args(["-D"])
            .arg(&pgdata)
            .args(["-w", "-l"])
            .arg(src.join("server.log"))
            .args([
                "-o",
                &format!("-k {sock} -c listen_addresses='' -p 5499"),
                "start",
            ]),
        "start the production cluster",
    )?;
    let url = format!("postgresql:///postgres?host={sock}&port=5499&user=postgres");
    let t = Instant::now();
    ok(
        Command::new(Path::new(BIN).join("pgbench")).args(["-i", "-q", "-s", "30", &url]),
        "pgbench -i",
    )?;
    ok(
        Command::new(Path::new(BIN).join("pgbench")).args(["-n", "-c", "4", "-T", "30", &url]),
        "pgbench writes",
    )?;
    ok(
        Command::new(Path::new(BIN).join("psql")).args(["-XAtq", "-d", &url, "-c", "CHECKPOINT"]),
        "checkpoint",
    )?;
    ok(
        as_postgres("pg_ctl")
            .args(["-D"])
            .arg(&pgdata)
            .args(["-w", "-m", "fast", "stop"]),
        "stop the production cluster",
    )?;
    let wal = std::fs::read_dir(pgdata.join("pg_wal"))?
        .flatten()
        .filter(|e| e.file_name().len() == 24)
        .count();
    eprintln!(
        "production cluster: pgbench scale 30 + 30 s of writes in {:.0} s; {wal} WAL segments kept",
        t.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    for (label, init) in [
        (
            "adopted production directory",
            vec![
                "init",
                "--from-dir",
                pgdata.to_str().unwrap_or_default(),
                "--no-hooks",
            ],
        ),
        (
            "sample root (scale 30)",
            vec!["init", "--sample", "--scale", "30", "--no-hooks"],
        ),
    ] {
        let st = Store::new(base, "production", pgfork)?;
        let t = Instant::now();
        st.run(&init)?;
        let made = t.elapsed().as_secs_f64();
        let mut times = Vec::new();
        for i in 0..10 {
            let name = format!("p{i}");
            let t = Instant::now();
            st.run(&["branch", "create", &name])?;
            let url = st.run(&["url", &name])?.trim().to_string();
            first_query(&url).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            st.run(&["branch", "delete", &name, "--purge"])?;
        }
        rows.push((label, made, pct(&times, 50.0), pct(&times, 95.0)));
    }
    println!("create → first query, reflink, idle parent, 10 runs each, one run:");
    for (label, made, p50, p95) in &rows {
        println!("  {label:<30} root made in {made:.1} s; p50 {p50:.0} ms, p95 {p95:.0} ms");
    }
    if let [a, b] = rows.as_slice() {
        println!("  production / sample p50: {:.2}×", a.2 / b.2);
    }
    let _ = std::fs::remove_dir_all(&src);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("production") {
        let pgfork = std::env::current_exe()?.with_file_name("pgfork");
        return bench_production(&pgfork, std::env::args().nth(2).map(PathBuf::from)).await;
    }
    if std::env::args().nth(1).as_deref() == Some("checkout") {
        let pgfork = std::env::current_exe()?.with_file_name("pgfork");
        let base = std::env::args()
            .nth(2)
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        return bench_checkout(&pgfork, &base);
    }
    if std::env::args().nth(1).as_deref() == Some("history") {
        let pgfork = std::env::current_exe()?.with_file_name("pgfork");
        let rest: Vec<String> = std::env::args().skip(2).collect();
        return bench_history(&pgfork, &rest);
    }
    if std::env::args().nth(1).as_deref() == Some("mask") {
        let pgfork = std::env::current_exe()?.with_file_name("pgfork");
        let base = std::env::args()
            .nth(2)
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        return bench_mask(&pgfork, &base);
    }
    if std::env::args().nth(1).as_deref() == Some("proxy") {
        let pgfork = std::env::current_exe()?.with_file_name("pgfork");
        let base = std::env::args()
            .nth(2)
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        return bench_proxy(&pgfork, &base).await;
    }
    let o = opts()?;
    let mut rows = Vec::new();
    let mut mounted = None;
    for storage in &o.storages {
        let base = match storage.as_str() {
            "reflink" => match &o.xfs_dir {
                Some(d) => d.clone(),
                None => {
                    let (d, img) = mount_xfs()?;
                    mounted = Some((d.clone(), img));
                    d
                }
            },
            "copy" => std::env::temp_dir(),
            other => bail!("unknown storage {other}: reflink or copy"),
        };
        for size in &o.sizes {
            if let Err(e) = bench_one(&o, storage, &base, size, &mut rows).await {
                eprintln!("  {storage} {}: FAILED: {e:#}", size.0);
            }
        }
    }
    if let Some((d, img)) = mounted {
        let _ = Command::new("umount").arg(&d).status();
        let _ = std::fs::remove_file(img);
        let _ = std::fs::remove_dir(d);
    }
    println!("\ncreate → first query (ms), through the CLI and a libpq-protocol client; floor = cp -a{} of the same PGDATA in the same run", if o.storages.iter().any(|s| s == "reflink") { " --reflink" } else { "" });
    println!(
        "{:<8} {:>6} {:>9} {:<13} {:>8} {:>8} {:>10} {:>12}",
        "storage", "size", "GB", "parent", "p50", "p95", "floor p50", "fresh unique"
    );
    for r in &rows {
        println!(
            "{:<8} {:>6} {:>9.2} {:<13} {:>8.0} {:>8.0} {:>10.0} {:>12}",
            r.storage,
            r.size,
            r.logical as f64 / 1e9,
            r.parent,
            r.p50,
            r.p95,
            r.floor_p50,
            r.unique
                .map(|u| format!("{:.0} KiB", u as f64 / 1024.0))
                .unwrap_or_else(|| "-".into())
        );
    }
    let idle = |storage: &str| {
        rows.iter()
            .filter(|r| r.storage == storage && r.parent == "idle")
            .collect::<Vec<_>>()
    };
    let reflink = idle("reflink");
    if let (Some(small), Some(big)) = (reflink.first(), reflink.last()) {
        println!(
            "reflink flatness: {} p50 / {} p50 = {:.2}",
            big.size,
            small.size,
            big.p50 / small.p50
        );
    }
    Ok(())
}

/// `pgfork-bench history [--scale N] [--minutes M] [--runs R] [--xfs-dir D]`: what a
/// history window costs and gives, in one run on a reflink store: snapshot create, the
/// archive's bytes per hour of pgbench -c 4, and a branch at a moment M minutes of load
/// after the branch's base snapshot (the WAL it replays).
fn bench_history(pgfork: &Path, args: &[String]) -> Result<()> {
    let (mut scale, mut minutes, mut runs, mut xfs) = (70u32, 5.0f64, 3usize, None);
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--scale" => scale = val.parse().context("--scale")?,
            "--minutes" => minutes = val.parse().context("--minutes")?,
            "--runs" => runs = val.parse().context("--runs")?,
            "--xfs-dir" => xfs = Some(PathBuf::from(val)),
            other => bail!("unknown argument {other}: --scale N --minutes M --runs R --xfs-dir D"),
        }
        i += 2;
    }
    let mut mounted = None;
    let base = match xfs {
        Some(d) => d,
        None => {
            let (d, img) = mount_xfs()?;
            mounted = Some((d.clone(), img));
            d
        }
    };
    let result = (|| -> Result<()> {
        let st = Store::new(&base, "history", pgfork)?;
        st.run(&[
            "init",
            "--sample",
            "--scale",
            &scale.to_string(),
            "--no-hooks",
        ])?;
        let cfg = st.repo.join(".pgfork.toml");
        let mut text = std::fs::read_to_string(&cfg)?;
        // One base snapshot: a moment at the end of the load replays all of it.
        text.push_str("\n[history]\nwindow = \"24h\"\nsnapshot_every = \"24h\"\n");
        std::fs::write(&cfg, text)?;
        st.run(&["branch", "create", "h"])?;
        let url = st.run(&["url", "h"])?.trim().to_string();
        let mut snap = Vec::new();
        for n in 0..runs.max(1) {
            let t = Instant::now();
            st.run(&["snapshot", "create", "h", "--name", &format!("bench-{n}")])?;
            snap.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        for n in 0..runs.max(1) {
            st.run(&["snapshot", "delete", &format!("bench-{n}")])?;
        }
        let id =
            serde_json::from_str::<serde_json::Value>(&st.run(&["branch", "get", "h", "--json"])?)?
                ["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        let archive = st.home.join("history").join(&id);
        let before = dir_size(&archive);
        let secs = (minutes * 60.0).round().max(1.0) as u64;
        let load = Command::new("/usr/lib/postgresql/15/bin/pgbench")
            .args(["-n", "-c", "4", "-j", "2", "-T", &secs.to_string(), &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !load.success() {
            bail!("pgbench failed against the branch");
        }
        // The moment: the end of the load (the segment it is in is switched and read).
        let moment = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let grown = dir_size(&archive).saturating_sub(before);
        // The replay to the moment starts at the newest history snapshot before it.
        let history_snapshots = st
            .json(&["snapshot", "list"])?
            .as_array()
            .map(|a| a.iter().filter(|s| s["pgfork_reason"] == "history").count())
            .unwrap_or(0);
        let mut pitr = Vec::new();
        for n in 0..runs.max(1) {
            let t = Instant::now();
            st.run(&[
                "branch",
                "create",
                &format!("at-{n}"),
                "--parent",
                "h",
                "--at",
                &moment,
            ])?;
            pitr.push(t.elapsed().as_secs_f64() * 1000.0);
            st.run(&["branch", "delete", &format!("at-{n}"), "--purge"])
                .ok();
        }
        println!(
            "history (reflink, pgbench scale {scale} ≈ {} MB, {minutes} min of pgbench -c 4):",
            scale * 15
        );
        println!(
            "  snapshot create: p50 {:.0} ms, p95 {:.0} ms ({} runs)",
            pct(&snap, 50.0),
            pct(&snap, 95.0),
            snap.len()
        );
        println!(
            "  archive: {:.1} MiB for {minutes} min = {:.0} MiB per hour of load",
            grown as f64 / 1048576.0,
            grown as f64 / 1048576.0 * 60.0 / minutes
        );
        println!(
            "  branch at the end of {minutes} min of load: p50 {:.0} ms, p95 {:.0} ms ({} runs; {history_snapshots} history snapshots taken, the newest bounds the replay)",
            pct(&pitr, 50.0),
            pct(&pitr, 95.0),
            pitr.len()
        );
        Ok(())
    })();
    if let Some((d, img)) = mounted {
        let _ = Command::new("umount").arg(&d).status();
        let _ = std::fs::remove_file(img);
        let _ = std::fs::remove_dir(d);
    }
    result
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_file() {
                    total += m.len();
                }
            }
        }
    }
    total
}
