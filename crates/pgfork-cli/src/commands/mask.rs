//! `pgfork mask check`: the columns that look personal and no masking rule covers, so
//! that rules keep up with the schema (strict mode refuses a branch for the same list).

use super::*;

pub(super) async fn mask(cmd: MaskCommand, explicit: Option<&str>) -> Result<i32> {
    let MaskCommand::Check {
        rules,
        branch,
        strict,
        json,
    } = cmd;
    // Rules: the file given, else the repository's, else none (list everything).
    let from_config = project::find_config()
        .map(|path| project::read_config(&path))
        .transpose()?
        .and_then(|cfg| cfg.masking.rules);
    let rules = match (rules, from_config) {
        (Some(file), _) => Some(project::read_masking_rules(&file)?),
        (None, Some(_)) => Some(project::read_masking_rules("")?),
        (None, None) => None,
    };
    let c = ensure_daemon().await?;
    let p = project::resolve(&c, explicit).await?;
    let target = match branch {
        Some(b) => b,
        None => root_branch(&c, &p).await?.id,
    };
    let req = api::MaskingCheckRequest {
        masking_rules: rules
            .as_ref()
            .map(|r| {
                r.masking_rules
                    .iter()
                    .map(|x| serde_json::to_value(x).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
        strict: strict || rules.as_ref().is_some_and(|r| r.strict),
        keep: rules.map(|r| r.keep).unwrap_or_default(),
    };
    let found = c.masking_check(&p, &target, &req).await?.findings;
    if json {
        print_json(&found)?;
    } else if found.is_empty() {
        println!("every column that looks personal is covered by a masking rule");
    } else {
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|f| vec![f.target.clone(), f.reason.clone()])
            .collect();
        print!("{}", table(&["COLUMN", "WHY IT LOOKS PERSONAL"], &rows));
        crate::note!(
            "{} column(s) are not covered: add masking rules for them, or list them under `keep` in the rules file once reviewed",
            found.len()
        );
    }
    Ok(if found.is_empty() { 0 } else { 1 })
}
