//! What an import copied, measured rather than claimed.
//!
//! A logical import goes through three tools (pg_dumpall, pg_dump, pg_restore) and
//! several choices of pgfork's own (superusers keep no password, what a superuser owned
//! is handed to the owner role). "It finished" says nothing about whether the copy is
//! the source: the same catalog inventory is taken of both, and every difference that
//! is not one of pgfork's documented choices is reported. [`compare`] is pure, so
//! what counts as a difference is unit-tested without a database.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A catalog inventory of one database and the roles of its cluster.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Inventory {
    pub encoding: String,
    pub collate: String,
    pub checksums: String,
    pub owner: String,
    pub database_acl: Vec<String>,
    pub database_comment: Option<String>,
    /// `role:name=value` (empty role: for every role) for this database.
    pub database_settings: Vec<String>,
    /// `role:name=value` for every database.
    pub role_settings: Vec<String>,
    /// Role name → its attributes, space-separated.
    pub roles: BTreeMap<String, String>,
    /// `role > member`.
    pub memberships: Vec<String>,
    /// `pg_class.relkind` → how many, in the application's schemas.
    pub relations: BTreeMap<String, i64>,
    /// Owner → how many relations it owns.
    pub owners: BTreeMap<String, i64>,
    pub grants: i64,
    pub default_privileges: i64,
    pub functions: i64,
    pub triggers: i64,
    pub policies: i64,
    pub large_objects: i64,
    pub comments: i64,
    pub extensions: BTreeMap<String, String>,
    pub sequences: BTreeMap<String, Option<i64>>,
    pub publications: i64,
    pub subscriptions: i64,
    pub security_labels: i64,
    pub tablespaces: Vec<String>,
}

