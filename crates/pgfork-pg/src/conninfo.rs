//! Source connection strings without their secret. A password in the argv of psql,
//! pg_dump or pg_basebackup is visible to every local user in `ps` for as long as the
//! import runs; libpq also reads it from `PGPASSWORD`, whose `/proc/<pid>/environ` only
//! the same user and root can read. So the password leaves the string and travels in
//! the environment.

use std::process::Command;

/// `conn` (a `postgresql://` URI or a `key=value` string) without its password, and the
/// password, decoded.
pub fn split_password(conn: &str) -> (String, Option<String>) {
    let trimmed = conn.trim();
    if trimmed.starts_with("postgresql://") || trimmed.starts_with("postgres://") {
        return split_uri(trimmed).unwrap_or_else(|| (conn.to_string(), None));
    }
    split_keywords(trimmed)
}

fn split_uri(conn: &str) -> Option<(String, Option<String>)> {
    let mut url = url::Url::parse(conn).ok()?;
    let mut password = url.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .to_string()
    });
    if password.is_some() {
        url.set_password(None).ok()?;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some((_, p)) = pairs.iter().find(|(k, _)| k == "password") {
        password = Some(p.clone());
        let kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "password").collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
    }
    Some((url.to_string(), password))
}

/// `host=h password='a b' dbname=x` → (`host=h dbname=x`, `a b`).
fn split_keywords(conn: &str) -> (String, Option<String>) {
    let mut kept = Vec::new();
    let mut password = None;
    let mut rest = conn;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else {
            kept.push(rest.to_string());
            break;
        };
        let key = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let (value, raw_len) = if let Some(stripped) = after.strip_prefix('\'') {
            let mut v = String::new();
            let mut chars = stripped.char_indices();
            let mut end = stripped.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '\'' => {
                        end = i + 1;
                        break;
                    }
                    _ => v.push(c),
                }
            }
            (v, 1 + end)
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), end)
        };
        let consumed = rest.len() - after.len() + raw_len;
        let token = &rest[..consumed];
        if key == "password" {
            password = Some(value);
        } else {
            kept.push(token.to_string());
        }
        rest = &rest[consumed..];
    }
    (kept.join(" "), password)
}

/// Adds `-d <conn without password>` to `cmd` and hands the password over in
/// `PGPASSWORD`.
pub fn connect_arg(cmd: &mut Command, conn: &str) {
    let (clean, password) = split_password(conn);
    cmd.arg("-d").arg(clean);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_uris_and_keyword_strings() {
        let (u, p) = split_password("postgresql://app:s%40cret@db:5432/shop?sslmode=require");
        assert_eq!(u, "postgresql://app@db:5432/shop?sslmode=require");
        assert_eq!(p.as_deref(), Some("s@cret"));
        let (u, p) = split_password("postgres://app@db/shop?password=pw&sslmode=require");
        assert_eq!(u, "postgres://app@db/shop?sslmode=require");
        assert_eq!(p.as_deref(), Some("pw"));
        let (u, p) = split_password("host=db password='a b\\'c' dbname=shop");
        assert_eq!(u, "host=db dbname=shop");
        assert_eq!(p.as_deref(), Some("a b'c"));
        let (u, p) = split_password("host=db dbname=shop");
        assert_eq!((u.as_str(), p), ("host=db dbname=shop", None));
        let (u, p) = split_password("postgresql://db/shop");
        assert_eq!((u.as_str(), p), ("postgresql://db/shop", None));
    }
}
