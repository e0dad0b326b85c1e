//! Reading the SQL scripts `pg_dumpall --roles-only` and `pg_restore --create` print, so
//! that a faithful import can replay them one statement at a time.
//!
//! Why not feed them to psql: a role script from production names roles that already
//! exist here (pgfork's own, or a role the source shares with a previous import), and
//! one failed `CREATE ROLE` must neither stop the import nor be lost silently. Replaying
//! statement by statement lets the import skip what it must, keep going past what it
//! may, and say both in its fidelity report. The scripts are regular: one statement per
//! line, comments and psql meta-commands (`\connect`, `\restrict`) on lines of their own.

/// The SQL statements of a script, without comments, psql meta-commands and the
/// session `SET`s both tools print at the top of every section.
pub fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if pending.is_empty()
            && (trimmed.is_empty()
                || trimmed.starts_with("--")
                || trimmed.starts_with('\\')
                || trimmed.starts_with("SET ")
                || trimmed.starts_with("SELECT pg_catalog.set_config("))
        {
            continue;
        }
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(line);
        if trimmed.ends_with(';') {
            out.push(std::mem::take(&mut pending));
        }
    }
    if !pending.trim().is_empty() {
        out.push(pending);
    }
    out
}

/// What a statement of a role script is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleStatement {
    Create(String),
    /// `ALTER ROLE r …` (attributes, password, settings).
    Alter(String),
    /// `GRANT role TO member …`.
    Grant {
        role: String,
        member: String,
    },
    Other,
}

/// Classifies a statement of `pg_dumpall --roles-only`.
pub fn role_statement(stmt: &str) -> RoleStatement {
    let s = stmt.trim();
    if let Some(rest) = s.strip_prefix("CREATE ROLE ") {
        if let Some((name, _)) = identifier(rest) {
            return RoleStatement::Create(name);
        }
    }
    if let Some(rest) = s.strip_prefix("ALTER ROLE ") {
        if let Some((name, _)) = identifier(rest) {
            return RoleStatement::Alter(name);
        }
    }
    if let Some(rest) = s.strip_prefix("GRANT ") {
        if let Some((role, after)) = identifier(rest) {
            if let Some(after) = after.trim_start().strip_prefix("TO ") {
                if let Some((member, _)) = identifier(after) {
                    return RoleStatement::Grant { role, member };
                }
            }
        }
    }
    RoleStatement::Other
}

/// The identifier at the start of `s` (bare or double-quoted) and what follows it.
pub fn identifier(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if rest[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &rest[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].to_string(), &s[end..]))
}

/// `stmt` fit for a log or a report: password literals replaced.
pub fn redacted(stmt: &str) -> String {
    let mut out = String::new();
    let mut rest = stmt;
    while let Some(at) = rest.find("PASSWORD '") {
        out.push_str(&rest[..at]);
        out.push_str("PASSWORD '…'");
        let after = &rest[at + "PASSWORD '".len()..];
        // A SQL literal ends at a quote not doubled.
        let mut end = after.len();
        let bytes = after.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                end = i + 1;
                break;
            }
            i += 1;
        }
        rest = &after[end.min(after.len())..];
    }
    out.push_str(rest);
    out
}

/// Whether a role statement touches `role` (as its subject or either side of a grant).
pub fn touches(stmt: &RoleStatement, role: &str) -> bool {
    match stmt {
        RoleStatement::Create(r) | RoleStatement::Alter(r) => r == role,
        RoleStatement::Grant { role: g, member } => g == role || member == role,
        RoleStatement::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &str = r#"--
-- PostgreSQL database cluster dump
--

\restrict abc

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';

CREATE ROLE app_owner;
ALTER ROLE app_owner WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:a==$b=:c=';
CREATE ROLE "Odd ""Name""";
ALTER ROLE "Odd ""Name""" WITH NOLOGIN;
ALTER ROLE app_user SET statement_timeout TO '30s';
GRANT readonly TO app_user GRANTED BY postgres;
GRANT "Odd ""Name""" TO "app user";

\unrestrict abc
"#;

    #[test]
    fn a_role_script_splits_into_its_statements() {
        let s = statements(ROLES);
        assert_eq!(s.len(), 7, "{s:#?}");
        assert_eq!(s[0], "CREATE ROLE app_owner;");
        assert_eq!(
            role_statement(&s[0]),
            RoleStatement::Create("app_owner".into())
        );
        assert_eq!(
            role_statement(&s[2]),
            RoleStatement::Create("Odd \"Name\"".into())
        );
        assert_eq!(
            role_statement(&s[3]),
            RoleStatement::Alter("Odd \"Name\"".into())
        );
        assert_eq!(
            role_statement(&s[4]),
            RoleStatement::Alter("app_user".into())
        );
        assert_eq!(
            role_statement(&s[5]),
            RoleStatement::Grant {
                role: "readonly".into(),
                member: "app_user".into()
            }
        );
        assert_eq!(
            role_statement(&s[6]),
            RoleStatement::Grant {
                role: "Odd \"Name\"".into(),
                member: "app user".into()
            }
        );
        assert!(touches(&role_statement(&s[6]), "app user"));
        assert!(!touches(&role_statement(&s[6]), "app_user"));
    }

    #[test]
    fn statements_spanning_lines_are_kept_whole() {
        let s =
            statements("COMMENT ON DATABASE d IS 'two\nlines';\nALTER DATABASE d OWNER TO o;\n");
        assert_eq!(
            s,
            vec![
                "COMMENT ON DATABASE d IS 'two\nlines';",
                "ALTER DATABASE d OWNER TO o;"
            ]
        );
    }

    #[test]
    fn passwords_never_reach_a_report() {
        let r = redacted(
            "ALTER ROLE a WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:x''y' VALID UNTIL 'infinity';",
        );
        assert_eq!(
            r,
            "ALTER ROLE a WITH LOGIN PASSWORD '…' VALID UNTIL 'infinity';"
        );
        assert_eq!(redacted("ALTER ROLE a NOLOGIN;"), "ALTER ROLE a NOLOGIN;");
    }
}
