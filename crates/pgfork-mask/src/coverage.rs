//! Coverage: which columns look personal and no rule masks. Rules are written once and
//! schemas keep changing; a new `email` column nobody wrote a rule for is how personal
//! data leaks into every branch. A column is suspect by its name (email, phone, name,
//! address, birth date, national id, card, IP, free text), its type (`inet`), or its
//! sampled contents (addresses, phone and card numbers, IPs). In strict mode, any
//! uncovered column of a table the rules name — unless listed under `keep` as reviewed
//! — and any uncovered suspect column anywhere refuses the branch.

use crate::rules::MaskingRules;

/// A column as the catalog and a sample of its values describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub database: String,
    pub schema: String,
    pub table: String,
    pub column: String,
    /// `format_type` of the column (`text`, `character varying(80)`, `inet`, …).
    pub data_type: String,
    /// Up to a hundred non-null values, as text (empty when not sampled).
    pub samples: Vec<String>,
}

impl Column {
    pub fn target(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.database, self.schema, self.table, self.column
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub target: String,
    pub reason: String,
}

const PERSON_TABLES: &[&str] = &[
    "user",
    "users",
    "person",
    "people",
    "persons",
    "customer",
    "customers",
    "client",
    "clients",
    "employee",
    "employees",
    "member",
    "members",
    "contact",
    "contacts",
    "account",
    "accounts",
    "patient",
    "patients",
    "profile",
    "profiles",
    "subscriber",
    "subscribers",
    "student",
    "students",
];

/// Name fragments (matched against `_`-separated words) and what they suggest.
const NAME_HINTS: &[(&[&str], &str)] = &[
    (&["email", "e_mail", "mail"], "email addresses"),
    (
        &["phone", "mobile", "tel", "telephone", "fax", "msisdn"],
        "phone numbers",
    ),
    (
        &[
            "first_name",
            "last_name",
            "full_name",
            "surname",
            "given_name",
            "family_name",
            "middle_name",
            "maiden_name",
            "display_name",
            "firstname",
            "lastname",
            "fullname",
        ],
        "personal names",
    ),
    (
        &[
            "address",
            "street",
            "addr",
            "postcode",
            "postal_code",
            "zip",
            "zipcode",
        ],
        "postal addresses",
    ),
    (
        &["birth", "birthday", "dob", "birthdate", "date_of_birth"],
        "birth dates",
    ),
    (
        &[
            "ssn",
            "social_security",
            "national_id",
            "passport",
            "tax_id",
            "taxid",
            "vat_id",
            "id_card",
            "driver_license",
            "licence",
            "license_number",
        ],
        "national identifiers",
    ),
    (
        &[
            "iban",
            "bic",
            "account_number",
            "card",
            "credit_card",
            "cc_number",
            "pan",
        ],
        "payment details",
    ),
    (
        &["ip", "ip_address", "ipaddr", "last_ip", "remote_addr"],
        "IP addresses",
    ),
];

/// Column names that hold free text people write (in a person-like table).
const FREE_TEXT: &[&str] = &[
    "bio",
    "notes",
    "note",
    "comment",
    "comments",
    "about",
    "message",
    "description",
];

fn words(name: &str) -> Vec<String> {
    name.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn name_hint(table: &str, column: &str) -> Option<&'static str> {
    let lower = column.to_ascii_lowercase();
    let ws = words(column);
    for (hints, what) in NAME_HINTS {
        for h in *hints {
            let hit = if h.contains('_') {
                lower.contains(h)
            } else {
                ws.iter().any(|w| w == h)
            };
            if hit {
                return Some(what);
            }
        }
    }
    let person_table = PERSON_TABLES.contains(&table.to_ascii_lowercase().as_str());
    if person_table && (lower == "name" || lower == "username" || lower == "login") {
        return Some("personal names");
    }
    if person_table && FREE_TEXT.contains(&lower.as_str()) {
        return Some("free text about a person");
    }
    None
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

fn value_kind(v: &str) -> Option<&'static str> {
    let v = v.trim();
    if let Some((local, domain)) = v.split_once('@') {
        if !local.is_empty()
            && !local.contains(' ')
            && domain.contains('.')
            && !domain.contains(' ')
            && !domain.contains('@')
        {
            return Some("email addresses");
        }
    }
    let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
    let phone_chars = v
        .chars()
        .all(|c| c.is_ascii_digit() || " +-()./".contains(c));
    if phone_chars && (13..=19).contains(&digits.len()) && luhn(&digits) && !v.contains('+') {
        return Some("card numbers");
    }
    if phone_chars && v.starts_with('+') && (8..=15).contains(&digits.len()) {
        return Some("phone numbers");
    }
    let octets: Vec<&str> = v.split('.').collect();
    if octets.len() == 4
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
    {
        return Some("IP addresses");
    }
    None
}

/// Why `c` looks personal, if it does.
pub fn looks_personal(c: &Column) -> Option<String> {
    if let Some(what) = name_hint(&c.table, &c.column) {
        return Some(format!("its name suggests {what}"));
    }
    let t = c.data_type.to_ascii_lowercase();
    if t == "inet" || t == "cidr" || t == "macaddr" {
        return Some("its type holds network addresses".into());
    }
    if !c.samples.is_empty() {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for v in &c.samples {
            if let Some(k) = value_kind(v) {
                *counts.entry(k).or_default() += 1;
            }
        }
        if let Some((k, n)) = counts.into_iter().max_by_key(|(_, n)| *n) {
            if n * 2 >= c.samples.len() {
                return Some(format!(
                    "{n} of {} sampled values look like {k}",
                    c.samples.len()
                ));
            }
        }
    }
    None
}

fn covered(rules: &MaskingRules, c: &Column) -> bool {
    rules.masking_rules.iter().any(|r| {
        // A rule for some rows, or one key of a JSON document, does not cover the column.
        r.condition.is_none()
            && r.json_path.is_none()
            && r.database_name == c.database
            && r.schema_name == c.schema
            && r.table_name == c.table
            && r.column_name == c.column
    })
}

fn kept(rules: &MaskingRules, c: &Column) -> bool {
    let target = c.target();
    rules.keep.iter().any(|k| {
        k == &target
            || k.strip_suffix(".*")
                .is_some_and(|table| target.rsplit_once('.').is_some_and(|(t, _)| t == table))
    })
}

/// Suspect columns no rule masks (and not kept as reviewed).
pub fn uncovered(columns: &[Column], rules: &MaskingRules) -> Vec<Finding> {
    columns
        .iter()
        .filter(|c| !covered(rules, c) && !kept(rules, c))
        .filter_map(|c| {
            looks_personal(c).map(|reason| Finding {
                target: c.target(),
                reason,
            })
        })
        .collect()
}

/// What strict mode refuses: every uncovered suspect column, and every uncovered,
/// unkept column of a table the rules name.
pub fn strict_violations(columns: &[Column], rules: &MaskingRules) -> Vec<Finding> {
    let mut out = uncovered(columns, rules);
    let listed: std::collections::BTreeSet<(String, String, String)> = rules
        .masking_rules
        .iter()
        .map(|r| {
            (
                r.database_name.clone(),
                r.schema_name.clone(),
                r.table_name.clone(),
            )
        })
        .collect();
    for c in columns {
        let in_listed = listed.contains(&(c.database.clone(), c.schema.clone(), c.table.clone()));
        if in_listed
            && !covered(rules, c)
            && !kept(rules, c)
            && !out.iter().any(|f| f.target == c.target())
        {
            out.push(Finding {
                target: c.target(),
                reason: "its table is masked and no rule covers it nor does `keep` list it".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(table: &str, column: &str, ty: &str, samples: &[&str]) -> Column {
        Column {
            database: "app".into(),
            schema: "public".into(),
            table: table.into(),
            column: column.into(),
            data_type: ty.into(),
            samples: samples.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn names_types_and_contents_give_personal_columns_away() {
        assert!(looks_personal(&col("orders", "billing_email", "text", &[])).is_some());
        assert!(looks_personal(&col("users", "name", "text", &[])).is_some());
        assert!(
            looks_personal(&col("products", "name", "text", &[])).is_none(),
            "a product's name is not personal"
        );
        assert!(looks_personal(&col("users", "mobile_number", "text", &[])).is_some());
        assert!(looks_personal(&col("users", "date_of_birth", "date", &[])).is_some());
        assert!(looks_personal(&col("sessions", "client", "inet", &[])).is_some());
        assert!(looks_personal(&col("users", "bio", "text", &[])).is_some());
        assert!(looks_personal(&col("posts", "description", "text", &[])).is_none());
        assert!(looks_personal(&col("orders", "status", "text", &["paid", "open"])).is_none());
        let contact = col(
            "orders",
            "contact",
            "text",
            &["a@b.example", "c@d.example", "n/a"],
        );
        assert_eq!(
            looks_personal(&contact).as_deref(),
            Some("2 of 3 sampled values look like email addresses")
        );
        assert!(
            looks_personal(&col("t", "x", "text", &["4111 1111 1111 1111"])).is_some(),
            "a card number (Luhn)"
        );
        assert!(
            looks_personal(&col("t", "x", "text", &["1234 5678 9012 3456"])).is_none(),
            "not Luhn"
        );
        assert!(looks_personal(&col("t", "x", "text", &["+49 170 1234567"])).is_some());
        assert!(looks_personal(&col("t", "x", "text", &["10.1.2.3"])).is_some());
        assert!(looks_personal(&col("t", "version", "text", &["1.2.3"])).is_none());
    }

    #[test]
    fn strict_mode_wants_every_column_of_a_masked_table_decided() {
        let rules = MaskingRules::parse(
            r#"
keep = ["app.public.users.id", "app.public.audit.*"]
[[masking_rules]]
database_name = "app"
schema_name = "public"
table_name = "users"
column_name = "email"
masking_function = "email"
"#,
        )
        .expect("rules");
        let columns = vec![
            col("users", "id", "bigint", &[]),
            col("users", "email", "text", &[]),
            col("users", "plan", "text", &["free"]),
            col("users", "backup_email", "text", &[]),
            col("audit", "actor_email", "text", &[]),
            col("orders", "total", "numeric", &[]),
        ];
        let u: Vec<String> = uncovered(&columns, &rules)
            .into_iter()
            .map(|f| f.target)
            .collect();
        assert_eq!(u, vec!["app.public.users.backup_email"]);
        let s: Vec<String> = strict_violations(&columns, &rules)
            .into_iter()
            .map(|f| f.target)
            .collect();
        assert_eq!(
            s,
            vec!["app.public.users.backup_email", "app.public.users.plan"]
        );
    }
}
