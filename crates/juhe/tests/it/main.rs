//! Black-box tests: the real server on a random port, one database per test, every test
//! on SQLite and again on PostgreSQL when JUHE_TEST_POSTGRES_URL is set.

mod helpers;

mod auth;
mod bulk_send;
mod chat;
mod envelope;
mod import;
mod lists;
mod ops;
mod report;
mod sync;
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
