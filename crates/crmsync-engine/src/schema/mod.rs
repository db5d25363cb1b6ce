//! CRM configuration as code: `crmsync schema export/diff/apply`. A [`SchemaDoc`] is read from
//! a live CRM (through [`SchemaAdmin`]) or from a TOML file (`[crm] schema`, `--from`,
//! `--against`), compared by [`diff::plan`], and applied change by change.
//!
//! Invariants: export, diff and the needs check only read the CRM; apply sends only the
//! changes of a plan the CRM's connector accepts ([`screen`]) and stops at the first refusal,
//! so a re-run continues where it stopped (every change is computed from the live state).

pub mod diff;

use crate::error::EngineError;
use crmsync_core::config::{Config, locate, redact};
use crmsync_crm::schema_doc::{SchemaDoc, SchemaItem};
use crmsync_crm::{Crm, ObjectKind, SchemaAdmin};
use diff::{Manual, SchemaPlan};
use std::path::{Path, PathBuf};

/// The longest schema file crmsync reads (the config's limit: far above a real one).
const MAX_DOC_BYTES: u64 = redact::MAX_CONFIG_BYTES;

/// The CRM objects `config`'s syncs write, each once, in config order.
pub fn objects_of(config: &Config) -> Result<Vec<ObjectKind>, EngineError> {
    let mut out = Vec::new();
    for sync in &config.raw.syncs {
        let object = ObjectKind::parse(&sync.object).ok_or_else(|| {
            EngineError::Config(format!(
                "sync `{}`: unknown CRM object `{}`",
                sync.name, sync.object
            ))
        })?;
        if !out.contains(&object) {
            out.push(object);
        }
    }
    Ok(out)
}

/// Reads a schema document; an error names the file, the line and what is wrong.
pub fn load_doc(path: &Path) -> Result<SchemaDoc, EngineError> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| EngineError::Config(format!("cannot read schema file {shown}: {e}")))?
        .len();
    if size > MAX_DOC_BYTES {
        return Err(EngineError::Config(format!(
            "schema file {shown} is {size} bytes; crmsync reads at most {MAX_DOC_BYTES}"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::Config(format!("cannot read schema file {shown}: {e}")))?;
    let doc: SchemaDoc = toml::from_str(&text)
        .map_err(|e| EngineError::Config(format!("{shown}: {}", redact::parse_error(&text, &e))))?;
    if let Err(why) = doc.kinds() {
        let name = doc
            .objects
            .keys()
            .find(|k| ObjectKind::parse(k).is_none())
            .cloned()
            .unwrap_or_default();
        let line = locate::line_of(&text, &name).unwrap_or(1);
        return Err(EngineError::Config(format!("{shown}:{line}: {why}")));
    }
    Ok(doc)
}

/// The schema file `[crm] schema` names, resolved against the config file's folder.
pub fn declared_path(config: &Config) -> Option<PathBuf> {
    let file = config.raw.crm.schema.as_deref()?;
    let p = Path::new(file);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.path.parent().unwrap_or(Path::new(".")).join(p)
    })
}

/// Writes `doc` as TOML, with a header saying where it came from.
pub fn to_toml(doc: &SchemaDoc, source: &str) -> Result<String, EngineError> {
    let body = toml::to_string(doc)
        .map_err(|e| EngineError::Config(format!("cannot write the schema as TOML: {e}")))?;
    Ok(format!(
        "# CRM configuration exported by `crmsync schema export` from {source}.\n\
         # Custom properties, property groups and pipelines of the synced objects; the order of\n\
         # options and stages is their display order. Apply it with `crmsync schema apply --from`.\n\n{body}"
    ))
}

/// Reads the live configuration of `objects`.
pub async fn export<C: SchemaAdmin>(
    crm: &C,
    objects: &[ObjectKind],
) -> Result<SchemaDoc, EngineError> {
    Ok(crm.export_schema(objects).await?)
}

/// The plan that makes the live CRM match `desired` (only reads), with the changes the
/// connector cannot make moved to [`SchemaPlan::manual`] and the mapped properties neither side
/// has listed there too.
pub async fn plan_against<C: SchemaAdmin + Crm>(
    config: &Config,
    crm: &C,
    desired: &SchemaDoc,
    prune: bool,
) -> Result<SchemaPlan, EngineError> {
    let objects: Vec<ObjectKind> = desired
        .kinds()
        .map_err(EngineError::Config)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let live = crm.export_schema(&objects).await?;
    let mut plan = diff::plan(&live, desired, prune).map_err(EngineError::Config)?;
    screen(crm, &mut plan);
    plan.manual.extend(unmet_needs(config, crm, desired).await?);
    Ok(plan)
}

/// Moves the changes `crm` says it cannot make into [`SchemaPlan::manual`], with its reason.
pub fn screen<C: SchemaAdmin>(crm: &C, plan: &mut SchemaPlan) {
    let (ok, refused): (Vec<_>, Vec<_>) = plan
        .changes
        .drain(..)
        .map(|c| {
            let verdict = crm.can_apply(&c.change);
            (c, verdict)
        })
        .partition(|(_, v)| v.is_ok());
    plan.changes = ok.into_iter().map(|(c, _)| c).collect();
    for (c, verdict) in refused {
        plan.manual.push(Manual {
            object: c.change.object(),
            item: c.change.item(),
            why: verdict.err().unwrap_or_default(),
        });
    }
}

/// The properties `config`'s mappings write that neither the CRM nor `desired` has: a sync
/// would fail on each, and only a person can say what type they should be.
pub async fn unmet_needs<C: Crm>(
    config: &Config,
    crm: &C,
    desired: &SchemaDoc,
) -> Result<Vec<Manual>, EngineError> {
    let mut out = Vec::new();
    for object in objects_of(config)? {
        let existing = crm.property_names(object).await?;
        let declared = desired.object(object);
        for sync in config
            .raw
            .syncs
            .iter()
            .filter(|s| s.object == object.as_str())
        {
            // The id property is created by the first sync when missing.
            for field in sync.fields.values() {
                let name = &field.crm;
                let known = existing.iter().any(|e| e == name)
                    || declared.properties.contains_key(name)
                    || *name == sync.id_property;
                let listed = out.iter().any(|m: &Manual| {
                    m.object == object && m.item == SchemaItem::Property { name: name.clone() }
                });
                if !known && !listed {
                    out.push(Manual {
                        object,
                        item: SchemaItem::Property { name: name.clone() },
                        why: format!(
                            "sync `{}` maps to it, but neither the CRM nor the schema has it: declare it (type, label) in the schema file",
                            sync.name
                        ),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// What [`apply`] did before it stopped or finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes made, in order.
    pub done: usize,
}

/// Makes the plan's changes in order; the first refusal stops it with the CRM's error and the
/// change it concerned (what was done before stays done: a re-run plans from the live state).
pub async fn apply<C: SchemaAdmin>(crm: &C, plan: &SchemaPlan) -> Result<Applied, EngineError> {
    let mut applied = Applied::default();
    for c in &plan.changes {
        if let Err(e) = crm.apply_change(&c.change).await {
            return Err(EngineError::Refused(format!(
                "{} {} {}: {e} ({} change(s) made before it; run `crmsync schema apply` again once fixed)",
                c.change.sign(),
                c.change.object(),
                c.change.item(),
                applied.done
            )));
        }
        applied.done += 1;
    }
    Ok(applied)
}
