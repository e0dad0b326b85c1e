//! The built-in masking functions: plain SQL in a schema `pgfork_mask` that exists only
//! while a branch is masked (no extension to install, nothing left behind).
//!
//! Pseudonyms are deterministic, keyed by the project's secret (the session setting
//! `pgfork.mask_key`, never written into the catalog): the same input masks to the same
//! output in every table and every run, so joins on masked columns still match, and
//! without the secret nobody can test guesses against them. A function whose output
//! has as much entropy as a unique key needs (or is a bijection, like `id`) is marked
//! as keeping uniqueness; a rule that puts any other function on a column of a unique
//! index is refused before anything runs.

/// A built-in: its name in rules, its extra arguments, whether distinct inputs stay
/// distinct, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    /// Extra arguments after the column, e.g. `partial(2, 2)`.
    pub args: &'static [&'static str],
    pub keeps_uniqueness: bool,
    /// Rewrites the whole column at once (not one value at a time).
    pub whole_column: bool,
    pub what: &'static str,
}

const fn b(
    name: &'static str,
    args: &'static [&'static str],
    keeps_uniqueness: bool,
    what: &'static str,
) -> Builtin {
    Builtin {
        name,
        args,
        keeps_uniqueness,
        whole_column: false,
        what,
    }
}

pub const BUILTINS: &[Builtin] = &[
    b("email", &[], true, "user_<96-bit pseudonym>@example.com"),
    b("first_name", &[], false, "a first name"),
    b("last_name", &[], false, "a last name"),
    b("full_name", &[], false, "first and last name"),
    b("phone", &[], false, "+1-555- and seven digits"),
    b("street_address", &[], false, "a house number and street"),
    b("city", &[], false, "a city"),
    b("company", &[], false, "a company name"),
    b("iban", &[], false, "an IBAN-shaped string"),
    b("credit_card", &[], false, "a 16-digit test card number"),
    b("ip", &[], false, "an address in 10.0.0.0/8"),
    b("uuid", &[], true, "a UUID derived from the value"),
    b(
        "id",
        &[],
        true,
        "a keyed permutation of non-negative integers (format-preserving: unique stays unique)",
    ),
    b("hash", &[], true, "hex SHA-256 of the value, keyed"),
    b(
        "partial",
        &["keep_first", "keep_last"],
        false,
        "keep the first and last characters, * between",
    ),
    b(
        "date_shift",
        &["max_days"],
        false,
        "move a date or timestamp by up to ±max_days",
    ),
    b(
        "noise",
        &["ratio"],
        false,
        "multiply a number by 1 ± up to ratio",
    ),
    b(
        "generalize",
        &["step"],
        false,
        "round a number down to a multiple of step (ranges)",
    ),
    b("lorem", &[], false, "lorem ipsum text of the same length"),
    b(
        "random_string",
        &["length"],
        false,
        "hex characters of the given length",
    ),
    Builtin {
        name: "shuffle",
        args: &[],
        // Distinct values stay distinct, but a unique index checks each row as it is
        // updated, and a permutation passes through duplicates on the way.
        keeps_uniqueness: false,
        whole_column: true,
        what: "the column's own values, permuted between rows",
    },
    b("null", &[], true, "NULL"),
];

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// A rule's masking function, ready for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The SQL expression computing the new value (unused for whole-column built-ins).
    pub sql: String,
    /// `Some` for built-ins; `None` for an arbitrary SQL expression (uniqueness unknown).
    pub builtin: Option<&'static str>,
    pub keeps_uniqueness: Option<bool>,
    pub whole_column: bool,
}

fn quote_ident(s: &str) -> String {
    postgres_protocol::escape::escape_identifier(s)
}

