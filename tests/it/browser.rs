//! A real browser on the web surface: headless Chromium from Debian's
//! packages, driven over WebDriver (`chromedriver`, on loopback), opens the
//! report page and checks its charts render with the report's numbers,
//! clicks a score on a survey page and sends a comment, and saves
//! screenshots to `target/screenshots/`. Without Chromium the test is a
//! visible skip, and a failure under CI (`.ci/run` installs it).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use concierge::app::App;
use concierge::core::report::Week;
use concierge::driver::Clock;

use crate::helpers::skipped;
use crate::web::{CONFIG, Running, survey_row, surveys_sent};

/// A WebDriver session on a chromedriver of our own.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` (with
    /// a skip, or a panic under CI) when they are not installed.
    async fn start() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (find("chromedriver"), find("chromium")) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("chromium and chromedriver are not installed, but CI=true: install chromium chromium-driver");
            }
            skipped("browser", "install Debian's chromium and chromium-driver to run the browser test");
            return None;
        };
        let port = crate::helpers::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => serde_json::from_str::<Value>(&r.text().await.unwrap_or_default())
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(std::time::Instant::now() < give_up, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1000,1800", "--no-first-run", "--disable-extensions"]
            }
        }}});
        let r: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}")).to_string();
        Some(Browser { driver: child, base, session, http })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method, url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    async fn element(&self, css: &str) -> String {
        let v =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element").to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    async fn text(&self) -> String {
        self.script("return document.body.innerText").await.as_str().unwrap_or("").to_string()
    }

    /// Saves a PNG screenshot as `target/screenshots/NAME.png`; returns its size.
    async fn screenshot(&self, name: &str) -> usize {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        png.len()
    }

    async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// An executable in the PATH or /usr/bin.
fn find(name: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/bin", "/usr/lib/chromium"])
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

#[tokio::test]
async fn in_a_browser_the_report_charts_render_and_a_survey_is_answered_with_a_click_and_a_comment() {
    let Some(browser) = Browser::start().await else { return };
    let db = crate::helpers::sqlite();

    // The report page of the demo weeks, from the signed link.
    let as_of = crate::replay::as_of();
    let (engine, _) = crate::replay::replay_into(&db, crate::replay::demo_events(), Some(as_of)).await;
    let secret = engine.store.secret().await.unwrap();
    engine.store.close().await;
    drop(engine);
    let mut config = crate::replay::demo_config(&db.url);
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    let hours = config.policy.hours.clone();
    let clock = Clock::virtual_from(as_of, 1);
    let app = App::with_channels(config, vec![], clock).await.unwrap();
    let base = format!("http://{}", app.web_addr().unwrap());
    let store = app.store().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bot = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let week = Week::parse("2026-W47").unwrap();
    let (report, _) = concierge::reports::pair(&store, &hours, week, as_of).await.unwrap();
    browser.open(&concierge::reports::report_link(&base, &secret, week, clock.now())).await;
    assert!(browser.text().await.contains("Support summary 2026-W47"));
    // Every chart is laid out (a real width), and shows the report's numbers.
    let widths = browser
        .script("return [...document.querySelectorAll('[data-chart] svg')].map(s => s.getBoundingClientRect().width)")
        .await;
    let widths: Vec<f64> = widths.as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
    assert_eq!(widths.len(), 5, "{widths:?}");
    assert!(widths.iter().all(|w| *w > 300.0), "{widths:?}");
    let shown = browser
        .script(
            "return [...document.querySelectorAll('[data-chart=\"first-response-distribution\"] rect + text')]\
             .map(t => Number(t.textContent)).reduce((a, b) => a + b, 0)",
        )
        .await;
    assert_eq!(shown.as_u64(), Some(u64::from(report.first_response.answered)));
    let nps = browser
        .script(
            "return document.querySelector('[data-chart=\"nps-trend\"] circle[data-week=\"2026-W47\"]').dataset.nps",
        )
        .await;
    assert_eq!(nps.as_str(), Some(report.nps.score.unwrap().to_string().as_str()));
    assert!(browser.screenshot("report-2026-W47").await > 10_000, "a real picture of the page");
    stop.send(()).unwrap();
    bot.await.unwrap().unwrap();

    // A survey page: click 9, then send a comment.
    let db = crate::helpers::sqlite();
    let running = Running::start(&db.url, CONFIG).await;
    let links = surveys_sent(&running.email, &running.store, running.clock, &["b1"]).await;
    browser.open(links[0].trim_end_matches("?score=9")).await;
    assert!(browser.text().await.contains("How likely are you to recommend us"));
    browser.screenshot("survey-question").await;
    browser.click("a[href$=\"score=9\"]").await;
    assert!(browser.text().await.contains("You answered 9."), "{}", browser.text().await);
    assert_eq!(survey_row(&running.store, "b1").await.score, Some(9));
    browser.type_into("textarea#comment", "Quick and kind, thank you").await;
    browser.screenshot("survey-thanks").await;
    browser.click("button[type=\"submit\"]").await;
    // The post navigates; wait for the page it returns.
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !browser.text().await.contains("Your comment has reached the team") {
        assert!(std::time::Instant::now() < give_up, "{}", browser.text().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(survey_row(&running.store, "b1").await.comment.as_deref(), Some("Quick and kind, thank you"));
    running.stop().await;
    browser.quit().await;
}
