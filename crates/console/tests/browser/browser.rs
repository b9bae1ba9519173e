//! The browser side: chromedriver started on a free port, one headless Chromium session, and
//! the few moves the test makes (type, click, confirm, wait, photograph).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long a page may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// Where chromedriver and Chromium are: `CHROMEDRIVER` / `CHROMIUM`, else Debian's paths.
pub struct Driver {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

/// The driver and browser when both are installed.
pub fn find_driver() -> Option<Driver> {
    let path =
        |var: &str, default: &str| std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| default.into());
    let d = Driver {
        chromedriver: path("CHROMEDRIVER", "/usr/bin/chromedriver"),
        chromium: path("CHROMIUM", "/usr/bin/chromium"),
    };
    (d.chromedriver.is_file() && d.chromium.is_file()).then_some(d)
}

/// A browser session on the console at `base`.
pub struct Browser {
    client: Client,
    driver: Child,
    base: String,
    shots: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium 1280 px wide.
    pub async fn start(d: &Driver, base: &str) -> Browser {
        let port = free_port();
        let driver = Command::new(&d.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": d.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                         "--force-device-scale-factor=1"],
            },
            "unhandledPromptBehavior": "ignore",
        });
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.as_object().unwrap().clone());
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(started.elapsed() < WAIT, "no chromedriver session at {url}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let shots = std::env::var_os("HOTPATCH_SCREENSHOTS").map(PathBuf::from);
        Browser { client, driver, base: base.to_owned(), shots }
    }

    /// Opens a console path.
    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// Opens a whole URL.
    pub async fn goto_url(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Signs in with `token` from the sign-in page.
    pub async fn sign_in(&self, token: &str) {
        self.goto("/signin").await;
        self.type_into("#token", token).await;
        self.click("button[type=submit]").await;
    }

    /// Waits for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let started = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return e;
            }
            self.timed_out(started, &format!("no element {css}")).await;
        }
    }

    /// Waits until the element `css` contains `text`.
    pub async fn wait_text(&self, css: &str, text: &str) {
        let started = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if e.text().await.is_ok_and(|t| t.contains(text)) {
                    return;
                }
            }
            self.timed_out(started, &format!("{css} never said {text:?}")).await;
        }
    }

    /// Waits until the page's source satisfies `ok`.
    pub async fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) {
        let started = Instant::now();
        loop {
            if self.client.source().await.is_ok_and(|s| ok(&s)) {
                return;
            }
            self.timed_out(started, what).await;
        }
    }

    async fn timed_out(&self, started: Instant, what: &str) {
        if started.elapsed() > WAIT {
            let page = self.client.source().await.unwrap_or_default();
            panic!("{what} within {WAIT:?} at {}:\n{page}", self.url().await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Whether an element matching `css` is on the page now.
    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// Types `text` into the field `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_for(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Picks the option of value `value` in the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.wait_for(css).await.select_by_value(value).await.unwrap();
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    /// Clicks the button `css` and accepts the confirmation it asks for.
    pub async fn click_confirmed(&self, css: &str) {
        self.click(css).await;
        let started = Instant::now();
        while self.client.accept_alert().await.is_err() {
            self.timed_out(started, &format!("{css} asked for no confirmation")).await;
        }
    }

    /// The session's CSRF secret, as the page's forms carry it.
    pub async fn csrf(&self) -> String {
        let v = self
            .client
            .execute("return document.querySelector('input[name=csrf]').value", vec![])
            .await
            .unwrap();
        v.as_str().unwrap().to_owned()
    }

    /// POSTs `body` (urlencoded) to `path` from the page, as a form would; the answer's status.
    pub async fn post_from_page(&self, path: &str, body: &str) -> u64 {
        let script = "const done = arguments[arguments.length - 1];
            fetch(arguments[0], {method: 'POST', redirect: 'manual',
                headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: arguments[1]})
              .then(r => done(r.status), e => done(String(e)));";
        let v = self.client.execute_async(script, vec![json!(path), json!(body)]).await.unwrap();
        v.as_u64().unwrap_or_else(|| panic!("the post failed: {v}"))
    }

    /// A phone's width.
    pub async fn phone(&self) {
        self.client.set_window_size(390, 844).await.unwrap();
    }

    /// Back to 1280 px.
    pub async fn desktop(&self) {
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    /// Photographs the window as `<name>.png` (kept where `HOTPATCH_SCREENSHOTS` says).
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