/// Arguments given to a built-in must be plain literals: numbers or quoted strings.
fn literal_args(args: &str) -> Result<Vec<String>, String> {
    let args = args.trim();
    if args.is_empty() {
        return Ok(Vec::new());
    }
    args.split(',')
        .map(|a| {
            let a = a.trim();
            let number = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
                && a.parse::<f64>().is_ok();
            let quoted = a.len() >= 2
                && a.starts_with('\'')
                && a.ends_with('\'')
                && !a[1..a.len() - 1].contains('\'');
            if number || quoted {
                Ok(a.to_string())
            } else {
                Err(format!("argument {a:?} is not a number or a quoted string"))
            }
        })
        .collect()
}

/// `name` or `name(args)` → (name, args) when `name` is a plain word.
fn call_shape(f: &str) -> Option<(&str, &str)> {
    let f = f.trim();
    let (name, rest) = match f.find('(') {
        Some(i) => (&f[..i], &f[i..]),
        None => (f, ""),
    };
    let word = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !word {
        return None;
    }
    if rest.is_empty() {
        return Some((name, ""));
    }
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    Some((name, inner))
}

/// `input` is the SQL of the value masked: a quoted column, or a JSON path in one.
fn builtin_call(b: &'static Builtin, input: &str, args: Vec<String>) -> Result<Resolved, String> {
    if args.len() != b.args.len() {
        return Err(format!(
            "{}({}) takes {} argument(s) after the column, not {}",
            b.name,
            b.args.join(", "),
            b.args.len(),
            args.len()
        ));
    }
    let col = input;
    let sql = match b.name {
        "null" => "NULL".to_string(),
        "id" => format!("pgfork_mask.id({col}::bigint)"),
        "shuffle" => String::new(),
        name => {
            let mut call = format!("pgfork_mask.{name}({col}::text");
            for a in &args {
                call.push_str(", ");
                call.push_str(a);
            }
            call.push(')');
            call
        }
    };
    Ok(Resolved {
        sql,
        builtin: Some(b.name),
        keeps_uniqueness: Some(b.keeps_uniqueness),
        whole_column: b.whole_column,
    })
}

