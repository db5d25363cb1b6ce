//! The recording proxy forwards requests unchanged and notes each one: what the scenario tests
//! and benchmarks judge crmsync by.

mod support;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use support::proxy::Recorder;

#[tokio::test]
async fn the_proxy_forwards_and_records_every_request() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let proxy = Recorder::start(&sandbox.base_url()).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .get(format!(
                "{}/crm/v3/objects/contacts?limit=1",
                proxy.base_url
            ))
            .bearer_auth("t")
            .send()
            .await
            .expect("through the proxy");
        assert_eq!(r.status(), 200);
    }
    let r = client
        .get(format!("{}/crm/v3/objects/contacts", proxy.base_url))
        .send()
        .await
        .expect("through the proxy");
    assert_eq!(r.status(), 401, "no token: the sandbox's own answer");
    assert_eq!(proxy.api_calls().len(), 4);
    assert_eq!(proxy.count_status(401), 1);
    assert_eq!(proxy.max_in_window(60_000, |_| true), 4);
    assert!(proxy.max_in_window(1, |_| true) >= 1);
}
