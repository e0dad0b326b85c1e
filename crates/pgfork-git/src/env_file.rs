//! `.env`-style files: rewrite only our keys, keep everything else as it was.

/// Returns `content` with each `key=value` of `vars` set: an existing assignment of the
/// key (also `export KEY=...`) is replaced in place, a missing one is appended. Other
/// lines, comments, blank lines and their order are kept byte for byte.
pub fn update(content: &str, vars: &[(&str, &str)]) -> String {
    let mut done = vec![false; vars.len()];
    let mut out = String::with_capacity(content.len() + 64);
    for line in content.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim_start();
        let (export, rest) = match trimmed.strip_prefix("export ") {
            Some(r) => (true, r.trim_start()),
            None => (false, trimmed),
        };
        let key = rest.split('=').next().unwrap_or("").trim();
        match vars
            .iter()
            .position(|(k, _)| rest.contains('=') && *k == key)
        {
            Some(i) if !done[i] => {
                done[i] = true;
                let prefix = if export { "export " } else { "" };
                out.push_str(&format!("{prefix}{}={}", vars[i].0, quote(vars[i].1)));
                out.push_str(if ending.is_empty() { "" } else { ending });
            }
            // A repeated assignment of our key would override ours: drop it.
            Some(_) => {}
            None => out.push_str(line),
        }
    }
    for (i, (k, v)) in vars.iter().enumerate() {
        if !done[i] {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{k}={}\n", quote(v)));
        }
    }
    out
}

/// The value as written: plain when safe, else double-quoted.
fn quote(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=?&,".contains(c))
    {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The current value of `key` in `content`, unquoted, if assigned.
pub fn get(content: &str, key: &str) -> Option<String> {
    content.lines().rev().find_map(|l| {
        let t = l.trim_start();
        let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
        let (k, v) = t.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_our_keys_in_place() {
        let before = "# app settings\nSECRET=abc\nDATABASE_URL=postgres://old\n\nexport OTHER_URL=x\nPORT=3000\n";
        let after = update(
            before,
            &[
                ("DATABASE_URL", "postgresql://u:p@127.0.0.1:26001/db"),
                ("OTHER_URL", "postgresql://new"),
            ],
        );
        assert_eq!(
            after,
            "# app settings\nSECRET=abc\nDATABASE_URL=postgresql://u:p@127.0.0.1:26001/db\n\nexport OTHER_URL=postgresql://new\nPORT=3000\n"
        );
    }

    #[test]
    fn appends_missing_keys_and_creates_from_nothing() {
        assert_eq!(update("", &[("DATABASE_URL", "x")]), "DATABASE_URL=x\n");
        assert_eq!(update("A=1", &[("B", "2")]), "A=1\nB=2\n");
    }

    #[test]
    fn duplicates_of_our_key_are_dropped_and_crlf_kept() {
        assert_eq!(update("K=1\r\nK=2\r\n", &[("K", "3")]), "K=3\r\n");
        assert_eq!(
            update("KEY_NOT=1\nKEY=2\n", &[("KEY", "9")]),
            "KEY_NOT=1\nKEY=9\n"
        );
    }

    #[test]
    fn quotes_when_needed_and_reads_back() {
        let s = update("", &[("K", "a b\"c")]);
        assert_eq!(s, "K=\"a b\\\"c\"\n");
        assert_eq!(get("X=1\nexport K=\"v\"\n", "K").as_deref(), Some("v"));
        assert_eq!(get("X=1\n", "K"), None);
    }
}
