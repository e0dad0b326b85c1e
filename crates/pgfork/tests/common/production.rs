//! A "production" PostgreSQL for import tests: a plain cluster pgfork does not manage,
//! with data checksums, a password-protected superuser, TCP on 127.0.0.1 and SCRAM,
//! as a real source would be. Run as the `postgres` OS user when the tests are root.

use super::{free_port, PG_BIN};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SUPERUSER_PASSWORD: &str = "prod-super-secret";

pub struct Production {
    pub dir: PathBuf,
    pub port: u16,
    uid: Option<(u32, u32)>,
}

fn postgres_ids() -> Option<(u32, u32)> {
    if !super::is_root() {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id postgres");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres OS user exists (apt install postgresql)")
    };
    Some((id("-u"), id("-g")))
}

impl Production {
    /// initdb (with checksums) and start; `conf` lines are appended to postgresql.conf.
    pub fn start(name: &str, conf: &[&str]) -> Production {
        let dir = std::env::temp_dir().join(format!("pgfork-prod-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir production dir");
        let uid = postgres_ids();
        if let Some((u, g)) = uid {
            std::os::unix::fs::chown(&dir, Some(u), Some(g)).expect("chown production dir");
        }
        let prod = Production {
            port: free_port(),
            dir,
            uid,
        };
        let pwfile = prod.dir.join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).expect("password file");
        if let Some((u, g)) = uid {
            std::os::unix::fs::chown(&pwfile, Some(u), Some(g)).expect("chown");
        }
        prod.run(
            "initdb",
            &[
                "-D",
                prod.data().to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "--data-checksums",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                pwfile.to_str().expect("utf-8 path"),
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        let mut text = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            prod.port,
            prod.dir.display()
        );
        for line in conf {
            text.push_str(line);
            text.push('\n');
        }
        let conf_path = prod.data().join("postgresql.conf");
        let mut all = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        all.push_str(&text);
        std::fs::write(&conf_path, all).expect("write postgresql.conf");
        prod.run(
            "pg_ctl",
            &[
                "-D",
                prod.data().to_str().expect("utf-8 path"),
                "-l",
                prod.dir.join("log").to_str().expect("utf-8 path"),
                "-w",
                "start",
            ],
        );
        prod
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let mut cmd = Command::new(Path::new(PG_BIN).join(tool));
        cmd.args(args).current_dir(&self.dir);
        if let Some((u, g)) = self.uid {
            cmd.uid(u).gid(g);
        }
        let out = cmd.output().expect("run a postgres tool");
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A URL over TCP, as an application (or pgfork) reaches production.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// The superuser's URL.
    pub fn admin_url(&self, db: &str) -> String {
        self.url("postgres", SUPERUSER_PASSWORD, db)
    }

    /// Runs a psql script (meta-commands allowed) as the superuser.
    pub fn script(&self, db: &str, sql: &str) {
        let file = self.dir.join(format!("script-{}.sql", std::process::id()));
        std::fs::write(&file, sql).expect("write script");
        let out = Command::new(Path::new(PG_BIN).join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.admin_url(db))
            .arg("-f")
            .arg(&file)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "production script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Production {
    fn drop(&mut self) {
        let mut cmd = Command::new(Path::new(PG_BIN).join("pg_ctl"));
        cmd.args(["-D"])
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(&self.dir);
        if let Some((u, g)) = self.uid {
            cmd.uid(u).gid(g);
        }
        let _ = cmd.output();
        if std::env::var_os("PGFORK_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
