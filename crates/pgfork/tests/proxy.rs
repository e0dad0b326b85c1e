//! The front door: real drivers through the proxy, wake on connect, idle suspend,
//! restart after a crash, cancel, wrong passwords, and hostile bytes.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port in URL")
}

/// Runs a driver script; `None` when the driver is not installed (reported, never silent).
fn run_driver(name: &str, cmd: &mut Command) -> Option<String> {
    match cmd.output() {
        Ok(out) if out.status.success() => {
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("Cannot find module")
                || stderr.contains("No module named")
                || stderr.contains("ClassNotFoundException")
                || stderr.contains("could not find or load")
            {
                not_run(&format!(
                    "driver {name}: not installed; {}",
                    how_to_install(name)
                ));
                None
            } else {
                panic!(
                    "{name} failed: {stderr}\n{}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
        Err(e) => {
            not_run(&format!(
                "driver {name}: its runtime cannot start ({e}); {}",
                how_to_install(name)
            ));
            None
        }
    }
}

/// One readable line saying how to get a driver (what `.ci/run` does).
fn how_to_install(driver: &str) -> &'static str {
    match driver {
        "node-postgres" => {
            "install it with `npm install --prefix /tmp/pgfork-drivers/node pg` (needs Node.js)"
        }
        "psycopg" => "install it with `python3 -m pip install 'psycopg[binary]'`",
        "pgjdbc" => {
            "install it with `apt-get install default-jdk-headless libpostgresql-jdbc-java`"
        }
        _ => "`.ci/run` installs every driver the tests use",
    }
}

#[test]
fn ordinary_drivers_connect_and_prepare_through_the_proxy() {
    let Some(env) = Env::new("drivers", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let url = env.url("main");
    let ca = env.home.join("tls/ca.crt");
    let ca_str = ca.display().to_string();
    // psql / libpq: a query and a prepared statement, plain, TLS, and TLS verified
    // against pgfork's CA.
    for (mode, u) in [
        ("plain", format!("{url}?sslmode=disable")),
        ("tls", format!("{url}?sslmode=require")),
        (
            "tls verify-full",
            format!("{url}?sslmode=verify-full&sslrootcert={ca_str}"),
        ),
    ] {
        assert_eq!(
            psql_ok(&u, "PREPARE p(int) AS SELECT $1 + 1; EXECUTE p(41)"),
            "42",
            "{mode}"
        );
    }
    report("driver psql/libpq: ran (plain, TLS, verify-full)");

    // tokio-postgres (extended protocol: every query is a prepared statement).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("tokio-postgres connects");
        tokio::spawn(conn);
        let stmt = client.prepare("SELECT $1::int + 1").await.expect("prepare");
        let row = client.query_one(&stmt, &[&41i32]).await.expect("query");
        assert_eq!(row.get::<_, i32>(0), 42);
        // TLS, verifying the server against pgfork's CA.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                std::fs::read(env.home.join("tls/ca.crt.der")).expect("ca der"),
            ))
            .expect("ca accepted");
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
        let (client, conn) = tokio_postgres::connect(&format!("{url}?sslmode=require"), tls)
            .await
            .expect("tokio-postgres connects over TLS");
        tokio::spawn(conn);
        let row = client
            .query_one("SELECT $1::int + 1", &[&41i32])
            .await
            .expect("query over TLS");
        assert_eq!(row.get::<_, i32>(0), 42);
    });
    report("driver tokio-postgres: ran (plain, TLS verified)");

    // node-postgres, psycopg and pgjdbc, installed by .ci/run.
    let node_dir =
        std::env::var("PGFORK_TEST_NODE_DIR").unwrap_or_else(|_| "/tmp/pgfork-drivers/node".into());
    let js = "const fs=require('fs');const {Client}=require('pg');(async()=>{for(const ssl of [false,{ca:fs.readFileSync(process.argv[2]).toString()}]){const c=new Client({connectionString:process.argv[1],ssl});await c.connect();const r=await c.query({name:'p',text:'SELECT $1::int + 1 AS v',values:[41]});console.log(r.rows[0].v);await c.end();}})().catch(e=>{console.error(e.message);process.exit(1)})";
    if let Some(out) = run_driver(
        "node-postgres",
        Command::new("node")
            .args(["-e", js, &url, &ca_str])
            .env("NODE_PATH", format!("{node_dir}/node_modules")),
    ) {
        assert_eq!(out, "42\n42");
        report("driver node-postgres: ran (plain, TLS verified)");
    }
    let py = "import sys, psycopg\nfor extra in ('sslmode=disable', 'sslmode=verify-full&sslrootcert=' + sys.argv[2]):\n    with psycopg.connect(sys.argv[1] + '?' + extra) as c:\n        print(c.execute('SELECT %s::int + 1', (41,), prepare=True).fetchone()[0])";
    if let Some(out) = run_driver(
        "psycopg",
        Command::new("python3").args(["-c", py, &url, &ca_str]),
    ) {
        assert_eq!(out, "42\n42");
        report("driver psycopg: ran (plain, TLS verified)");
    }
    let jar = "/usr/share/java/postgresql.jar";
    let java_dir = env.home.join("java");
    std::fs::create_dir_all(&java_dir).expect("mkdir");
    let (user_pw, host_db) = url
        .trim_start_matches("postgresql://")
        .split_once('@')
        .expect("url");
    let (user, pw) = user_pw.split_once(':').expect("user:pw");
    std::fs::write(
        java_dir.join("T.java"),
        format!(
            "import java.sql.*; public class T {{ public static void main(String[] a) throws Exception {{ for (String mode : new String[]{{\"sslmode=disable\", \"sslmode=verify-full&sslrootcert={ca_str}\"}}) {{ try (Connection c = DriverManager.getConnection(\"jdbc:postgresql://{host_db}?\" + mode, \"{user}\", \"{pw}\")) {{ PreparedStatement s = c.prepareStatement(\"SELECT ?::int + 1\"); s.setInt(1, 41); ResultSet r = s.executeQuery(); r.next(); System.out.println(r.getInt(1)); }} }} }} }}"
        ),
    )
    .expect("write java");
    let javac = Command::new("javac")
        .args(["-cp", jar, "T.java"])
        .current_dir(&java_dir)
        .output();
    match javac {
        Ok(o) if o.status.success() && std::path::Path::new(jar).exists() => {
            let out = run_driver("pgjdbc", Command::new("java").args(["-cp", &format!("{jar}:."), "T"]).current_dir(&java_dir)).expect("pgjdbc runs once compiled");
            assert_eq!(out, "42\n42");
            report("driver pgjdbc: ran (plain, TLS verified)");
        }
        _ => not_run("driver pgjdbc (javac or /usr/share/java/postgresql.jar missing: apt-get install default-jdk-headless libpostgresql-jdbc-java)"),
    }
}

