//! [`Creates`] on SQLite: the `crm_creates` table (migration 0007). Every write is one
//! `IMMEDIATE` transaction; linking writes the links, the bases and removes the entries in one.

use super::decode::get;
use super::state::set_base;
use super::{Lead, SqliteState, per_key_chunk};
use crate::Creates;
use crate::error::StoreError;
use crate::ident::{marks, sql};
use crate::model::*;
use sqlx::sqlite::SqliteRow;
use std::collections::HashMap;

const COLUMNS: &str = "sync, crm_id, state, rule, message, modified_ms, fingerprint, first_seen, last_seen, attempts, retry_requested";

fn create_of(r: &SqliteRow) -> Result<CrmCreate, StoreError> {
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
        retry_requested: get::<i64>(r, 10, t)? != 0,
    })
}

impl Creates for SqliteState {
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
        let mut tx = self.write_tx().await?;
        for (crm_id, modified_ms) in claims {
            sqlx::query(
                "INSERT INTO crm_creates (sync, crm_id, state, modified_ms, fingerprint, first_seen, last_seen)
                 VALUES (?, ?, 'claimed', ?, ?, ?, ?)
                 ON CONFLICT (sync, crm_id) DO UPDATE SET state = 'claimed',
                   modified_ms = excluded.modified_ms, fingerprint = excluded.fingerprint,
                   last_seen = excluded.last_seen",
            )
            .bind(sync)
            .bind(crm_id)
            .bind(modified_ms)
            .bind(fingerprint)
            .bind(now_ms)
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
        let mut tx = self.write_tx().await?;
        for r in refusals {
            sqlx::query(
                "INSERT INTO crm_creates (sync, crm_id, state, rule, message, modified_ms, fingerprint, first_seen, last_seen, attempts)
                 VALUES (?, ?, 'refused', ?, ?, ?, ?, ?, ?, 1)
                 ON CONFLICT (sync, crm_id) DO UPDATE SET state = 'refused', rule = excluded.rule,
                   message = excluded.message, modified_ms = excluded.modified_ms,
                   fingerprint = excluded.fingerprint, last_seen = excluded.last_seen,
                   attempts = crm_creates.attempts + 1, retry_requested = 0",
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
        let mut tx = self.write_tx().await?;
        for c in created {
            sqlx::query(
                "INSERT INTO links (sync, local_id, crm_object, crm_id, pushed_hash, pushed_at, pulled_hash, version, written_back_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)
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
            for (field, value) in &c.bases {
                set_base(&mut tx, sync, &c.local_id, field, value).await?;
            }
        }
        let ids: Vec<String> = created.iter().map(|c| c.crm_id.clone()).collect();
        per_key_chunk(
            &mut tx,
            &["DELETE FROM crm_creates WHERE sync = ? AND crm_id IN ({keys})"],
            &Lead::Text(sync),
            &ids,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_creates(&self, sync: &str, crm_ids: &[String]) -> Result<(), StoreError> {
        if crm_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        per_key_chunk(
            &mut tx,
            &["DELETE FROM crm_creates WHERE sync = ? AND crm_id IN ({keys})"],
            &Lead::Text(sync),
            crm_ids,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn creates(&self, sync: Option<&str>) -> Result<Vec<CrmCreate>, StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT {COLUMNS} FROM crm_creates WHERE (? IS NULL OR sync = ?) ORDER BY sync, crm_id"
        )))
        .bind(sync)
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
        let mut out = HashMap::new();
        for chunk in crm_ids.chunks(super::KEYS_PER_STATEMENT) {
            let mut q = sqlx::query(sql(format!(
                "SELECT {COLUMNS} FROM crm_creates WHERE sync = ? AND crm_id IN ({})",
                marks(chunk.len())
            )))
            .bind(sync);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                let c = create_of(&r)?;
                out.insert(c.crm_id.clone(), c);
            }
        }
        Ok(out)
    }

    async fn request_create_retry(
        &self,
        sync: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "UPDATE crm_creates SET retry_requested = 1
             WHERE state = 'refused' AND (? IS NULL OR sync = ?) RETURNING sync, crm_id",
        )
        .bind(sync)
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
