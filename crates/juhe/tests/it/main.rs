//! Black-box tests: the real server on a random port, one database per test, every test
//! on SQLite and again on PostgreSQL when JUHE_TEST_POSTGRES_URL is set.

mod helpers;

mod activation;
mod assistant;
mod auth;
mod bulk_run;
mod bulk_send;
mod chat;
mod device_client;
mod durability;
mod envelope;
mod events;
mod feed;
mod gateway;
mod import;
mod input;
mod lists;
mod notification;
mod openapi;
mod ops;
mod ops_hardening;
mod props;
mod recording;
mod report;
mod sync;
mod takeover;
mod tenancy;
mod todo;
mod write_path;

/// CI sets JUHE_REQUIRE_POSTGRES=1: then a missing PostgreSQL URL is a failure, not a skip.
#[test]
fn postgres_tests_run_when_ci_requires_them() {
    if std::env::var("JUHE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        assert!(
            helpers::pg_admin_url().is_some(),
            "JUHE_REQUIRE_POSTGRES=1 but JUHE_TEST_POSTGRES_URL is not set"
        );
    }
}

/// One line in `cargo test` output saying how many PostgreSQL variants run or are skipped,
/// and why. The count comes from this binary's own test list, so it cannot drift.
#[test]
fn postgres_summary() {
    use std::io::Write;
    let list = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap();
    let n = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| l.contains("::postgres::"))
        .count();
    assert!(n > 0, "no PostgreSQL variants found in the test list");
    let line = match helpers::pg_admin_url() {
        Some(url) => format!(
            "PostgreSQL: {n} tests run against {}",
            juhe::store::redact(&url)
        ),
        None => format!("PostgreSQL: {n} tests skipped: JUHE_TEST_POSTGRES_URL is not set"),
    };
    let _ = writeln!(std::io::stderr(), "\n{line}");
}
