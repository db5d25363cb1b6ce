//! The dashboard in headless Chromium (through chromedriver), against a running demo: a person
//! sees every sync with the numbers `/api/status` has, the conflict and the held deletions; no
//! action is offered before logging in; after logging in with the operator token, "Take CRM's"
//! settles the conflict and "Apply deletions" carries out the held deletions, from the page.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test is skipped, except under `CI=true`, where it fails. `CRMSYNC_SCREENSHOT=FILE` saves a
//! PNG of the dashboard (docs/operations.md shows one).

mod support;

use support::ops::{OpsRun, TOKEN, wait_for};
use support::webdriver::{Browser, tools};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_every_sync_and_settles_a_conflict_and_held_deletions_from_the_page() {
    let Some((driver, chromium)) = tools() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium and chromedriver are missing: apt-get install chromium chromium-driver"
        );
        eprintln!(
            "skipped: chromium and chromedriver are missing (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let ops = OpsRun::start(Some(TOKEN)).await;
    let (conflict, customer, _) = ops.make_conflict(1).await;
    ops.hold_deletions(5, 3).await;
    let browser = Browser::start(&driver, &chromium).await;

    browser.goto(&format!("{}/", ops.url)).await;
    let status = ops.json("/api/status").await;
    for s in status["syncs"].as_array().expect("syncs") {
        let name = s["sync"].as_str().expect("name");
        let row = browser
            .text(&format!("#syncs tr[data-sync=\"{name}\"]"))
            .await;
        let cells: Vec<&str> = row.split_whitespace().collect();
        let want: Vec<String> = [
            "total",
            "synced",
            "pending",
            "failed",
            "quarantined",
            "held",
        ]
        .iter()
        .map(|k| s[*k].as_i64().expect("number").to_string())
        .collect();
        assert_eq!(cells[0], name, "{row}");
        assert_eq!(
            &cells[2..8],
            want.as_slice(),
            "{name}: the page says {row:?}, the API {s}"
        );
    }
    let budget = browser.text("#budget").await;
    assert!(budget.contains("left"), "{budget}");
    let conflict_row = browser
        .text(&format!("#conflicts tr[data-conflict=\"{conflict}\"]"))
        .await;
    assert!(
        conflict_row.contains("App Side GmbH") && conflict_row.contains("CRM Side Inc"),
        "{conflict_row}"
    );
    let held = browser.text("#deletions tr[data-sync=\"companies\"]").await;
    assert!(held.contains('3'), "{held}");
    if let Ok(path) = std::env::var("CRMSYNC_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await).expect("screenshot");
    }
    // Not logged in: the page offers no action.
    assert_eq!(browser.count("#conflicts button").await, 0);
    assert_eq!(browser.count("#deletions button").await, 0);

    browser.goto(&format!("{}/login", ops.url)).await;
    browser.type_into("input[name=token]", TOKEN).await;
    browser.click("button[type=submit]").await;
    browser.wait_text(".flash", "Logged in", 10).await;

    browser
        .click(&format!(
            "#conflicts tr[data-conflict=\"{conflict}\"] form:nth-of-type(2) button"
        ))
        .await;
    browser
        .wait_text(
            ".flash",
            &format!("Conflict {conflict} settled with the CRM's value"),
            10,
        )
        .await;
    let name: String = sqlx::query_scalar("SELECT company_name FROM customers WHERE id = ?")
        .bind(customer)
        .fetch_one(&mut ops.app().await)
        .await
        .expect("row");
    assert_eq!(name, "CRM Side Inc");

    browser
        .click("#deletions tr[data-sync=\"companies\"] form:nth-of-type(1) button")
        .await;
    browser
        .wait_text(".flash", "3 held deletions applied", 10)
        .await;
    let ops_ref = &ops;
    wait_for(30, "the deletions applied", move || async move {
        let all = ops_ref.json("/api/deletions").await;
        let rows = all.as_array()?;
        (rows.iter().filter(|d| d["state"] == "applied").count() == 3).then_some(())
    })
    .await;
    assert_eq!(
        browser.count("#conflicts").await,
        0,
        "no conflict left on the page"
    );
}