#[test]
fn suspended_branches_wake_on_connect_idle_ones_suspend_and_crashes_heal() {
    let Some(mut env) = Env::new("wake", Storage::Copy) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_IDLE_TIMEOUT".into(), "2s".into()));
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "w"]);
    let url = env.url("w");
    psql_ok(&url, "SELECT 1");
    wait_until("idle suspend", Duration::from_secs(20), || {
        env.branch("w")["state"] == "suspended"
    });
    assert!(
        env.branch("w")["data_dir"]
            .as_str()
            .is_some_and(|d| !std::path::Path::new(d).join("postmaster.pid").exists()),
        "no Postgres for a suspended branch"
    );
    // Many first connections at once: all succeed.
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let u = url.clone();
            std::thread::spawn(move || psql(&u, "SELECT 7"))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread").expect("woken connection"), "7");
    }
    assert_eq!(env.branch("w")["state"], "running");
    // kill -9 of the postmaster: the next connection restarts it.
    let pid: i32 = std::fs::read_to_string(
        std::path::Path::new(env.branch("w")["data_dir"].as_str().expect("dir"))
            .join("postmaster.pid"),
    )
    .expect("pid file")
    .lines()
    .next()
    .and_then(|l| l.trim().parse().ok())
    .expect("pid");
    // SAFETY: killing the test's own branch postmaster.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    wait_until("restart after kill -9", Duration::from_secs(30), || {
        psql(&url, "SELECT 1").is_ok()
    });
}

