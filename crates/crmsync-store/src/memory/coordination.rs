//! [`Coordination`] in memory: leader leases, the API-call reservation, the kill switch,
//! bindings and the call log. The reservation is the SQLite algorithm: a window is full when
//! `max` slots started within its length, and a full window says when its oldest counted slot
//! leaves it; a day is full at its allowance. A refused call reserves nothing anywhere.

use super::MemoryState;
use crate::Coordination;
use crate::error::StoreError;
use crate::model::*;
use std::time::Duration;

/// The `meta` key of the kill switch.
const PAUSED: &str = "paused";

/// A budget day.
const DAY_MS: i64 = 86_400_000;

impl Coordination for MemoryState {
    async fn try_lead(
        &self,
        task: &str,
        owner: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let until = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut inner = self.lock();
        // Taken when free, kept by its holder, taken over once it ran out (strictly before now).
        let free = inner
            .leases
            .get(task)
            .is_none_or(|(holder, held_until)| holder == owner || *held_until < now_ms);
        if free {
            inner
                .leases
                .insert(task.to_string(), (owner.to_string(), until));
        }
        Ok(free)
    }

    async fn resign(&self, owner: &str) -> Result<(), StoreError> {
        self.lock().leases.retain(|_, (holder, _)| holder != owner);
        Ok(())
    }

    async fn leaders(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .leases
            .iter()
            .map(|(task, (owner, until))| (task.clone(), owner.clone(), *until))
            .collect())
    }

    async fn reserve_call(&self, req: &Reservation) -> Result<Grant, StoreError> {
        let now = req.now_ms;
        let mut inner = self.lock();
        let mut wait: Option<(i64, String)> = None;
        for w in &req.windows {
            let from = now.saturating_sub(w.length_ms);
            let mut counted: Vec<i64> = inner
                .call_slots
                .get(&(req.connection.clone(), w.name.clone()))
                .map(|slots| slots.iter().copied().filter(|at| *at > from).collect())
                .unwrap_or_default();
            let count = counted.len() as i64;
            if w.min_gap_ms > 0
                && let Some(last) = counted.iter().copied().max()
            {
                let until = last.saturating_add(w.min_gap_ms);
                if until > now {
                    wait_for_latest(&mut wait, until, &w.name);
                }
            }
            if count >= i64::from(w.max) {
                // The slot whose expiry makes room: the (count - max + 1)-th oldest.
                counted.sort_unstable();
                let at = usize::try_from(count - i64::from(w.max))
                    .ok()
                    .and_then(|i| counted.get(i).copied());
                let until = at.unwrap_or(now).saturating_add(w.length_ms);
                wait_for_latest(&mut wait, until, &w.name);
            }
        }
        if let Some(day) = &req.day {
            let used = inner
                .call_days
                .get(&(req.connection.clone(), day.start_ms))
                .copied()
                .unwrap_or(0);
            if used >= day.allowance {
                let until = day.start_ms.saturating_add(DAY_MS);
                wait_for_latest(&mut wait, until, "day");
            }
        }
        if let Some((until_ms, limit)) = wait {
            return Ok(Grant::Wait { until_ms, limit });
        }
        for w in &req.windows {
            let from = now.saturating_sub(w.length_ms);
            let slots = inner
                .call_slots
                .entry((req.connection.clone(), w.name.clone()))
                .or_default();
            // Slots that left the window are forgotten as the window moves on.
            slots.retain(|at| *at > from);
            slots.push(now);
        }
        if let Some(day) = &req.day {
            *inner
                .call_days
                .entry((req.connection.clone(), day.start_ms))
                .or_insert(0) += 1;
            // A week of days is kept, as on SQLite.
            let oldest = day.start_ms.saturating_sub(7 * DAY_MS);
            inner
                .call_days
                .retain(|(connection, start), _| connection != &req.connection || *start >= oldest);
        }
        Ok(Grant::Granted)
    }

    async fn calls_reserved(&self, connection: &str, day_start_ms: i64) -> Result<i64, StoreError> {
        let inner = self.lock();
        Ok(inner
            .call_days
            .get(&(connection.to_string(), day_start_ms))
            .copied()
            .unwrap_or(0))
    }

    async fn paused(&self) -> Result<bool, StoreError> {
        Ok(self.lock().meta.get(PAUSED).map(String::as_str) == Some("1"))
    }

    async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        let value = if paused { "1" } else { "0" };
        self.lock()
            .meta
            .insert(PAUSED.to_string(), value.to_string());
        Ok(())
    }

    async fn binding(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    async fn bind(&self, key: &str, value: &str) -> Result<Option<String>, StoreError> {
        let mut inner = self.lock();
        let before = inner.meta.get(key).cloned();
        if before.is_none() {
            inner.meta.insert(key.to_string(), value.to_string());
        }
        Ok(before)
    }

    async fn prune_calls(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut left = usize::try_from(limit).unwrap_or(usize::MAX);
        let before = inner.calls.len();
        inner.calls.retain(|c| {
            let prune = left > 0 && c.at_ms < before_ms;
            left -= usize::from(prune);
            !prune
        });
        Ok((before - inner.calls.len()) as u64)
    }

    async fn record_calls(&self, calls: &[CallRow]) -> Result<(), StoreError> {
        self.lock().calls.extend_from_slice(calls);
        Ok(())
    }

    async fn call_summary(&self, since_ms: i64) -> Result<CallSummary, StoreError> {
        let inner = self.lock();
        let mut s = CallSummary::default();
        for c in inner.calls.iter().filter(|c| c.at_ms >= since_ms) {
            let ok = c.status.is_some_and(|st| (200..=299).contains(&st));
            let lookup_404 = c.method == "GET" && c.status == Some(404);
            let upsert = ok && matches!(c.operation.as_str(), "upsert" | "create");
            s.calls += 1;
            s.retries += i64::from(c.attempt > 1);
            s.rate_limited += i64::from(c.rate_limited);
            s.errors += i64::from(
                c.status
                    .is_none_or(|st| st < 200 || (st >= 300 && !lookup_404)),
            );
            if upsert {
                s.upserted += i64::from(c.records);
                s.upsert_calls += 1;
            }
            s.association_calls += i64::from(ok && c.operation == "associate");
        }
        Ok(s)
    }
}
