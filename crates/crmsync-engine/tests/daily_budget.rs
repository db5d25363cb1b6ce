//! A backfill larger than today's budget share pauses when the share is spent and resumes when
//! it refreshes at the account's midnight, without losing or duplicating anything.

mod support;

use crmsync_sandbox::SandboxConfig;
use crmsync_store::Records;
use support::{TestClock, wall_ms, world};

#[tokio::test]
async fn a_backfill_over_the_daily_share_pauses_and_resumes_the_next_day() {
    let customers = vec![
        (1, "Acme", "ada@acme.com"),
        (2, "Globex", "grace@globex.com"),
    ];
    let orders: Vec<(i64, i64, &str, &str)> =
        (1..=1000).map(|i| (i, 1 + i % 2, "Order", "new")).collect();
    let w = world(&customers, &orders, SandboxConfig::unlimited()).await;
    let mut config = w.config.clone();
    // 15 calls a day for crmsync: 3 property checks + 3 creations, companies 1, contacts 1, then
    // deals cost 1 call per batch of 100 (a create carrying their associations), so the 10
    // batches of deals do not fit.
    config.raw.crm.daily_limit = Some(30);
    config.raw.crm.daily_budget_share = 0.5;
    let clock = TestClock::at(wall_ms());
    let engine = w
        .engine_full(config.clone(), |_| {}, Some(clock.clone()))
        .await;

    let first = engine.push_once().await.expect("first pass");
    let Some(paused_until) = first.paused_until_ms else {
        panic!("the pass paused on the budget: {first:#?}");
    };
    assert!(
        first.calls <= 15,
        "never more than the share: {} calls",
        first.calls
    );
    assert_eq!(first.budget_remaining, 15 - first.calls);
    let deals = engine.state.counts("deals").await.expect("counts");
    let delivered = engine.state.counts("deals").await.expect("counts").linked;
    assert!(
        delivered > 0 && deals.pending > 0,
        "part delivered, the rest queued: {deals:?}"
    );
    assert_eq!(deals.pending + delivered, 1000);

    // Same day: nothing more goes out.
    let again = engine.push_once().await.expect("same-day pass");
    assert_eq!(again.upsert_calls, 0);
    assert!(again.paused_until_ms.is_some());

    // After the reset the rest flows; nothing was lost or duplicated.
    clock.set(paused_until + 1);
    let mut passes = 0;
    while engine.state.counts("deals").await.expect("counts").pending > 0 {
        passes += 1;
        assert!(
            passes <= 5,
            "the backfill must finish within a few budget days"
        );
        engine.push_once().await.expect("next-day pass");
        clock.advance(86_400_000);
    }
    assert_eq!(
        engine.state.counts("deals").await.expect("counts").linked,
        1000
    );
    assert_eq!(w.objects().await, (2, 2, 1000));
}
