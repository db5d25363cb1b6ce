//! The daily API budget: the CRM's daily limit times `daily_budget_share`, counted over the
//! reservations in the state database (so every worker sharing that database shares the
//! budget), per the CRM's budget model: a calendar day reset at the account's midnight
//! (HubSpot), or any 24 hours (Salesforce). When the share is spent, delivery pauses until the
//! reset, or, for a rolling window, until the next look (calls age out one by one).

use crmsync_core::config::CrmConfig;
use crmsync_core::config::raw::BudgetModel;
use crmsync_core::config::validate::parse_utc_offset;

const DAY_MS: i64 = 86_400_000;

/// How long a spent rolling budget waits before it is counted again.
const ROLLING_LOOK_MS: i64 = 3_600_000;

/// Today's budget and what is left of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Calls crmsync may make per day.
    pub allowance: i64,
    /// Start of the current budget day (rolling: 24 h ago), ms since the epoch.
    pub day_start_ms: i64,
    /// When the budget is next worth a look: the day's end, or for a rolling window an hour on.
    next_look_ms: i64,
    /// Calls made since `day_start_ms`.
    pub used: i64,
}

impl Budget {
    /// The budget of the day containing `now_ms`, with `used` calls made so far.
    pub fn new(crm: &CrmConfig, now_ms: i64) -> Self {
        let (day_start_ms, next_look_ms) = match crm.budget_model() {
            BudgetModel::CalendarDay => {
                let offset_ms =
                    i64::from(parse_utc_offset(crm.daily_reset_utc_offset()).unwrap_or(0)) * 60_000;
                let start = (now_ms + offset_ms).div_euclid(DAY_MS) * DAY_MS - offset_ms;
                (start, start + DAY_MS)
            }
            // Calls leave a rolling window as they age; an hour on, some of them have.
            BudgetModel::Rolling24h => (now_ms - DAY_MS, now_ms + ROLLING_LOOK_MS),
        };
        Budget {
            allowance: allowance(crm),
            day_start_ms,
            next_look_ms,
            used: 0,
        }
    }

    pub fn remaining(&self) -> i64 {
        (self.allowance - self.used).max(0)
    }

    /// When the next budget day starts (rolling: when the budget is next looked at).
    pub fn resets_at_ms(&self) -> i64 {
        self.next_look_ms
    }

    /// Whether `calls` more fit into today's share.
    pub fn allows(&self, calls: i64) -> bool {
        self.used + calls <= self.allowance
    }
}

/// Calls per day crmsync may use.
pub fn allowance(crm: &CrmConfig) -> i64 {
    (f64::from(crm.daily_limit()) * crm.daily_budget_share).floor() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crm(offset: &str) -> CrmConfig {
        let raw: crmsync_core::config::raw::RawConfig = toml::from_str(&format!(
            "source = {{ url = \"sqlite://a\" }}\ncrm = {{ environment = \"sandbox\", kind = \"hubspot\", daily_limit = 1000, daily_budget_share = 0.5, daily_reset_utc_offset = \"{offset}\" }}"
        ))
        .expect("parses");
        raw.crm
    }

    #[test]
    fn the_day_starts_at_the_accounts_midnight() {
        // 2026-01-02T00:30:00Z
        let now = 1_767_313_800_000;
        let utc = Budget::new(&crm("+00:00"), now);
        assert_eq!(utc.day_start_ms, 1_767_312_000_000);
        assert_eq!(utc.allowance, 500);
        // In UTC+01:00 it is 01:30, the day started at 23:00Z the day before.
        let cet = Budget::new(&crm("+01:00"), now);
        assert_eq!(cet.day_start_ms, 1_767_312_000_000 - 3_600_000);
        // In UTC-05:00 it is still the 1st, 19:30; the day started at 05:00Z on the 1st.
        let est = Budget::new(&crm("-05:00"), now);
        assert_eq!(est.resets_at_ms(), 1_767_312_000_000 + 5 * 3_600_000);
    }

    #[test]
    fn allows_until_the_share_is_spent() {
        let mut b = Budget::new(&crm("Z"), 0);
        b.used = 499;
        assert!(b.allows(1));
        assert!(!b.allows(2));
        assert_eq!(b.remaining(), 1);
    }
}
