//! `crmsync init --source URL [--out FILE] [--force]`: reads the app database's schema
//! (tables, columns, keys, foreign keys, enum types, the distinct values of status-like
//! columns) and writes a commented config proposal, to stdout or into FILE. It only reads the
//! database; an existing FILE is never overwritten without `--force`; a password in the URL
//! never reaches the file or the output. The text is loaded with crmsync's own loader before
//! it is written, so what `init` writes is a config crmsync accepts.

use crate::exit::UsageError;
use crate::init::propose::{Options, SOURCE_URL_ENV, SourceLine, propose};
use crate::init::render::render;
use crate::init::schema::{MAX_VALUES, TableSnapshot, columns_to_sample};
use anyhow::Context;
use crmsync_core::config::validate::{has_password, redact};
use crmsync_core::config::{Secrets, load_str};
use crmsync_store::{Introspect, open_source};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The app database to read: sqlite://FILE, postgres://USER@HOST/DB or
    /// mysql://USER@HOST/DB. Its tables are only read. A password in it is not written into
    /// the config, which then names APP_DATABASE_URL instead.
    #[arg(long, env = "APP_DATABASE_URL", hide_env_values = true)]
    pub source: String,
    /// Write the proposal into FILE instead of printing it.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite FILE when it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

pub async fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        return Err(UsageError(format!(
            "{} exists already; choose another --out, or pass --force to overwrite it",
            out.display()
        ))
        .into());
    }
    let shown = redact(&args.source);
    // Its error names the database (redacted) and the server's reason.
    let source = open_source(&args.source).await?;
    let tables = read_schema(&source)
        .await
        .with_context(|| format!("cannot read the schema of {shown}"))?;
    let options = Options {
        source: if has_password(&args.source) {
            SourceLine::Env(SOURCE_URL_ENV)
        } else {
            SourceLine::Url(written_url(&args.source, args.out.as_deref()))
        },
        shown_url: shown,
        line_items: true,
    };
    let proposal = propose(&tables, &options).map_err(|e| UsageError(e.to_string()))?;
    let text = render(&proposal);

    // The proposal must load as it is; if it does not, that is a bug here, said plainly
    // rather than handed to the user as their config's problem.
    let config_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("crmsync.toml"));
    let url = args.source.clone();
    load_str(&text, &config_path, Secrets::NotNeeded, &|var| {
        (var == SOURCE_URL_ENV).then(|| url.clone())
    })
    .context("the proposed config does not load; this is a bug in `crmsync init`")?;

    let syncs: Vec<&str> = proposal
        .syncs
        .iter()
        .filter(|s| s.enabled)
        .map(|s| s.name.as_str())
        .collect();
    let maps = proposal
        .syncs
        .iter()
        .filter(|s| s.enabled && s.stage.as_ref().is_some_and(|m| !m.values.is_empty()))
        .count();
    match &args.out {
        Some(out) => {
            std::fs::write(out, &text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            crate::progress::announce(&format!(
                "wrote {}: {} sync{} ({}){}; read its notes, then: crmsync check --config {}",
                out.display(),
                syncs.len(),
                if syncs.len() == 1 { "" } else { "s" },
                syncs.join(", "),
                match maps {
                    0 => String::new(),
                    1 => ", 1 status map to fill in".to_string(),
                    n => format!(", {n} status maps to fill in"),
                },
                out.display()
            ));
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write the proposal to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Everything the proposal is built from: per table its description, foreign keys, enum
/// types and the distinct values of its status-like columns.
async fn read_schema<S: Introspect>(source: &S) -> anyhow::Result<Vec<TableSnapshot>> {
    let mut out = Vec::new();
    for name in source.tables().await? {
        let info = source.describe(&name).await?;
        let declared = source.declared_values(&name).await?;
        let mut snapshot = TableSnapshot::new(info);
        snapshot.foreign_keys = source.foreign_keys(&name).await?;
        for column in columns_to_sample(&snapshot.info, &declared) {
            let values = source.distinct_values(&name, &column, MAX_VALUES).await?;
            snapshot.values.insert(column, values);
        }
        snapshot.declared = declared;
        out.push(snapshot);
    }
    Ok(out)
}

/// The source URL as the config file should hold it. A relative SQLite path is relative to
/// the config file there, but was given relative to the current folder: it is kept when the
/// file is written here (or printed), and made absolute when `--out` names another folder.
fn written_url(url: &str, out: Option<&Path>) -> String {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return url.to_string();
    };
    let (file, query) = match rest.split_once('?') {
        Some((f, q)) => (f, Some(q)),
        None => (rest, None),
    };
    let beside_here = out
        .and_then(Path::parent)
        .is_none_or(|p| p.as_os_str().is_empty() || p == Path::new("."));
    if file.is_empty() || file == ":memory:" || Path::new(file).is_absolute() || beside_here {
        return url.to_string();
    }
    let absolute = std::env::current_dir()
        .map(|d| d.join(file))
        .unwrap_or_else(|_| PathBuf::from(file));
    let absolute = absolute.canonicalize().unwrap_or(absolute);
    match query {
        Some(q) => format!("sqlite://{}?{q}", absolute.display()),
        None => format!("sqlite://{}", absolute.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::written_url;
    use std::path::Path;

    #[test]
    fn a_relative_sqlite_path_follows_the_config_file() {
        assert_eq!(written_url("sqlite://shop.db", None), "sqlite://shop.db");
        assert_eq!(
            written_url("sqlite://shop.db", Some(Path::new("crmsync.toml"))),
            "sqlite://shop.db"
        );
        let moved = written_url(
            "sqlite://shop.db?mode=ro",
            Some(Path::new("conf/crmsync.toml")),
        );
        assert!(moved.starts_with("sqlite:///"), "{moved}");
        assert!(moved.ends_with("shop.db?mode=ro"), "{moved}");
        assert_eq!(
            written_url("sqlite:///data/shop.db", Some(Path::new("conf/x.toml"))),
            "sqlite:///data/shop.db"
        );
        assert_eq!(
            written_url("postgres://app@db/shop", Some(Path::new("conf/x.toml"))),
            "postgres://app@db/shop"
        );
    }
}
