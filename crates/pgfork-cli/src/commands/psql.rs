//! `pgfork psql`: psql on a branch, the password passed through the environment (never argv,
//! where `ps` shows it).

use super::*;

pub(super) async fn psql(
    explicit: Option<&str>,
    branch: Option<String>,
    superuser: bool,
    args: Vec<String>,
) -> Result<i32> {
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    let b = resolve_default_branch(&c, &p, branch).await?;
    let psql = crate::pgbin::psql();
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&psql);
    if superuser {
        if c.is_remote() {
            bail!("--superuser works only on the daemon's own machine (the superuser has no password): run it there, without PGFORK_API");
        }
        let project = c.get_project(&p).await?.project;
        let Some(name) = project.pgfork_superuser else {
            bail!("the server did not say which role is the superuser: upgrade the daemon (pgfork daemon stop, then run this again)");
        };
        // The branch must run for its socket to exist.
        let b = c.set_running(&p, &b.id, true).await?.branch;
        let socket = crate::connect::layout()?.socket_dir(&b.id);
        cmd.arg("-h")
            .arg(&socket)
            .arg("-p")
            .arg(b.port.to_string())
            .arg("-U")
            .arg(&name)
            .arg("-d")
            .arg(&project.database_name)
            .args(&args);
    } else {
        // The password goes through the environment, not argv, where `ps` would show it.
        let (url, password) = split_password(&b.connection_uri);
        cmd.arg(url).args(&args);
        if let Some(pw) = password {
            cmd.env("PGPASSWORD", pw);
        }
    }
    let err = cmd.exec();
    bail!("could not run {}: {err}: install the PostgreSQL client (apt-get install postgresql-client)", psql.display())
}

/// `postgresql://user:pw@host/db` → (`postgresql://user@host/db`, `Some(pw)`).
pub(super) fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_string(), None);
    };
    let Some(at) = url[scheme_end..].find('@').map(|i| i + scheme_end) else {
        return (url.to_string(), None);
    };
    match url[scheme_end..at].split_once(':') {
        Some((user, pw)) => (
            format!("{}{user}{}", &url[..scheme_end], &url[at..]),
            Some(pw.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        let (url, pw) = split_password("postgresql://postgres:s3cret@127.0.0.1:26001/postgres");
        assert_eq!(url, "postgresql://postgres@127.0.0.1:26001/postgres");
        assert_eq!(pw.as_deref(), Some("s3cret"));
        assert_eq!(
            split_password("postgresql://u@h/d"),
            ("postgresql://u@h/d".to_string(), None)
        );
    }
}
