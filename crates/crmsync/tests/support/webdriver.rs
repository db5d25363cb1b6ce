//! Just enough of the W3C WebDriver protocol to drive headless Chromium through chromedriver
//! over HTTP: open a page, find elements by CSS, read their text, type, click, take a
//! screenshot. `CRMSYNC_CHROMEDRIVER` / `CRMSYNC_CHROMIUM` override where the two live
//! (default `/usr/bin/chromedriver`, `/usr/bin/chromium`; Debian's `chromium` and
//! `chromium-driver` packages).

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where chromedriver and Chromium are, or `None` when either is missing.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
    let driver = PathBuf::from(
        std::env::var("CRMSYNC_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
    );
    let browser = PathBuf::from(
        std::env::var("CRMSYNC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    (driver.exists() && browser.exists()).then_some((driver, browser))
}

/// A chromedriver process with one headless browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    pub async fn start(driver: &PathBuf, browser: &PathBuf) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1500"]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            driver: child,
            base,
            session,
            http,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {path}: {e}"),
        }
    }

    /// A WebDriver command; its error object when it failed.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let v: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("WebDriver JSON");
        if v["value"]["error"].is_string() {
            return Err(v["value"].clone());
        }
        Ok(v["value"].clone())
    }

    /// Waits (at most `secs`) until the element `css` selects shows text containing `want`: a
    /// click that submits a form navigates on its own time, and the old page's elements go
    /// stale meanwhile.
    pub async fn wait_text(&self, css: &str, want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        loop {
            let found = self
                .try_call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Ok(el) = found
                && let Some(id) = el[ELEMENT].as_str()
                && let Ok(text) = self
                    .try_call(
                        reqwest::Method::GET,
                        &format!("/element/{id}/text"),
                        json!({}),
                    )
                    .await
            {
                last = text.as_str().unwrap_or_default().to_string();
                if last.contains(want) {
                    return last;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {want:?}; last: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// The element `css` selects (panics when there is none).
    pub async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_string()
    }

    /// How many elements `css` selects.
    pub async fn count(&self, css: &str) -> usize {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array().map_or(0, Vec::len)
    }

    /// The rendered text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{el}/text"),
                json!({}),
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            json!({}),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self
            .call(reqwest::Method::GET, "/screenshot", json!({}))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 PNG")
    }
}
