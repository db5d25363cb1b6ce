//! [`Creates`] on PostgreSQL: the `crm_creates` table (migration 0002). Single-row upserts for
//! claims and refusals (two workers doing the same never fail on the key); linking takes the
//! links' locks first (the crate's lock order: links, then other rows) and writes links, bases
//! and the removal of the entries in one transaction.

use super::decode::get;
use super::state::put_bases;
use super::{LinkLock, PgState, lock_links};
use crate::Creates;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use sqlx::postgres::PgRow;
use std::collections::HashMap;

const COLUMNS: &str = "sync, crm_id, state, rule, message, modified_ms, fingerprint, first_seen, last_seen, attempts, retry_requested";

fn create_of(r: &PgRow) -> Result<CrmCreate, StoreError> {
    let t = "crm_creates";
    Ok(CrmCreate {
        sync: get(r, 0, t)?,
        crm_id: get(r, 1, t)?,
        state: CreateState::parse(&get::<String>(r, 2, t)?),
        rule: get(r, 3, t)?,
        message: get(r, 4, t)?,
        modified_ms: get(r, 5, t)?,
        fingerprint: get(r, 6, t)?,
        first_seen_ms: get(r, 7, t)?,
        last_seen_ms: get(r, 8, t)?,
        attempts: get(r, 9, t)?,
        retry_requested: get(r, 10, t)?,
    })
}

impl Creates for PgState {
    async fn claim_creates(
        &self,
        sync: &str,
        claims: &[(String, i64)],
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut claims: Vec<&(String, i64)> = claims.iter().collect();
        claims.sort();
        let mut tx = self.tx().await?;
        for (crm_id, modified_ms) in claims {
            sqlx::query(
                "INSERT INTO crm_creates (sync, crm_id, state, modified_ms, fingerprint, first_seen, last_seen)
                 VALUES ($1, $2, 'claimed', $3, $4, $5, $5)
                 ON CONFLICT (sync, crm_id) DO UPDATE SET state = 'claimed',
                   modified_ms = excluded.modified_ms, fingerprint = excluded.fingerprint,
                   last_seen = excluded.last_seen",
            )
            .bind(sync)
            .bind(crm_id)
            .bind(modified_ms)
            .bind(fingerprint)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn refuse_creates(&self, refusals: &[CrmCreate]) -> Result<(), StoreError> {
        if refusals.is_empty() {
            return Ok(());
        }
        let mut refusals: Vec<&CrmCreate> = refusals.iter().collect();
        refusals.sort_by(|a, b| (&a.sync, &a.crm_id).cmp(&(&b.sync, &b.crm_id)));
        let mut tx = self.tx().await?;
        for r in refusals {
            sqlx::query(
                "INSERT INTO crm_creates (sync, crm_id, state, rule, message, modified_ms, fingerprint, first_seen, last_seen, attempts)
                 VALUES ($1, $2, 'refused', $3, $4, $5, $6, $7, $8, 1)
                 ON CONFLICT (sync, crm_id) DO UPDATE SET state = 'refused', rule = excluded.rule,
                   message = excluded.message, modified_ms = excluded.modified_ms,
                   fingerprint = excluded.fingerprint, last_seen = excluded.last_seen,
                   attempts = crm_creates.attempts + 1, retry_requested = false",
            )
            .bind(&r.sync)
            .bind(&r.crm_id)
            .bind(&r.rule)
            .bind(&r.message)
            .bind(r.modified_ms)
            .bind(&r.fingerprint)
            .bind(r.first_seen_ms)
            .bind(r.last_seen_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_creates(
        &self,
        sync: &str,
        crm_object: &str,
        created: &[CreatedLink],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if created.is_empty() {
            return Ok(());
        }
        let mut locals: Vec<&str> = created.iter().map(|c| c.local_id.as_str()).collect();
        locals.sort_unstable();
        locals.dedup();
        let mut tx = self.tx().await?;
        lock_links(&mut tx, sync, &locals, LinkLock::Update).await?;
        for c in created {
            sqlx::query(
                "INSERT INTO links (sync, local_id, crm_object, crm_id, pushed_hash, pushed_at, pulled_hash, version, written_back_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)
                 ON CONFLICT (sync, local_id) DO UPDATE SET crm_object = excluded.crm_object,
                   crm_id = excluded.crm_id, pushed_hash = excluded.pushed_hash,
                   pushed_at = excluded.pushed_at, pulled_hash = excluded.pulled_hash,
                   version = links.version + 1, written_back_id = excluded.written_back_id",
            )
            .bind(sync)
            .bind(&c.local_id)
            .bind(crm_object)
            .bind(&c.crm_id)
            .bind(&c.pushed_hash)
            .bind(now_ms)
            .bind(&c.pulled_hash)
            .bind(c.written_back.then_some(c.crm_id.as_str()))
            .execute(&mut *tx)
            .await?;
        }
        let bases: Vec<(&str, &str, &str)> = created
            .iter()
            .flat_map(|c| {
                c.bases
                    .iter()
                    .map(|(f, v)| (c.local_id.as_str(), f.as_str(), v.as_str()))
            })
            .collect();
        put_bases(&mut tx, sync, &bases).await?;
        let ids: Vec<&str> = created.iter().map(|c| c.crm_id.as_str()).collect();
        sqlx::query("DELETE FROM crm_creates WHERE sync = $1 AND crm_id = ANY($2)")
            .bind(sync)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_creates(&self, sync: &str, crm_ids: &[String]) -> Result<(), StoreError> {
        if crm_ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM crm_creates WHERE sync = $1 AND crm_id = ANY($2)")
            .bind(sync)
            .bind(crm_ids)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn creates(&self, sync: Option<&str>) -> Result<Vec<CrmCreate>, StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM crm_creates WHERE ($1::text IS NULL OR sync = $1) ORDER BY sync, crm_id"
        )))
        .bind(sync)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(create_of).collect()
    }

    async fn creates_among(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> Result<HashMap<String, CrmCreate>, StoreError> {
        if crm_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM crm_creates WHERE sync = $1 AND crm_id = ANY($2)"
        )))
        .bind(sync)
        .bind(crm_ids)
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::new();
        for r in &rows {
            let c = create_of(r)?;
            out.insert(c.crm_id.clone(), c);
        }
        Ok(out)
    }

    async fn request_create_retry(
        &self,
        sync: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "UPDATE crm_creates SET retry_requested = true
             WHERE state = 'refused' AND ($1::text IS NULL OR sync = $1) RETURNING sync, crm_id",
        )
        .bind(sync)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| Ok((get(r, 0, "crm_creates")?, get(r, 1, "crm_creates")?)))
            .collect::<Result<Vec<(String, String)>, StoreError>>()?;
        out.sort();
        Ok(out)
    }
}