#[test]
fn cancel_requests_reach_the_right_backend() {
    let Some(env) = Env::new("cancel", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let url = env.url("main");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connects");
        tokio::spawn(conn);
        let token = client.cancel_token();
        let t = Instant::now();
        let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        token
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("cancel sent");
        let result = sleeper.await.expect("join");
        let err = result.expect_err("the query was cancelled");
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("57014"),
            "{err:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "cancelled after {:?}",
            t.elapsed()
        );
    });
}

#[test]
fn hostile_bytes_close_the_connection_and_never_hurt_the_daemon() {
    let Some(mut env) = Env::new("hostile", Storage::Copy) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_STARTUP_TIMEOUT".into(), "1s".into()));
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "other"]);
    let url = env.url("main");
    let other = env.url("other");
    let port = port_of(&url);
    let attack = |bytes: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = s.write_all(bytes);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        answer
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "oversized",
            [&100_000u32.to_be_bytes()[..], &[0u8; 64]].concat(),
        ),
        (
            "truncated",
            [
                &200u32.to_be_bytes()[..],
                &196_608u32.to_be_bytes()[..],
                b"user\0",
            ]
            .concat(),
        ),
        (
            "protocol 2",
            [&8u32.to_be_bytes()[..], &(2u32 << 16).to_be_bytes()[..]].concat(),
        ),
        (
            "no user",
            [
                &9u32.to_be_bytes()[..],
                &196_608u32.to_be_bytes()[..],
                &[0u8],
            ]
            .concat(),
        ),
        ("nothing (slowloris)", Vec::new()),
    ];
    for (name, bytes) in cases {
        let t = Instant::now();
        let answer = attack(&bytes);
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{name}: the connection was held for {:?}",
            t.elapsed()
        );
        if name == "protocol 2" || name == "no user" {
            assert_eq!(
                answer.first(),
                Some(&b'E'),
                "{name}: an ErrorResponse explains it"
            );
        }
        assert_eq!(
            psql_ok(&other, "SELECT 1"),
            "1",
            "after {name}, other branches are served"
        );
        assert_eq!(
            psql_ok(&url, "SELECT 1"),
            "1",
            "after {name}, the same port still serves"
        );
    }
}

#[test]
fn idle_timeouts_are_per_branch() {
    let Some(mut env) = Env::new("idle-per-branch", Storage::Copy) else {
        return;
    };
    env.extra_env
        .push(("PGFORK_IDLE_TIMEOUT".into(), "-1".into()));
    env.extra_env
        .push(("PGFORK_REAP_EVERY".into(), "1s".into()));
    env.ok(&["init", "--empty", "--no-hooks"]);
    env.ok(&["branch", "create", "quick", "--idle-timeout", "1s"]);
    env.ok(&["branch", "create", "forever", "--idle-timeout", "-1"]);
    env.ok(&["branch", "create", "later"]);
    assert_eq!(env.branch("forever")["state"], "running");
    wait_until("quick to suspend", Duration::from_secs(20), || {
        env.branch("quick")["state"] == "suspended"
    });
    env.ok(&["branch", "set-idle-timeout", "later", "1s"]);
    wait_until("later to suspend", Duration::from_secs(20), || {
        env.branch("later")["state"] == "suspended"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        env.branch("forever")["state"],
        "running",
        "-1 never suspends"
    );
    assert_eq!(
        env.branch("main")["state"],
        "running",
        "the daemon default here is never"
    );
    let err = env.fails(&["branch", "set-idle-timeout", "later", "soon"]);
    assert!(err.contains("24h"), "{err}");
}

/// A listener on a free port that plays a server to harvest passwords: it declines
/// TLS, asks for a cleartext password and records whatever arrives.
fn impostor() -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let mut asked = false;
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    // SSLRequest / GSSENCRequest: no.
                    if n == 8 && (buf[4..8] == [4, 210, 22, 47] || buf[4..8] == [4, 210, 22, 48]) {
                        let _ = s.write_all(b"N");
                        continue;
                    }
                    if !asked {
                        // AuthenticationCleartextPassword.
                        let _ = s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
                        asked = true;
                    }
                }
                let _ = tx.send(got);
            });
        }
    });
    (port, rx)
}