/// The inventory query (one JSON object). `with_passwords`: the caller may read
/// `pg_authid`, so whether each role has a password is part of the inventory.
pub fn inventory_sql(with_passwords: bool) -> String {
    let password = if with_passwords {
        "CASE WHEN (SELECT a.rolpassword IS NOT NULL FROM pg_authid a WHERE a.oid = r.oid) THEN 'password' END"
    } else {
        "NULL"
    };
    let user_schema =
        "s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname !~ '^pg_(toast|temp)'";
    let not_extension = |class: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = '{class}'::regclass AND e.objid = {oid} AND e.deptype = 'e')"
        )
    };
    format!(
        r#"SELECT json_build_object(
  'encoding', pg_encoding_to_char(d.encoding),
  'collate', d.datcollate,
  'checksums', current_setting('data_checksums'),
  'owner', pg_get_userbyid(d.datdba),
  'database_acl', (SELECT coalesce(json_agg(regexp_replace(a::text, '/.*$', '') ORDER BY a::text), '[]') FROM unnest(d.datacl) a),
  'database_comment', shobj_description(d.oid, 'pg_database'),
  'database_settings', (SELECT coalesce(json_agg(x ORDER BY x), '[]') FROM (SELECT coalesce(r.rolname, '') || ':' || unnest(st.setconfig) AS x FROM pg_db_role_setting st LEFT JOIN pg_roles r ON r.oid = st.setrole WHERE st.setdatabase = d.oid) q),
  'role_settings', (SELECT coalesce(json_agg(x ORDER BY x), '[]') FROM (SELECT r.rolname || ':' || unnest(st.setconfig) AS x FROM pg_db_role_setting st JOIN pg_roles r ON r.oid = st.setrole WHERE st.setdatabase = 0) q),
  'roles', (SELECT coalesce(json_object_agg(r.rolname, concat_ws(' ',
       CASE WHEN r.rolsuper THEN 'superuser' END, CASE WHEN r.rolcanlogin THEN 'login' END,
       CASE WHEN r.rolcreatedb THEN 'createdb' END, CASE WHEN r.rolcreaterole THEN 'createrole' END,
       CASE WHEN r.rolreplication THEN 'replication' END, CASE WHEN r.rolbypassrls THEN 'bypassrls' END,
       CASE WHEN NOT r.rolinherit THEN 'noinherit' END,
       CASE WHEN r.rolconnlimit <> -1 THEN 'connlimit=' || r.rolconnlimit END,
       {password})), '{{}}') FROM pg_roles r WHERE r.rolname !~ '^pg_'),
  'memberships', (SELECT coalesce(json_agg(g.rolname || ' > ' || m.rolname ORDER BY g.rolname, m.rolname), '[]') FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE g.rolname !~ '^pg_'),
  'relations', (SELECT coalesce(json_object_agg(k, n), '{{}}') FROM (SELECT c.relkind::text AS k, count(*) AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE {user_schema} AND {rel_ext} GROUP BY 1) q),
  'owners', (SELECT coalesce(json_object_agg(o, n), '{{}}') FROM (SELECT pg_get_userbyid(c.relowner) AS o, count(*) AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE {user_schema} AND {rel_ext} GROUP BY 1) q),
  'grants', (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace, aclexplode(c.relacl) WHERE {user_schema} AND {rel_ext})
          + (SELECT count(*) FROM pg_namespace s, aclexplode(s.nspacl) WHERE {user_schema} AND {ns_ext}),
  'default_privileges', (SELECT count(*) FROM pg_default_acl),
  'functions', (SELECT count(*) FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace WHERE {user_schema} AND {proc_ext}),
  'triggers', (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal),
  'policies', (SELECT count(*) FROM pg_policy),
  'large_objects', (SELECT count(*) FROM pg_largeobject_metadata),
  'comments', (SELECT count(*) FROM pg_description dc WHERE dc.objoid >= 16384 AND dc.classoid <> 'pg_extension'::regclass
                 AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = dc.classoid AND e.objid = dc.objoid AND e.deptype = 'e')),
  'extensions', (SELECT coalesce(json_object_agg(extname, extversion), '{{}}') FROM pg_extension WHERE extname <> 'plpgsql'),
  'sequences', (SELECT coalesce(json_object_agg(schemaname || '.' || sequencename, last_value), '{{}}') FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema')),
  'publications', (SELECT count(*) FROM pg_publication),
  'subscriptions', (SELECT count(*) FROM pg_subscription WHERE subdbid = d.oid),
  'security_labels', (SELECT count(*) FROM pg_seclabel) + (SELECT count(*) FROM pg_shseclabel),
  'tablespaces', (SELECT coalesce(json_agg(spcname ORDER BY spcname), '[]') FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))
) FROM pg_database d WHERE d.datname = current_database()"#,
        rel_ext = not_extension("pg_class", "c.oid"),
        ns_ext = not_extension("pg_namespace", "s.oid"),
        proc_ext = not_extension("pg_proc", "p.oid"),
    )
}

/// What pgfork does differently from the source on purpose, so that [`compare`] does
/// not report it as lost.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Source superusers: they keep no password here, and what they owned is owned by
    /// [`Choices::owner_role`].
    pub superusers: Vec<String>,
    pub owner_role: String,
    /// Roles pgfork made (the owner, its bootstrap superuser): not the source's.
    pub own_roles: Vec<String>,
}

/// What an import copied and where the copy differs from its source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub copied: Vec<String>,
    pub differs: Vec<String>,
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn relkind_name(k: &str) -> (&'static str, &'static str) {
    match k {
        "r" => ("table", "tables"),
        "p" => ("partitioned table", "partitioned tables"),
        "i" => ("index", "indexes"),
        "I" => ("partitioned index", "partitioned indexes"),
        "S" => ("sequence", "sequences"),
        "v" => ("view", "views"),
        "m" => ("materialized view", "materialized views"),
        "c" => ("composite type", "composite types"),
        "f" => ("foreign table", "foreign tables"),
        _ => ("relation", "relations"),
    }
}

