//! Masking rules: one per column, with Neon's field names (`database_name`,
//! `schema_name`, `table_name`, `column_name`, `masking_function` or `masking_value`),
//! so a file written for Neon's anonymized branches works here as is and round-trips
//! unchanged. pgfork adds `where` (mask only the rows that match) and
//! `allow_uniqueness_loss`.
//!
//! A file is TOML (`[[masking_rules]]` tables) or JSON (Neon's request body
//! `{"masking_rules": [...]}`, or a bare array).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskingRule {
    pub database_name: String,
    pub schema_name: String,
    pub table_name: String,
    pub column_name: String,
    /// An SQL expression, a built-in's name (`email`, `partial(2, 2)`), or one of
    /// PostgreSQL Anonymizer's functions Neon documents (`anon.fake_email()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking_function: Option<String>,
    /// A literal the column is set to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking_value: Option<String>,
    /// pgfork: only rows for which this SQL condition holds are masked.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// pgfork: in a `jsonb` column, mask only the value at this path of keys
    /// (`["contact", "email"]`); rows without it are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<Vec<String>>,
    /// pgfork: mask a column of a unique index or primary key with a function that may
    /// map two values to one (refused otherwise, before anything runs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_uniqueness_loss: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl MaskingRule {
    /// `db.schema.table.column`, how errors name a rule.
    pub fn target(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.database_name, self.schema_name, self.table_name, self.column_name
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MaskingRules {
    pub masking_rules: Vec<MaskingRule>,
    /// pgfork: refuse the branch when a column looks personal and no rule covers it,
    /// or a column of a masked table is neither masked nor listed in `keep`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict: bool,
    /// pgfork: columns reviewed as not personal, `db.schema.table.column` or
    /// `db.schema.table.*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("the masking rules are not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("masking rule {index} ({target}): {message}")]
    Invalid {
        index: usize,
        target: String,
        message: String,
    },
    #[error("the masking rules name no column: add at least one rule")]
    Empty,
}

impl MaskingRules {
    /// Parses a rules file: JSON when it starts with `{` or `[`, TOML otherwise.
    pub fn parse(text: &str) -> Result<MaskingRules, RuleError> {
        let trimmed = text.trim_start();
        let rules = if trimmed.starts_with('{') {
            serde_json::from_str::<MaskingRules>(text).map_err(|e| RuleError::Syntax {
                format: "JSON",
                message: e.to_string(),
            })?
        } else if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
            MaskingRules {
                masking_rules: serde_json::from_str(text).map_err(|e| RuleError::Syntax {
                    format: "JSON",
                    message: e.to_string(),
                })?,
                ..MaskingRules::default()
            }
        } else {
            toml::from_str::<MaskingRules>(text).map_err(|e| RuleError::Syntax {
                format: "TOML",
                message: e.message().to_string(),
            })?
        };
        rules.validate()?;
        Ok(rules)
    }

    /// Neon's request body.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), RuleError> {
        if self.masking_rules.is_empty() {
            return Err(RuleError::Empty);
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.masking_rules.iter().enumerate() {
            let bad = |message: String| RuleError::Invalid {
                index: i + 1,
                target: r.target(),
                message,
            };
            for (field, value) in [
                ("database_name", &r.database_name),
                ("schema_name", &r.schema_name),
                ("table_name", &r.table_name),
                ("column_name", &r.column_name),
            ] {
                if value.is_empty() {
                    return Err(bad(format!("{field} is empty")));
                }
                if value.contains('\0') {
                    return Err(bad(format!("{field} contains a NUL byte")));
                }
            }
            match (&r.masking_function, &r.masking_value) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "give masking_function or masking_value, not both".into()
                    ))
                }
                (None, None) => return Err(bad("give masking_function or masking_value".into())),
                (Some(f), None) if f.trim().is_empty() => {
                    return Err(bad("masking_function is empty".into()))
                }
                _ => {}
            }
            if let Some(f) = &r.masking_function {
                crate::functions::resolve(f, &r.column_name).map_err(bad)?;
            }
            if let Some(path) = &r.json_path {
                if path.is_empty() {
                    return Err(bad(
                        "json_path is empty: name the keys down to the value".into()
                    ));
                }
                if let Some(f) = &r.masking_function {
                    let resolved = crate::functions::resolve(f, &r.column_name).map_err(bad)?;
                    if resolved.builtin.is_none() || resolved.whole_column {
                        return Err(bad(
                            "json_path works with a built-in function (not shuffle) or masking_value".into(),
                        ));
                    }
                }
            }
            let key = (
                r.database_name.clone(),
                r.schema_name.clone(),
                r.table_name.clone(),
                r.column_name.clone(),
                (r.condition.clone(), r.json_path.clone()),
            );
            if !seen.insert(key) {
                return Err(bad(
                    "another rule masks the same column (for the same rows)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The databases the rules touch, in order of first mention.
    pub fn databases(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.masking_rules {
            if !out.contains(&r.database_name) {
                out.push(r.database_name.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEON: &str = r#"{
  "masking_rules": [
    {
      "database_name": "neondb",
      "schema_name": "public",
      "table_name": "users",
      "column_name": "email",
      "masking_function": "anon.fake_email()"
    },
    {
      "database_name": "neondb",
      "schema_name": "public",
      "table_name": "users",
      "column_name": "note",
      "masking_value": "redacted"
    }
  ]
}"#;

    #[test]
    fn neon_shaped_json_round_trips_unchanged() {
        let rules = MaskingRules::parse(NEON).expect("parses");
        assert_eq!(rules.masking_rules.len(), 2);
        assert_eq!(rules.to_json(), NEON);
        let value: serde_json::Value = serde_json::from_str(NEON).expect("json");
        assert_eq!(serde_json::to_value(&rules).expect("value"), value);
    }

    #[test]
    fn toml_and_bare_arrays_say_the_same() {
        let toml = r#"
[[masking_rules]]
database_name = "neondb"
schema_name = "public"
table_name = "users"
column_name = "email"
masking_function = "anon.fake_email()"

[[masking_rules]]
database_name = "neondb"
schema_name = "public"
table_name = "users"
column_name = "note"
masking_value = "redacted"
"#;
        let a = MaskingRules::parse(toml).expect("toml");
        let b = MaskingRules::parse(NEON).expect("json");
        assert_eq!(a, b);
        let bare = serde_json::to_string(&b.masking_rules).expect("array");
        assert_eq!(MaskingRules::parse(&bare).expect("bare"), b);
    }

    #[test]
    fn bad_rules_say_which_rule_and_why() {
        let rule = |f: Option<&str>, v: Option<&str>| MaskingRule {
            database_name: "db".into(),
            schema_name: "public".into(),
            table_name: "t".into(),
            column_name: "c".into(),
            masking_function: f.map(str::to_string),
            masking_value: v.map(str::to_string),
            condition: None,
            json_path: None,
            allow_uniqueness_loss: false,
        };
        let both = MaskingRules {
            masking_rules: vec![rule(Some("email"), Some("x"))],
            ..MaskingRules::default()
        };
        let e = both.validate().expect_err("both").to_string();
        assert!(
            e.contains("rule 1 (db.public.t.c)") && e.contains("not both"),
            "{e}"
        );
        let neither = MaskingRules {
            masking_rules: vec![rule(Some("email"), None), rule(None, None)],
            ..MaskingRules::default()
        };
        assert!(neither
            .validate()
            .expect_err("neither")
            .to_string()
            .starts_with("masking rule 2 (db.public.t.c)"));
        let twice = MaskingRules {
            masking_rules: vec![rule(Some("email"), None), rule(Some("hash"), None)],
            ..MaskingRules::default()
        };
        assert!(twice
            .validate()
            .expect_err("twice")
            .to_string()
            .contains("same column"));
        let unknown = MaskingRules {
            masking_rules: vec![rule(Some("no_such_builtin"), None)],
            ..MaskingRules::default()
        };
        assert!(unknown
            .validate()
            .expect_err("unknown")
            .to_string()
            .contains("no built-in masking function"));
        assert_eq!(MaskingRules::default().validate(), Err(RuleError::Empty));
        assert!(matches!(
            MaskingRules::parse("{ nope"),
            Err(RuleError::Syntax { format: "JSON", .. })
        ));
    }
}
