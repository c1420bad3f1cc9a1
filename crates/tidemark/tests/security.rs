//! `tidemark serve` behind `--web.config.file` (TLS, client certificates,
//! basic auth), with its connection timeouts and limit, driven by real
//! clients: Prometheus 2.42 remote-writing over TLS with basic auth,
//! `promtool query` with `--http.config.file`, ureq, raw TCP sockets; and a
//! forwarder whose URL carries credentials that must never be printed.
//!
//! Certificates are made at test time (a throwaway CA, a server certificate
//! for 127.0.0.1, a client certificate). Needs Debian's `prometheus` (with
//! `promtool`): fails, never skips, without it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tidemark::remote::proto::v1;
use tidemark_testkit::{promtool_with_env, Http, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig, TlsClient};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

/// A throwaway PKI written to a directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("tidemark test CA");
        let server_key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        sp.distinguished_name.push(DnType::CommonName, "tidemark test server");
        let server = sp.signed_by(&server_key, &ca).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name.push(DnType::CommonName, "tidemark test client");
        let client = cp.signed_by(&client_key, &ca).unwrap();
        let pki =
            Pki { dir, ca_pem: ca.pem(), client_cert_pem: client.pem(), client_key_pem: client_key.serialize_pem() };
        pki.write("ca.crt", &pki.ca_pem);
        pki.write("server.crt", &server.pem());
        pki.write("server.key", &server_key.serialize_pem());
        pki.write("client.crt", &pki.client_cert_pem);
        pki.write("client.key", &pki.client_key_pem);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A web config with TLS (relative file names: resolved against the
    /// config's own directory) and basic auth, plus `extra` TLS lines.
    fn web_config(&self, name: &str, tls_extra: &str, auth: bool) -> PathBuf {
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        let mut text = format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{tls_extra}");
        text.push_str("http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n");
        if auth {
            text.push_str(&format!("basic_auth_users:\n  {USER}: '{hash}'\n"));
        }
        self.write(name, &text)
    }

    fn client(&self, with_cert: bool) -> Http {
        let tls = TlsClient {
            ca_pem: Some(self.ca_pem.clone().into_bytes()),
            client_cert: with_cert
                .then(|| (self.client_cert_pem.clone().into_bytes(), self.client_key_pem.clone().into_bytes())),
        };
        Http::with_tls(Duration::from_secs(10), &tls).unwrap()
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn start(data: &Path, args: Vec<String>, ready: Option<(Http, bool)>) -> Tidemark {
    let mut config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), data);
    config.args = args;
    config.ready_client = ready;
    Tidemark::start(config).unwrap_or_else(|e| panic!("{e}"))
}

fn write_body(name: &str, t_ms: i64) -> Vec<u8> {
    let req = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: name.into() },
                v1::Label { name: "job".into(), value: "sec".into() },
            ],
            samples: vec![v1::Sample { value: 1.0, timestamp: t_ms }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
}

const RW_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// Polls `cond` every 200 ms for up to `limit`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cond()
}