#[test]
fn secure_urls_bind_to_the_certificate_and_never_reach_an_impostor() {
    let Some(env) = Env::new("secure-urls", Storage::Copy) else {
        return;
    };
    env.ok(&["init", "--empty", "--no-hooks"]);
    let plain = env.url("main");
    let secure = env.ok(&["url", "main", "--secure"]).trim().to_string();
    assert!(
        secure.contains("sslmode=verify-full") && secure.contains("channel_binding=require"),
        "{secure}"
    );
    // libpq: channel_binding=require succeeds only with SCRAM-SHA-256-PLUS.
    assert_eq!(psql_ok(&secure, "SELECT 42"), "42");
    report("driver psql/libpq: channel_binding=require through --secure");
    // (tokio-postgres-rustls computes no channel-binding data, so tokio-postgres
    // cannot require binding; it connects over TLS with SCRAM-SHA-256 in the drivers
    // test.)
    let py = "import sys, psycopg\nwith psycopg.connect(sys.argv[1]) as c:\n    print(c.execute('SELECT 42').fetchone()[0])";
    if let Some(out) = run_driver("psycopg", Command::new("python3").args(["-c", py, &secure])) {
        assert_eq!(out, "42");
        report("driver psycopg: --secure URL (verify-full, channel_binding=require)");
    }
    let node_dir =
        std::env::var("PGFORK_TEST_NODE_DIR").unwrap_or_else(|_| "/tmp/pgfork-drivers/node".into());
    let js = "const fs=require('fs');const {Client}=require('pg');(async()=>{const c=new Client({connectionString:process.argv[1],enableChannelBinding:true,ssl:{ca:fs.readFileSync(process.argv[2]).toString()}});await c.connect();const r=await c.query('SELECT 42 AS v');console.log(r.rows[0].v);await c.end();})().catch(e=>{console.error(e.message);process.exit(1)})";
    let ca = env.home.join("tls/ca.crt").display().to_string();
    if let Some(out) = run_driver(
        "node-postgres",
        Command::new("node")
            .args(["-e", js, &plain, &ca])
            .env("NODE_PATH", format!("{node_dir}/node_modules")),
    ) {
        assert_eq!(out, "42");
        report("driver node-postgres: SCRAM-SHA-256-PLUS (enableChannelBinding)");
    }
    // An impostor on another port: the secure URL gives it nothing, while the plain URL
    // (the negative control) hands it the password.
    let password = plain
        .trim_start_matches("postgresql://")
        .split_once('@')
        .and_then(|(up, _)| up.split_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("password");
    let port = env.branch("main")["port"]
        .as_u64()
        .expect("port")
        .to_string();
    let (fake, rx) = impostor();
    let to_fake = |u: &str| u.replacen(&format!(":{port}/"), &format!(":{fake}/"), 1);
    assert!(psql(&to_fake(&secure), "SELECT 1").is_err());
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("impostor saw the secure attempt");
    assert!(
        !String::from_utf8_lossy(&got).contains(&password),
        "the secure URL leaked the password"
    );
    let _ = psql(&to_fake(&plain), "SELECT 1");
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("impostor saw the plain attempt");
    assert!(
        String::from_utf8_lossy(&got).contains(&password),
        "negative control: a plain URL sends its password to whoever listens"
    );
    report("impostor: got nothing from a --secure URL, the password from a plain one");
}