/// Compares the inventory of an import (`here`) with its source's, under pgfork's
/// documented [`Choices`]; `copied` summarises what is equal, `differs` lists the rest.
pub fn compare(source: &Inventory, here: &Inventory, choices: &Choices) -> Report {
    let mut report = Report::default();
    let map_owner = |o: &str| -> String {
        if choices.superusers.iter().any(|s| s == o) {
            choices.owner_role.clone()
        } else {
            o.to_string()
        }
    };
    let strip_password = |attrs: &str| -> String {
        attrs
            .split(' ')
            .filter(|a| *a != "password")
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ours = |r: &str| choices.own_roles.iter().any(|o| o == r) || r == choices.owner_role;

    // Roles.
    let mut role_diffs = 0;
    for (name, attrs) in &source.roles {
        if ours(name) {
            continue;
        }
        let superuser = attrs.split(' ').any(|a| a == "superuser");
        match here.roles.get(name) {
            None => {
                role_diffs += 1;
                report.differs.push(format!("role {name} is missing"));
            }
            Some(h) => {
                let (want, got) = if superuser {
                    (strip_password(attrs), strip_password(h))
                } else {
                    (attrs.clone(), h.clone())
                };
                if want != got {
                    role_diffs += 1;
                    report.differs.push(format!(
                        "role {name}: {} here, {} in the source",
                        or_none(&got),
                        or_none(&want)
                    ));
                }
            }
        }
    }
    if role_diffs == 0 && !source.roles.is_empty() {
        let with_pw = source
            .roles
            .values()
            .filter(|a| a.contains("password"))
            .count();
        let mut line = plural(source.roles.len() as i64, "role", "roles");
        if with_pw > 0 {
            line.push_str(&format!(" ({with_pw} with their password verifiers)"));
        }
        report.copied.push(line);
    }
    if !choices.superusers.is_empty() {
        report.copied.push(format!(
            "superuser{} {}: kept as superuser{} without a password (`pgfork psql --superuser`); what {} owned is owned by {} here",
            if choices.superusers.len() == 1 { "" } else { "s" },
            choices.superusers.join(", "),
            if choices.superusers.len() == 1 { "" } else { "s" },
            if choices.superusers.len() == 1 { "it" } else { "they" },
            choices.owner_role
        ));
    }
    let memberships = |inv: &Inventory| -> Vec<String> {
        let mut v: Vec<String> = inv
            .memberships
            .iter()
            .filter(|m| !m.split(" > ").any(&ours))
            .cloned()
            .collect();
        v.sort();
        v
    };
    let (sm, hm) = (memberships(source), memberships(here));
    equal_or_differs(&mut report, &sm, &hm, "role membership", "role memberships");
    equal_or_differs(
        &mut report,
        &source.role_settings,
        &here.role_settings,
        "role setting",
        "role settings",
    );
    equal_or_differs(
        &mut report,
        &source.database_settings,
        &here.database_settings,
        "database setting",
        "database settings",
    );

    // The database itself.
    if map_owner(&source.owner) != here.owner {
        report.differs.push(format!(
            "database owner: {} here, {} in the source",
            here.owner, source.owner
        ));
    }
    let acl = |inv: &Inventory| -> Vec<String> {
        let mut v: Vec<String> = inv
            .database_acl
            .iter()
            .map(|a| {
                let (grantee, privs) = a.split_once('=').unwrap_or(("", a));
                format!("{}={privs}", map_owner(grantee))
            })
            .collect();
        v.sort();
        v
    };
    if acl(source) != acl(here) {
        report.differs.push(format!(
            "database privileges: {:?} here, {:?} in the source",
            here.database_acl, source.database_acl
        ));
    }
    if source.database_comment != here.database_comment {
        report
            .differs
            .push("the database's comment differs".to_string());
    }
    if source.encoding != here.encoding || source.collate != here.collate {
        report.differs.push(format!(
            "encoding and collation: {} {} here, {} {} in the source",
            here.encoding, here.collate, source.encoding, source.collate
        ));
    }
    if source.checksums != here.checksums {
        report.differs.push(format!(
            "data checksums: {} here, {} in the source",
            here.checksums, source.checksums
        ));
    } else if source.checksums == "on" {
        report.copied.push("data checksums on".to_string());
    }

    // Objects.
    if source.relations == here.relations {
        let parts: Vec<String> = source
            .relations
            .iter()
            .map(|(k, n)| {
                let (one, many) = relkind_name(k);
                plural(*n, one, many)
            })
            .collect();
        if !parts.is_empty() {
            report.copied.push(parts.join(", "));
        }
    } else {
        for k in source.relations.keys().chain(here.relations.keys()) {
            let (s, h) = (
                source.relations.get(k).copied().unwrap_or(0),
                here.relations.get(k).copied().unwrap_or(0),
            );
            let line = format!("{}: {h} here, {s} in the source", relkind_name(k).1);
            if s != h && !report.differs.contains(&line) {
                report.differs.push(line);
            }
        }
    }
    let mut owners: BTreeMap<String, i64> = BTreeMap::new();
    for (o, n) in &source.owners {
        *owners.entry(map_owner(o)).or_default() += n;
    }
    if owners != here.owners {
        report.differs.push(format!(
            "owners: {:?} here, {:?} in the source",
            here.owners, source.owners
        ));
    } else if !owners.is_empty() {
        report.copied.push(format!(
            "owners ({})",
            owners.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    for (what, one, many, s, h) in [
        ("grants", "grant", "grants", source.grants, here.grants),
        (
            "default privileges",
            "default privilege",
            "default privileges",
            source.default_privileges,
            here.default_privileges,
        ),
        (
            "functions",
            "function",
            "functions",
            source.functions,
            here.functions,
        ),
        (
            "triggers",
            "trigger",
            "triggers",
            source.triggers,
            here.triggers,
        ),
        (
            "policies",
            "row-level security policy",
            "row-level security policies",
            source.policies,
            here.policies,
        ),
        (
            "large objects",
            "large object",
            "large objects",
            source.large_objects,
            here.large_objects,
        ),
        (
            "comments",
            "comment",
            "comments",
            source.comments,
            here.comments,
        ),
        (
            "publications",
            "publication",
            "publications",
            source.publications,
            here.publications,
        ),
    ] {
        if s == h {
            if s > 0 {
                report.copied.push(plural(s, one, many));
            }
        } else {
            report
                .differs
                .push(format!("{what}: {h} here, {s} in the source"));
        }
    }
    // A live source goes on using its sequences after the dump's snapshot: a value
    // behind the source's is the snapshot's, not a loss.
    let behind_or_equal = |s: Option<i64>, h: Option<i64>| match (s, h) {
        (Some(s), Some(h)) => h <= s,
        (s, h) => s.is_none() || h.is_some(),
    };
    let sequences_ok = source.sequences.len() == here.sequences.len()
        && source.sequences.iter().all(|(name, v)| {
            here.sequences
                .get(name)
                .is_some_and(|h| behind_or_equal(*v, *h))
        });
    if sequences_ok {
        if !source.sequences.is_empty() {
            report.copied.push(format!(
                "{} at their values as of the dump",
                plural(source.sequences.len() as i64, "sequence", "sequences")
            ));
        }
    } else {
        for (name, v) in &source.sequences {
            let h = here.sequences.get(name).copied().flatten();
            if !here.sequences.contains_key(name) || !behind_or_equal(*v, h) {
                report.differs.push(format!(
                    "sequence {name}: {} here, {} in the source",
                    h.map(|v| v.to_string()).unwrap_or_else(|| "unset".into()),
                    v.map(|v| v.to_string()).unwrap_or_else(|| "unset".into())
                ));
            }
        }
    }
    let mut same_ext = Vec::new();
    for (name, v) in &source.extensions {
        match here.extensions.get(name) {
            Some(h) if h == v => same_ext.push(format!("{name} {v}")),
            Some(h) => report.differs.push(format!(
                "extension {name}: version {h} here, {v} in the source"
            )),
            None => report
                .differs
                .push(format!("extension {name} {v} is missing")),
        }
    }
    if !same_ext.is_empty() {
        report
            .copied
            .push(format!("extensions {}", same_ext.join(", ")));
    }
    if source.subscriptions > 0 {
        report.differs.push(format!(
            "{}: not copied, so that no branch connects to a publisher",
            plural(source.subscriptions, "subscription", "subscriptions")
        ));
    }
    if source.security_labels > 0 && here.security_labels != source.security_labels {
        report.differs.push(format!(
            "{}: not copied (no label provider is loaded here)",
            plural(source.security_labels, "security label", "security labels")
        ));
    }
    if !source.tablespaces.is_empty() {
        report.differs.push(format!(
            "tablespaces {}: not copied; their objects are in the default tablespace here",
            source.tablespaces.join(", ")
        ));
    }
    report
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "no attributes"
    } else {
        s
    }
}

fn equal_or_differs(
    report: &mut Report,
    source: &[String],
    here: &[String],
    one: &str,
    many: &str,
) {
    if source == here {
        if !source.is_empty() {
            report.copied.push(plural(source.len() as i64, one, many));
        }
        return;
    }
    for s in source.iter().filter(|s| !here.contains(s)) {
        report.differs.push(format!("{one} {s} is missing"));
    }
    for h in here.iter().filter(|h| !source.contains(h)) {
        report
            .differs
            .push(format!("{one} {h} is not in the source"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Inventory {
        Inventory {
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            checksums: "on".into(),
            owner: "app_owner".into(),
            database_acl: vec!["app_user=c".into(), "app_owner=CTc".into()],
            roles: [
                ("app_owner", "login password"),
                ("app_user", "login connlimit=20 password"),
                (
                    "postgres",
                    "superuser login createdb createrole replication bypassrls password",
                ),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            memberships: vec!["readonly > app_user".into()],
            relations: [("r".to_string(), 3), ("p".to_string(), 1)]
                .into_iter()
                .collect(),
            owners: [("app_owner".to_string(), 3), ("postgres".to_string(), 1)]
                .into_iter()
                .collect(),
            extensions: [("hstore".to_string(), "1.7".to_string())]
                .into_iter()
                .collect(),
            policies: 1,
            large_objects: 1,
            ..Inventory::default()
        }
    }

    fn choices() -> Choices {
        Choices {
            superusers: vec!["postgres".into()],
            owner_role: "pgfork_owner".into(),
            own_roles: vec!["pgfork_admin".into()],
        }
    }

    /// The import as pgfork makes it: the superuser lost its password, what it owned
    /// is the owner role's, and pgfork's own roles are there too.
    fn faithful() -> Inventory {
        let mut h = source();
        h.roles.insert(
            "postgres".into(),
            "superuser login createdb createrole replication bypassrls".into(),
        );
        h.roles.insert(
            "pgfork_owner".into(),
            "login createdb replication password".into(),
        );
        h.roles
            .insert("pgfork_admin".into(), "superuser login".into());
        h.memberships.push("app_owner > pgfork_owner".into());
        h.owners = [
            ("app_owner".to_string(), 3),
            ("pgfork_owner".to_string(), 1),
        ]
        .into_iter()
        .collect();
        h
    }

    #[test]
    fn pgforks_own_choices_are_not_differences() {
        let r = compare(&source(), &faithful(), &choices());
        assert_eq!(r.differs, Vec::<String>::new());
        assert!(
            r.copied
                .iter()
                .any(|c| c.contains("3 roles (3 with their password")),
            "{r:?}"
        );
        assert!(
            r.copied.iter().any(|c| c.contains("extensions hstore 1.7")),
            "{r:?}"
        );
        assert!(
            r.copied.iter().any(|c| c.contains("superuser postgres")),
            "{r:?}"
        );
    }

    #[test]
    fn every_loss_is_named() {
        let mut h = faithful();
        h.extensions.insert("hstore".into(), "1.8".into());
        h.roles
            .insert("app_user".into(), "login connlimit=20".into());
        h.memberships.clear();
        h.policies = 0;
        h.database_settings.push(":TimeZone=UTC".into());
        h.checksums = "off".into();
        h.relations.insert("r".into(), 2);
        let r = compare(&source(), &h, &choices());
        for want in [
            "extension hstore: version 1.8 here, 1.7 in the source",
            "role app_user: login connlimit=20 here, login connlimit=20 password in the source",
            "role membership readonly > app_user is missing",
            "policies: 0 here, 1 in the source",
            "database setting :TimeZone=UTC is not in the source",
            "data checksums: off here, on in the source",
            "tables: 2 here, 3 in the source",
        ] {
            assert!(
                r.differs.iter().any(|d| d == want),
                "{want:?} not in {:#?}",
                r.differs
            );
        }
    }
}