#[test]
fn tls_and_basic_auth_guard_every_endpoint_including_remote_write() {
    let pki = Pki::new();
    let web = pki.web_config("web.yml", "", true);
    let data = tempfile::tempdir().unwrap();
    let good = pki.client(false).basic_auth(USER, PASSWORD);
    let server = start(data.path(), vec![format!("--web.config.file={}", web.display())], Some((good.clone(), true)));
    let base = server.base_url();
    assert!(base.starts_with("https://"), "{base}");

    let now = tidemark_testkit::now_ms();
    let w = good.post(&format!("{base}/api/v1/write"), &RW_HEADERS, &write_body("secured", now)).unwrap();
    assert_eq!(w.status, 204, "{}", w.text());
    let q = good.get(&format!("{base}/api/v1/query?query=secured")).unwrap();
    assert_eq!(q.status, 200, "{}", q.text());
    assert!(q.text().contains(r#""__name__":"secured""#), "{}", q.text());
    assert_eq!(q.header("x-content-type-options"), Some("nosniff"), "configured response headers are sent");

    let wrong = pki.client(false).basic_auth(USER, "wrong");
    let anonymous = pki.client(false);
    let unknown = pki.client(false).basic_auth("mallory", PASSWORD);
    for path in ["/-/healthy", "/-/ready", "/api/v1/query?query=up", "/metrics", "/api/v1/status/flags"] {
        for (who, client) in [("wrong password", &wrong), ("no credentials", &anonymous), ("unknown user", &unknown)] {
            let r = client.get(&format!("{base}{path}")).unwrap();
            assert_eq!(r.status, 401, "{who} on {path}: {}", r.text());
            assert_eq!(r.header("www-authenticate"), Some("Basic"), "{who} on {path}");
        }
    }
    let r = anonymous.post(&format!("{base}/api/v1/write"), &RW_HEADERS, &write_body("intruder", now)).unwrap();
    assert_eq!(r.status, 401, "remote write without credentials: {}", r.text());
    let r = good.get(&format!("{base}/api/v1/query?query=intruder")).unwrap();
    assert!(r.text().contains(r#""result":[]"#), "an unauthenticated write was stored: {}", r.text());

    // Plain HTTP to the TLS port gets no HTTP answer at all.
    let plain = Http::new(Duration::from_secs(5)).basic_auth(USER, PASSWORD);
    let r = plain.get(&format!("{}/-/healthy", server.url()));
    assert!(r.is_err(), "plain HTTP to the TLS port answered: {:?}", r.map(|r| (r.status, r.text())));
    // A client that does not trust the server's CA refuses it.
    let untrusting = Http::with_tls(Duration::from_secs(5), &TlsClient::default()).unwrap().basic_auth(USER, PASSWORD);
    assert!(untrusting.get(&format!("{base}/-/healthy")).is_err());
    // The admin API is off unless enabled.
    let s = good.post(&format!("{base}/api/v1/admin/tsdb/snapshot"), &[], b"").unwrap();
    assert_eq!(s.status, 500, "{}", s.text());
    assert!(s.text().contains("admin APIs disabled"), "{}", s.text());
}

#[test]
fn client_certificates_are_required_and_verified_when_configured() {
    let pki = Pki::new();
    let web = pki.web_config(
        "web.yml",
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n",
        false,
    );
    let data = tempfile::tempdir().unwrap();
    let with_cert = pki.client(true);
    let server =
        start(data.path(), vec![format!("--web.config.file={}", web.display())], Some((with_cert.clone(), true)));
    let url = format!("{}/api/v1/query?query=1", server.base_url());
    assert_eq!(with_cert.get(&url).unwrap().status, 200);
    let r = pki.client(false).get(&url);
    assert!(r.is_err(), "no client certificate, yet answered: {:?}", r.map(|r| r.status));

    // A certificate from another CA is refused too.
    let other = ca("another CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(Vec::<String>::new()).unwrap().signed_by(&key, &other).unwrap();
    let stranger = Http::with_tls(
        Duration::from_secs(5),
        &TlsClient {
            ca_pem: Some(pki.ca_pem.clone().into_bytes()),
            client_cert: Some((cert.pem().into_bytes(), key.serialize_pem().into_bytes())),
        },
    )
    .unwrap();
    let r = stranger.get(&url);
    assert!(r.is_err(), "a certificate of another CA was accepted: {:?}", r.map(|r| r.status));
    // The server is still fine.
    assert_eq!(with_cert.get(&url).unwrap().status, 200);
}

#[test]
fn an_invalid_web_config_stops_the_server_from_starting() {
    let pki = Pki::new();
    let web = pki.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(pki.path("data"))
        .arg(format!("--web.config.file={}", web.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls_server_config.min_version") && stderr.contains("TLS10"), "{stderr}");
    assert!(!pki.path("data").join("wal").exists(), "the database was opened before the web config was checked");
}

#[test]
fn prometheus_remote_writes_over_tls_with_basic_auth_and_promtool_queries() {
    let pki = Pki::new();
    let web = pki.web_config("web.yml", "", true);
    let data = tempfile::tempdir().unwrap();
    let client = pki.client(false).basic_auth(USER, PASSWORD);
    let server = start(data.path(), vec![format!("--web.config.file={}", web.display())], Some((client.clone(), true)));
    let base = server.base_url();

    let prom_dir = tempfile::tempdir().unwrap();
    let mut config = PrometheusConfig::new(prom_dir.path().join("tsdb"));
    let port = tidemark_testkit::free_port();
    config.port = Some(port);
    config.config_yaml = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prom
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
remote_write:
  - url: {base}/api/v1/write
    remote_timeout: 10s
    basic_auth:
      username: {USER}
      password: '{PASSWORD}'
    tls_config:
      ca_file: {ca}
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
"#,
        ca = pki.path("ca.crt").display(),
    );
    config.args = vec!["--log.level=warn".into()];
    let prom = Prometheus::start(config).unwrap_or_else(|e| panic!("{e}"));

    let url = format!("{base}/api/v1/query?query=up%7Bjob%3D%22prom%22%7D");
    let arrived = eventually(Duration::from_secs(60), || {
        client.get(&url).map(|r| r.status == 200 && r.text().contains(r#""job":"prom""#)).unwrap_or(false)
    });
    assert!(arrived, "Prometheus' samples did not arrive over TLS; Prometheus log:\n{}", prom.log_tail(30));
    let m = client.get(&format!("{base}/metrics")).unwrap().text();
    assert!(m.contains("tidemark_remote_write_samples_appended_total"), "{m}");

    // promtool over TLS with basic auth. promtool 2.42 has no
    // --http.config.file: the credentials go in the URL (Go's HTTP client
    // sends them as basic auth) and Go takes its CA roots from SSL_CERT_FILE.
    let ca = pki.path("ca.crt");
    let env = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    let with_auth = base.replacen("https://", &format!("https://{USER}:{}@", PASSWORD.replace(' ', "%20")), 1);
    let out =
        promtool_with_env(["query", "instant", &with_auth, "up{job=\"prom\"}"], Duration::from_secs(60), &env).unwrap();
    assert!(out.success(), "promtool failed: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("job=\"prom\""), "{}", out.stdout);
    // Without credentials promtool is refused; without the CA it cannot connect.
    let out = promtool_with_env(["query", "instant", &base, "up"], Duration::from_secs(60), &env).unwrap();
    assert!(!out.success(), "promtool without credentials succeeded: {}", out.stdout);
    assert!(out.stderr.contains("401") || out.stderr.contains("Unauthorized"), "{}", out.stderr);
    let out = promtool_with_env(["query", "instant", &with_auth, "up"], Duration::from_secs(60), &[]).unwrap();
    assert!(!out.success(), "promtool trusted an unknown CA: {}", out.stdout);
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // e.g. an error response before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slowloris_connections_are_closed_and_the_server_keeps_answering() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), vec!["--web.idle-timeout=2s".into(), "--web.read-header-timeout=1s".into()], None);
    let addr = format!("127.0.0.1:{}", server.port());

    // 200 connections that never send a byte.
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    for (i, s) in idle.iter_mut().enumerate() {
        let left = Duration::from_secs(6).saturating_sub(started.elapsed()).max(Duration::from_millis(10));
        assert!(closed_within(s, left), "idle connection {i} still open after {:?}", started.elapsed());
    }
    let closed_after = started.elapsed();
    eprintln!("200 idle connections closed {closed_after:?} after they were opened (header-read timeout 1s)");
    assert!(closed_after >= Duration::from_millis(900), "closed too early: {closed_after:?}");

    // A kept-alive connection that served a request is closed after the
    // idle timeout, not the header timeout.
    let mut ka = TcpStream::connect(&addr).unwrap();
    ka.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    ka.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = ka.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(!closed_within(&mut ka, Duration::from_millis(1500)), "closed at the header timeout while idle");
    assert!(closed_within(&mut ka, Duration::from_secs(3)), "kept-alive idle connection not closed");

    // Slowloris: headers trickled one line every 300 ms never complete.
    let mut slow = TcpStream::connect(&addr).unwrap();
    let t0 = Instant::now();
    slow.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut cut = None;
    for i in 0..40 {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).is_err() {
            cut = Some(t0.elapsed());
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(1)) {
            cut = Some(t0.elapsed());
            break;
        }
    }
    let cut = cut.expect("a slowloris connection stayed open for 12 s");
    eprintln!("slowloris connection cut after {cut:?}");
    assert!(cut < Duration::from_secs(4), "slowloris closed only after {cut:?}");

    // The server is fine.
    let r = tidemark_testkit::get(&format!("{}/-/healthy", server.url())).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn connections_over_the_limit_wait_until_one_closes() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), vec!["--web.max-connections=2".into(), "--web.idle-timeout=30s".into()], None);
    let addr = format!("127.0.0.1:{}", server.port());
    // Let the readiness poller's connection go (it closes after its request).
    std::thread::sleep(Duration::from_millis(300));
    let request = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut a = TcpStream::connect(&addr).unwrap();
    let mut b = TcpStream::connect(&addr).unwrap();
    for s in [&mut a, &mut b] {
        s.write_all(request).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
    // A third waits in the backlog: connected by the kernel, not served.
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(request).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut buf = [0u8; 512];
    assert!(c.read(&mut buf).is_err(), "a third connection was served over the limit of 2");
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
}

#[test]
fn forward_url_credentials_become_basic_auth_and_are_never_printed() {
    const SECRET: &str = "s3cr3t-pa55";
    // The receiver: plain HTTP with basic auth for user "fwd".
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash(SECRET, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  fwd: '{hash}'\n")).unwrap();
    let rx_client = Http::new(Duration::from_secs(10)).basic_auth("fwd", SECRET);
    let receiver = start(
        &dir.path().join("rx"),
        vec![format!("--web.config.file={}", web.display())],
        Some((rx_client.clone(), false)),
    );
    // The sender forwards to it with the credentials in the URL, logging at debug.
    let fwd_url = format!("http://fwd:{SECRET}@127.0.0.1:{}/api/v1/write", receiver.port());
    let sender =
        start(&dir.path().join("tx"), vec![format!("--forward.url={fwd_url}"), "--log.level=debug".into()], None);
    let now = tidemark_testkit::now_ms();
    let w = tidemark_testkit::post(&sender.remote_write_url(), &RW_HEADERS, &write_body("forwarded", now)).unwrap();
    assert_eq!(w.status, 204);
    let arrived = eventually(Duration::from_secs(30), || {
        rx_client
            .get(&format!("{}/api/v1/query?query=forwarded", receiver.url()))
            .map(|r| r.text().contains(r#""job":"sec""#))
            .unwrap_or(false)
    });
    assert!(arrived, "the forwarder did not authenticate with the URL's credentials:\n{}", sender.log_tail(30));

    for path in ["/api/v1/status/flags", "/api/v1/status/config", "/metrics", "/api/v1/status/runtimeinfo"] {
        let body = tidemark_testkit::get(&format!("{}{path}", sender.url())).unwrap().text();
        assert!(!body.contains(SECRET), "{path} shows the password:\n{body}");
    }
    let log = std::fs::read_to_string(sender.log_path()).unwrap();
    assert!(log.contains("starting the forwarder"), "no forwarder log line at all:\n{log}");
    assert!(!log.contains(SECRET), "the sender's log shows the password:\n{log}");
    // Nor in the Authorization header's encoding (HTTP client debug logs).
    let encoded = tidemark_testkit::Http::new(Duration::from_secs(1)).basic_auth("fwd", SECRET);
    let header = format!("{encoded:?}");
    let b64 = header.split("Basic ").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    assert!(!log.contains(&b64), "the sender's log shows the encoded credentials:\n{log}");
    assert!(log.contains("DEBUG"), "the log is not at debug level:\n{log}");
}

#[test]
fn forwarder_sends_over_tls_with_basic_auth_from_the_config_file() {
    let pki = Pki::new();
    let web = pki.web_config("web.yml", "", true);
    let client = pki.client(false).basic_auth(USER, PASSWORD);
    let rx_data = tempfile::tempdir().unwrap();
    let receiver =
        start(rx_data.path(), vec![format!("--web.config.file={}", web.display())], Some((client.clone(), true)));
    let pass = pki.write("forward.pass", &format!("{PASSWORD}\n"));
    let toml = pki.write(
        "tidemark.toml",
        &format!(
            "[[forward]]\nname = \"tls\"\nurl = \"{}\"\nbasic_auth = {{ username = \"{USER}\", password_file = \"{}\" }}\ntls_config = {{ ca_file = \"{}\" }}\n",
            receiver.remote_write_url(),
            pass.display(),
            pki.path("ca.crt").display()
        ),
    );
    let tx_data = tempfile::tempdir().unwrap();
    let sender = start(tx_data.path(), vec![format!("--config.file={}", toml.display())], None);
    let now = tidemark_testkit::now_ms();
    let w = tidemark_testkit::post(&sender.remote_write_url(), &RW_HEADERS, &write_body("over_tls", now)).unwrap();
    assert_eq!(w.status, 204);
    let arrived = eventually(Duration::from_secs(30), || {
        client
            .get(&format!("{}/api/v1/query?query=over_tls", receiver.base_url()))
            .map(|r| r.text().contains(r#""job":"sec""#))
            .unwrap_or(false)
    });
    assert!(arrived, "nothing arrived over TLS:\n{}", sender.log_tail(30));
    let log = std::fs::read_to_string(sender.log_path()).unwrap();
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn the_web_config_is_reloaded_when_it_changes_and_a_broken_one_is_not_applied() {
    let pki = Pki::new();
    let web = pki.web_config("web.yml", "", true);
    let data = tempfile::tempdir().unwrap();
    let alice = pki.client(false).basic_auth(USER, PASSWORD);
    let server = start(data.path(), vec![format!("--web.config.file={}", web.display())], Some((alice.clone(), true)));
    let url = format!("{}/api/v1/query?query=1", server.base_url());
    assert_eq!(pki.client(false).basic_auth("bob", "builder").get(&url).unwrap().status, 401);

    // Replace alice by bob (the size changes, so the change is seen even
    // within the file system's timestamp granularity).
    let hash = bcrypt::hash("builder", 4).unwrap();
    let text = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  bob: '{hash}'\n  carol: '{hash}'\n"
    );
    std::fs::write(&web, text).unwrap();
    // The file is checked at each new connection: a fresh client each time
    // (clones of a client share its connection pool).
    let bob_fresh = || pki.client(false).basic_auth("bob", "builder");
    assert!(
        eventually(Duration::from_secs(10), || bob_fresh().get(&url).map(|r| r.status == 200).unwrap_or(false)),
        "the new user is not accepted:\n{}",
        server.log_tail(20)
    );
    let alice_now = pki.client(false).basic_auth(USER, PASSWORD);
    assert_eq!(alice_now.get(&url).unwrap().status, 401, "the removed user is still accepted");

    // A broken file is logged and the previous configuration stays.
    std::fs::write(&web, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n")
        .unwrap();
    let again = pki.client(false).basic_auth("bob", "builder");
    assert_eq!(again.get(&url).unwrap().status, 200, "a broken config replaced a working one");
    let anonymous = pki.client(false);
    assert_eq!(anonymous.get(&url).unwrap().status, 401, "a broken config turned authentication off");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(log.contains("web config changed but cannot be used"), "{log}");
}

#[test]
fn tls_handshakes_are_bounded_in_time() {
    let pki = Pki::new();
    let web = pki.web_config("web.yml", "", false);
    let data = tempfile::tempdir().unwrap();
    let client = pki.client(false);
    let server = start(
        data.path(),
        vec![format!("--web.config.file={}", web.display()), "--web.read-header-timeout=1s".into()],
        Some((client.clone(), true)),
    );
    let addr = format!("127.0.0.1:{}", server.port());
    // Silent, and a ClientHello's first bytes then nothing.
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut partial = TcpStream::connect(&addr).unwrap();
    partial.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let t0 = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(4)), "a silent TLS connection stayed open");
    assert!(closed_within(&mut partial, Duration::from_secs(4)), "a stalled handshake stayed open");
    assert!(t0.elapsed() >= Duration::from_millis(800), "closed before the timeout: {:?}", t0.elapsed());
    assert_eq!(client.get(&format!("{}/-/healthy", server.base_url())).unwrap().status, 200);
}

#[test]
fn a_trickled_request_body_is_cut_off_at_the_read_timeout() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), vec!["--web.read-timeout=1s".into()], None);
    let mut s = TcpStream::connect(format!("127.0.0.1:{}", server.port())).unwrap();
    s.write_all(
        b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\n",
    )
    .unwrap();
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut answer = Vec::new();
    while t0.elapsed() < Duration::from_secs(8) {
        // One body byte every 200 ms: never complete before the timeout.
        if s.write_all(b"x").is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        if !answer.is_empty() {
            break;
        }
    }
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "after {took:?}: {text:?}");
    assert!(text.contains("read timeout"), "{text}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn http2_is_offered_over_tls_unless_turned_off() {
    let curl = tidemark_testkit::find_binary("curl").unwrap_or_else(|e| panic!("{e}"));
    let pki = Pki::new();
    for (http2, want) in [(true, "2"), (false, "1.1")] {
        let web = pki.write(
            &format!("web-{http2}.yml"),
            &format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  http2: {http2}\n"),
        );
        let data = tempfile::tempdir().unwrap();
        let server =
            start(data.path(), vec![format!("--web.config.file={}", web.display())], Some((pki.client(false), true)));
        let out = std::process::Command::new(&curl)
            .args(["-sS", "--http2", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
            .arg("--cacert")
            .arg(pki.path("ca.crt"))
            .arg(format!("{}/api/v1/query?query=1", server.base_url()))
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got, format!("{want} 200"), "http2: {http2}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn open_connections_do_not_hold_up_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let mut server =
        start(data.path(), vec!["--web.idle-timeout=60s".into(), "--web.read-header-timeout=60s".into()], None);
    let addr = format!("127.0.0.1:{}", server.port());
    // Idle connections that never sent anything, kept-alive ones that did,
    // and one in the middle of its headers.
    let mut conns: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    for _ in 0..10 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        assert!(s.read(&mut buf).unwrap() > 0);
        conns.push(s);
    }
    let mut partial = TcpStream::connect(&addr).unwrap();
    partial.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n").unwrap();
    conns.push(partial);
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let status = server.terminate(Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    let took = t0.elapsed();
    assert!(status.success(), "{status}");
    // The drain is 4 s at most; idle connections are closed at once.
    assert!(took < Duration::from_secs(5), "shutdown took {took:?} with open connections");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
    drop(conns);
}

#[test]
fn a_large_answer_read_slowly_is_not_cut_off_as_idle() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), vec!["--web.idle-timeout=1s".into(), "--web.read-header-timeout=1s".into()], None);
    // ~6 MB of JSON: far more than the socket buffers hold.
    let now = tidemark_testkit::now_ms();
    let pad = "p".repeat(200);
    let req = v1::WriteRequest {
        timeseries: (0..20_000)
            .map(|i| v1::TimeSeries {
                labels: vec![
                    v1::Label { name: "__name__".into(), value: "big".into() },
                    v1::Label { name: "i".into(), value: format!("{i:05}{pad}") },
                ],
                samples: vec![v1::Sample { value: 1.0, timestamp: now }],
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    let w = tidemark_testkit::post(&server.remote_write_url(), &RW_HEADERS, &body).unwrap();
    assert_eq!(w.status, 204, "{}", w.text());

    let mut s = TcpStream::connect(format!("127.0.0.1:{}", server.port())).unwrap();
    s.write_all(b"GET /api/v1/query?query=big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = vec![0u8; 4096];
    let n = s.read(&mut got).unwrap();
    got.truncate(n);
    // Stall for three idle timeouts with most of the answer unsent.
    std::thread::sleep(Duration::from_secs(3));
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{}", &text[..text.len().min(200)]);
    assert!(got.len() > 4_000_000, "only {} bytes arrived", got.len());
    let json_end = text.trim_end();
    assert!(
        json_end.ends_with("]}}") || json_end.ends_with("0"),
        "the answer was cut off: …{}",
        &json_end[json_end.len().saturating_sub(80)..]
    );
    assert_eq!(text.matches(r#""__name__":"big""#).count(), 20_000);
}

#[test]
fn idle_http2_connections_get_a_goaway_and_close() {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;

    let pki = Pki::new();
    let web = pki.web_config("web.yml", "", false);
    let data = tempfile::tempdir().unwrap();
    let server = start(
        data.path(),
        vec![format!("--web.config.file={}", web.display()), "--web.idle-timeout=1s".into()],
        Some((pki.client(false), true)),
    );
    let port = server.port();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 not negotiated");
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        let conn = tokio::spawn(conn);
        let req =
            hyper::Request::get(format!("https://127.0.0.1:{port}/-/healthy")).body(axum::body::Body::empty()).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);
        let t0 = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(8), conn).await;
        assert!(ended.is_ok(), "an idle HTTP/2 connection is still open after 8 s");
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(900), "closed before the idle timeout: {took:?}");
        eprintln!("idle HTTP/2 connection closed {took:?} after its last response");
    });
}
