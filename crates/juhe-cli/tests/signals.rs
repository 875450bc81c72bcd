//! Stopping the server (`juhe serve`) with signals, and `juhe backup`, as an operator does.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(db: &str, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("JUHE_DATABASE_URL", db)
        .env_remove("JUHE_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

fn wait_for_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn one_sigterm_on_an_idle_server_stops_it_cleanly_with_status_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/j.db", dir.path().display());
    let mut child = serve(&db, free_port());
    sigterm(&child);
    let status = wait_for_exit(&mut child, Duration::from_secs(15));
    let _ = child.kill();
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[test]
fn a_second_sigterm_during_a_stuck_drain_exits_at_once_with_a_failure_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/j.db", dir.path().display());
    let port = free_port();
    let mut child = serve(&db, port);
    // A request whose body never finishes keeps the drain waiting (grace: 20 s by default).
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stuck
        .write_all(b"POST /connect/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ngrant_type=")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let early = wait_for_exit(&mut child, Duration::from_secs(1));
    assert!(
        early.is_none(),
        "the first SIGTERM should drain, not exit: {early:?}"
    );
    sigterm(&child);
    let status = wait_for_exit(&mut child, Duration::from_secs(5));
    let _ = child.kill();
    let status = status.expect("a second SIGTERM did not end the process within 5 s");
    assert!(!status.success());
    assert_eq!(status.code(), Some(130));
    drop(stuck);
}

#[test]
fn backup_writes_a_usable_copy_and_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/j.db", dir.path().display());
    let juhe = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_juhe"))
            .args(args)
            .env("JUHE_DATABASE_URL", &db)
            .output()
            .unwrap()
    };
    assert!(juhe(&["merchant", "create", "--name", "备份"])
        .status
        .success());
    let copy = dir.path().join("copy.db");
    let copy_s = copy.to_str().unwrap();
    let out = juhe(&["backup", "--to", copy_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["bytes"].as_u64().unwrap() > 0, "{v}");
    let again = juhe(&["backup", "--to", copy_s]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(juhe(&["backup", "--to", copy_s, "--force"])
        .status
        .success());
    // The copy is a database of its own with the merchant in it.
    let list = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["merchant", "list"])
        .env("JUHE_DATABASE_URL", format!("sqlite://{copy_s}"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "备份");
}

#[test]
fn backup_of_a_database_that_does_not_exist_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let copy = dir.path().join("copy.db");
    let out = Command::new(env!("CARGO_BIN_EXE_juhe"))
        .args(["backup", "--to", copy.to_str().unwrap()])
        .env(
            "JUHE_DATABASE_URL",
            format!("sqlite://{}", missing.display()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database at"), "{err}");
    assert!(!missing.exists(), "the mistyped database was created");
    assert!(!copy.exists(), "a copy of nothing was written");
}
