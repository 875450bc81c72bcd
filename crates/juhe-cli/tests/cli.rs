//! The `juhe` binary as an operator runs it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn juhe(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(args)
        .env("JUHE_DATABASE_URL", db)
        .env_remove("JUHE_LISTEN")
        .output()
        .unwrap()
}

fn stdout_json(o: &std::process::Output) -> Value {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("stdout is not JSON: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn merchant_and_agent_commands_print_one_json_object_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/j.db", dir.path().display());
    let m = stdout_json(&juhe(&db, &["merchant", "create", "--name", "测试商户"]));
    assert_eq!(m["merchantId"], 1);
    assert!(
        m["clientId"].as_str().unwrap().starts_with('y')
            && m["clientSecret"].as_str().unwrap().len() == 32
    );
    let a = stdout_json(&juhe(&db, &["agent", "create", "--name", "代理"]));
    assert_eq!(a["agentId"], 1);
    let l = stdout_json(&juhe(
        &db,
        &["agent", "link", "--agent", "1", "--merchant", "1"],
    ));
    assert_eq!(l["linked"], true);
    let extra = stdout_json(&juhe(&db, &["merchant", "add-client", "--merchant", "1"]));
    assert_eq!(extra["merchantId"], 1);
    assert_ne!(extra["clientId"], m["clientId"]);
    let list = stdout_json(&juhe(&db, &["merchant", "list"]));
    assert_eq!(list[0]["name"], "测试商户");
    let r = stdout_json(&juhe(
        &db,
        &["merchant", "revoke-tokens", "--merchant", "1"],
    ));
    assert_eq!(r["revokedTokens"], 0);
    let bad = juhe(&db, &["agent", "link", "--agent", "1", "--merchant", "99"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no merchant 99"));
}

#[test]
fn import_prints_a_summary_and_a_bad_file_names_the_record_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/j.db", dir.path().display());
    stdout_json(&juhe(&db, &["merchant", "create", "--name", "m"]));
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../juhe/tests/fixtures/org-example.json"
    );
    let s = stdout_json(&juhe(&db, &["import", "--merchant", "1", fixture]));
    assert_eq!(s["chats"]["changed"], 8);
    let s = stdout_json(&juhe(&db, &["import", "--merchant", "1", fixture]));
    assert_eq!(s["chats"]["changed"], 0);
    let mut f: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    f["ads"][1]["createTime"] = "soon".into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&f).unwrap()).unwrap();
    stdout_json(&juhe(&db, &["merchant", "create", "--name", "n"]));
    let o = juhe(&db, &["import", "--merchant", "2", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nothing was imported") && err.contains("ads[1] (AD2024002): createTime"),
        "{err}"
    );
}

#[test]
fn invalid_configuration_fails_at_start_with_a_clear_message() {
    let o = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["migrate"])
        .env("JUHE_UTC_OFFSET", "Beijing")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("utc_offset"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["serve"])
        .env("JUHE_DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("database_url"));
    let o = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["default-config"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("listen = \"127.0.0.1:5001\""));
}

#[test]
fn sigterm_stops_the_server_cleanly_and_logs_carry_the_request_id_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/j.db", dir.path().display());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .env("JUHE_DATABASE_URL", &db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::blocking_get_fallback(port, deadline);
    assert!(client, "server did not come up");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let line = err
        .lines()
        .find(|l| l.contains("request finished"))
        .unwrap_or_else(|| panic!("{err}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["span"]["requestId"], "probe-1");
    assert!(err.contains("stopped"), "{err}");
}

mod reqwest {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    /// Polls /healthz with a bare HTTP/1.1 request (this test is synchronous).
    pub fn blocking_get_fallback(port: u16, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: probe-1\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

#[test]
fn agent_unlink_stops_an_agent_and_merchant_revoke_tokens_also_unlinks_agents() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/j.db", dir.path().display());
    stdout_json(&juhe(&db, &["merchant", "create", "--name", "m"]));
    stdout_json(&juhe(&db, &["agent", "create", "--name", "a"]));
    let link = ["agent", "link", "--agent", "1", "--merchant", "1"];
    stdout_json(&juhe(&db, &link));
    let u = stdout_json(&juhe(
        &db,
        &["agent", "unlink", "--agent", "1", "--merchant", "1"],
    ));
    assert_eq!(
        (u["linked"].as_bool(), u["wasLinked"].as_bool()),
        (Some(false), Some(true))
    );
    let u = stdout_json(&juhe(
        &db,
        &["agent", "unlink", "--agent", "1", "--merchant", "1"],
    ));
    assert_eq!(u["wasLinked"], false);
    stdout_json(&juhe(&db, &link));
    let r = stdout_json(&juhe(
        &db,
        &["merchant", "revoke-tokens", "--merchant", "1"],
    ));
    assert_eq!(r["unlinkedAgents"], 1, "{r}");
    let bad = juhe(&db, &["agent", "unlink", "--agent", "7", "--merchant", "1"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no agent 7"));
}

#[test]
fn an_unreachable_postgresql_is_reported_at_once_with_its_cause() {
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let start = Instant::now();
    let o = juhe("postgres://postgres@127.0.0.1:1/juhe", &["migrate"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("connection refused to 127.0.0.1:1"), "{err}");
    assert_eq!(err.matches("refused").count(), 1, "said once: {err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// Starts `juhe demo` and waits for its banner; returns the child and what it printed.
fn start_demo(db: &str, listen: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["demo", "--listen", listen])
        .env("JUHE_DATABASE_URL", db)
        .env_remove("JUHE_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("API reference") {
            break;
        }
    }
    (child, out)
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn the_demo_says_what_it_does_on_an_existing_database_and_a_failed_start_leaves_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/demo.db", dir.path().display());
    // The port is taken: the demo fails before creating anything.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["demo", "--listen", &addr])
        .env("JUHE_DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&addr));
    let list = stdout_json(&juhe(&db, &["merchant", "list"]));
    assert_eq!(
        list,
        serde_json::json!([]),
        "no merchant after a failed start"
    );
    // A host name works for --listen.
    let (child, first) = start_demo(&db, "localhost:0");
    stop(child);
    assert!(first.contains("Created demo merchant 1"), "{first}");
    let (child, second) = start_demo(&db, "localhost:0");
    stop(child);
    assert!(
        second.contains("Reusing")
            && second.contains("demo merchant 1 exists")
            && second.contains("changed nothing"),
        "{second}"
    );
    assert_eq!(
        stdout_json(&juhe(&db, &["merchant", "list"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