/// PostgreSQL Anonymizer's functions that Neon's documentation uses, mapped to the
/// built-in that does the same (deterministically, where anon's are random).
fn from_anon(name: &str, args: &str, column: &str) -> Result<Resolved, String> {
    // `column` here is the SQL input (see `builtin_call`).
    let simple = |n: &str| builtin(n).map(|b| builtin_call(b, column, Vec::new()));
    let args: Vec<String> = args
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    let resolved = match name {
        "fake_email" => simple("email"),
        "fake_first_name" => simple("first_name"),
        "fake_last_name" => simple("last_name"),
        "fake_city" => simple("city"),
        "fake_company" => simple("company"),
        "fake_iban" => simple("iban"),
        "fake_address" => simple("street_address"),
        "random_phone" | "fake_phone" => simple("phone"),
        "fake_ipv4" => simple("ip"),
        "hash" | "digest" => simple("hash"),
        "lorem_ipsum" => simple("lorem"),
        "random_string" if args.len() == 1 => builtin("random_string")
            .map(|b| builtin_call(b, column, literal_args(&args[0]).unwrap_or_default())),
        // anon.partial(col, prefix, padding, suffix)
        "partial" if args.len() == 4 => builtin("partial")
            .map(|b| builtin_call(b, column, vec![args[1].clone(), args[3].clone()])),
        // anon.noise(col, ratio)
        "noise" if args.len() == 2 => {
            builtin("noise").map(|b| builtin_call(b, column, vec![args[1].clone()]))
        }
        _ => None,
    };
    resolved.unwrap_or_else(|| {
        Err(format!(
            "pgfork has no equivalent of anon.{name}: use a built-in ({}) or an SQL expression",
            BUILTINS
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// What a rule's `masking_function` means for `column`.
pub fn resolve(f: &str, column: &str) -> Result<Resolved, String> {
    resolve_input(f, &quote_ident(column))
}

/// What a rule's `masking_function` means for the value `input` (SQL).
pub fn resolve_input(f: &str, input: &str) -> Result<Resolved, String> {
    let column = input;
    if let Some((name, args)) = call_shape(f) {
        if let Some(anon) = name.strip_prefix("anon.") {
            return from_anon(anon, args, column);
        }
        if let Some(b) = builtin(name.strip_prefix("pgfork_mask.").unwrap_or(name)) {
            return builtin_call(b, column, literal_args(args)?);
        }
        if !name.contains('.') && args.is_empty() && !f.contains('(') {
            return Err(format!(
                "no built-in masking function {name:?}: use one of {} or an SQL expression",
                BUILTINS
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(Resolved {
        sql: format!("({f})"),
        builtin: None,
        keeps_uniqueness: None,
        whole_column: false,
    })
}

/// Installs the built-ins (run as a superuser, in each database being masked).
pub const INSTALL_SQL: &str = r#"
CREATE SCHEMA pgfork_mask;
CREATE FUNCTION pgfork_mask.h(v text) RETURNS bytea LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT sha256(convert_to(current_setting('pgfork.mask_key') || chr(31) || v, 'UTF8')) $$;
CREATE FUNCTION pgfork_mask.n(h bytea, o int) RETURNS int LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT get_byte(h, o % 32) * 256 + get_byte(h, (o + 1) % 32) $$;
-- Up to 15 digits from 7 bytes of the hash at byte offset o (0..25); arithmetic only,
-- so that callers are inlined into the UPDATE (no per-row subquery).
CREATE FUNCTION pgfork_mask.digits(h bytea, o int, len int) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT lpad(((('x' || substr(encode(h, 'hex'), 2 * o + 1, 14))::bit(56)::bigint) % (10::numeric ^ len)::bigint)::text, len, '0') $$;
CREATE FUNCTION pgfork_mask.email(v text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT 'user_' || substr(encode(pgfork_mask.h(v), 'hex'), 1, 24) || '@example.com' $$;
CREATE FUNCTION pgfork_mask.first_name(v text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT (ARRAY['Ada','Alan','Alice','Amara','Anna','Ben','Carla','Chen','Dana','David','Elena','Emil','Fatima','Grace','Hana','Ivan','Jonas','Julia','Kai','Lena','Leo','Lina','Marco','Maya','Mira','Noah','Nora','Omar','Paul','Priya','Rosa','Sam','Sara','Tomas','Uma','Vera','Wen','Yara','Yusuf','Zoe'])[1 + pgfork_mask.n(pgfork_mask.h(v), 0) % 40] $$;
CREATE FUNCTION pgfork_mask.last_name(v text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT (ARRAY['Adler','Bauer','Berg','Costa','Dahl','Diaz','Eng','Fischer','Garcia','Hall','Ito','Jensen','Kim','Klein','Lopez','Meyer','Moreau','Nagy','Novak','Okafor','Olsen','Park','Petrov','Quinn','Rossi','Sato','Schmidt','Silva','Singh','Stone','Tanaka','Vogel','Wagner','Weber','Wolf','Young','Zhang'])[1 + pgfork_mask.n(pgfork_mask.h(v), 2) % 37] $$;
CREATE FUNCTION pgfork_mask.full_name(v text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT (ARRAY['Ada','Alan','Alice','Amara','Anna','Ben','Carla','Chen','Dana','David','Elena','Emil','Fatima','Grace','Hana','Ivan','Jonas','Julia','Kai','Lena','Leo','Lina','Marco','Maya','Mira','Noah','Nora','Omar','Paul','Priya','Rosa','Sam','Sara','Tomas','Uma','Vera','Wen','Yara','Yusuf','Zoe'])[1 + pgfork_mask.n(pgfork_mask.h(v), 0) % 40] || ' ' || (ARRAY['Adler','Bauer','Berg','Costa','Dahl','Diaz','Eng','Fischer','Garcia','Hall','Ito','Jensen','Kim','Klein','Lopez','Meyer','Moreau','Nagy','Novak','Okafor','Olsen','Park','Petrov','Quinn','Rossi','Sato','Schmidt','Silva','Singh','Stone','Tanaka','Vogel','Wagner','Weber','Wolf','Young','Zhang'])[1 + pgfork_mask.n(pgfork_mask.h(v), 2) % 37] $$;
CREATE FUNCTION pgfork_mask.phone(v text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT '+1-555-' || pgfork_mask.digits(pgfork_mask.h(v), 4, 7) $$;
CREATE FUNCTION pgfork_mask.street_address(v text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT (1 + pgfork_mask.n(pgfork_mask.h(v), 0) % 999)::text || ' ' || (ARRAY['Oak','Maple','Cedar','Birch','Elm','Pine','Willow','Lake','Hill','River','Park','Mill','Station','Church','Garden'])[1 + pgfork_mask.n(pgfork_mask.h(v), 2) % 15] || ' ' || (ARRAY['Street','Avenue','Road','Lane','Way'])[1 + pgfork_mask.n(pgfork_mask.h(v), 4) % 5] $$;
CREATE FUNCTION pgfork_mask.city(v text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT (ARRAY['Springfield','Riverton','Fairview','Greenville','Bristol','Franklin','Clinton','Madison','Georgetown','Salem','Arlington','Ashland','Dover','Milton','Newport','Oxford','Burlington','Manchester','Kingston','Hudson'])[1 + pgfork_mask.n(pgfork_mask.h(v), 6) % 20] $$;
CREATE FUNCTION pgfork_mask.company(v text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT (ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Vandelay','Stark','Wayne','Wonka','Tyrell','Cyberdyne','Soylent','Gringotts','Aperture','Monarch'])[1 + pgfork_mask.n(pgfork_mask.h(v), 8) % 15] || ' ' || (ARRAY['Ltd','Inc','GmbH','LLC','Group','Labs'])[1 + pgfork_mask.n(pgfork_mask.h(v), 10) % 6] $$;
CREATE FUNCTION pgfork_mask.iban(v text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT 'XX' || pgfork_mask.digits(pgfork_mask.h(v), 0, 2) || 'PGFK' || pgfork_mask.digits(pgfork_mask.h(v), 8, 14) $$;
CREATE FUNCTION pgfork_mask.credit_card(v text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT '4000' || pgfork_mask.digits(pgfork_mask.h(v), 12, 12) $$;
CREATE FUNCTION pgfork_mask.ip(v text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT '10.' || get_byte(pgfork_mask.h(v), 0) || '.' || get_byte(pgfork_mask.h(v), 1) || '.' || get_byte(pgfork_mask.h(v), 2) $$;
CREATE FUNCTION pgfork_mask.uuid(v text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT overlay(overlay(substr(encode(pgfork_mask.h(v), 'hex'), 1, 32) placing '4' from 13 for 1) placing '8' from 17 for 1)::uuid::text $$;
CREATE FUNCTION pgfork_mask.hash(v text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT encode(pgfork_mask.h(v), 'hex') $$;
CREATE FUNCTION pgfork_mask.partial(v text, keep_first int, keep_last int) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT CASE WHEN length(v) <= keep_first + keep_last THEN repeat('*', length(v))
              ELSE left(v, keep_first) || repeat('*', length(v) - keep_first - keep_last) || right(v, keep_last) END $$;
CREATE FUNCTION pgfork_mask.date_shift(v text, max_days int) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT (v::timestamptz + make_interval(days => pgfork_mask.n(pgfork_mask.h(v), 0) % (2 * max_days + 1) - max_days))::text $$;
CREATE FUNCTION pgfork_mask.noise(v text, ratio numeric) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT CASE WHEN v ~ '^-?[0-9]+$' THEN round(v::numeric * (1 + ratio * (pgfork_mask.n(pgfork_mask.h(v), 0) / 65535.0 * 2 - 1)))::text
              ELSE (v::numeric * (1 + ratio * (pgfork_mask.n(pgfork_mask.h(v), 0) / 65535.0 * 2 - 1)))::text END $$;
CREATE FUNCTION pgfork_mask.generalize(v text, step numeric) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT (floor(v::numeric / step) * step)::text $$;
CREATE FUNCTION pgfork_mask.lorem(v text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT left(repeat('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore ', 1 + length(v) / 90), length(v)) $$;
CREATE FUNCTION pgfork_mask.random_string(v text, len int) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS
$$ SELECT left(encode(pgfork_mask.h(v), 'hex') || encode(sha256(pgfork_mask.h(v)), 'hex'), len) $$;
-- A keyed 4-round Feistel permutation of [0, 2^62): distinct ids stay distinct and
-- non-negative ids stay non-negative (so keys and foreign keys keep matching).
CREATE FUNCTION pgfork_mask.id(v bigint) RETURNS bigint LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE AS $$
DECLARE
  l bigint; r bigint; f bigint; t bigint; x bytea; neg boolean := v < 0; a bigint;
BEGIN
  -- Outside the permuted range a value would stay as it is: refuse instead.
  IF v = -9223372036854775808 OR abs(v) >= 4611686018427387904 THEN
    RAISE EXCEPTION 'id masks integers below 2^62 in absolute value; % is not: use hash or uuid for this column', v;
  END IF;
  a := abs(v);
  l := a >> 31; r := a & 2147483647;
  FOR i IN 1..4 LOOP
    x := sha256(convert_to(current_setting('pgfork.mask_key') || chr(30) || i || chr(30) || r, 'UTF8'));
    f := ((get_byte(x, 0)::bigint << 24) | (get_byte(x, 1) << 16) | (get_byte(x, 2) << 8) | get_byte(x, 3)) & 2147483647;
    t := r; r := l # f; l := t;
  END LOOP;
  a := (l << 31) | r;
  RETURN CASE WHEN neg THEN -a ELSE a END;
END $$;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_anon_names_and_expressions_resolve() {
        let r = resolve("email", "e-mail").expect("builtin");
        assert_eq!(r.sql, "pgfork_mask.email(\"e-mail\"::text)");
        assert_eq!(r.keeps_uniqueness, Some(true));
        let p = resolve("partial(2, 3)", "phone").expect("args");
        assert_eq!(p.sql, "pgfork_mask.partial(\"phone\"::text, 2, 3)");
        assert_eq!(p.keeps_uniqueness, Some(false));
        assert_eq!(
            resolve("anon.fake_email()", "email").expect("anon").sql,
            "pgfork_mask.email(\"email\"::text)"
        );
        assert_eq!(
            resolve("anon.partial(phone, 2, '***', 2)", "phone")
                .expect("anon partial")
                .sql,
            "pgfork_mask.partial(\"phone\"::text, 2, 2)"
        );
        assert_eq!(
            resolve("id", "id").expect("id").sql,
            "pgfork_mask.id(\"id\"::bigint)"
        );
        assert!(resolve("shuffle", "c").expect("shuffle").whole_column);
        let custom = resolve("upper(name)", "name").expect("expression");
        assert_eq!(
            (custom.sql.as_str(), custom.keeps_uniqueness),
            ("(upper(name))", None)
        );
        assert!(resolve("anon.fake_siret()", "x")
            .expect_err("unknown anon")
            .contains("no equivalent"));
        assert!(resolve("partial(2)", "x")
            .expect_err("arity")
            .contains("takes 2"));
        assert!(resolve("partial(2, now())", "x")
            .expect_err("literal")
            .contains("not a number"));
        assert!(resolve("emial", "x")
            .expect_err("typo")
            .contains("no built-in"));
    }

    #[test]
    fn every_builtin_is_installed() {
        for b in BUILTINS {
            if matches!(b.name, "null" | "shuffle") {
                continue;
            }
            assert!(
                INSTALL_SQL.contains(&format!("FUNCTION pgfork_mask.{}(", b.name)),
                "{} has no SQL",
                b.name
            );
        }
    }
}
