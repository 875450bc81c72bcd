//! Cost of reading a GetChat body: the case-insensitive, unknown-field-noting parser the
//! server uses against a plain `serde_path_to_error` + `serde_json` parse of the same type.
//! `cargo run --release -p juhe --example parse_body` (numbers in docs/benchmarks.md).

use std::hint::black_box;
use std::time::Instant;

use juhe::http::chat::GetChatIn;
use juhe::http::extract::parse_body_noting;

const N: u32 = 1_000_000;

fn plain(bytes: &[u8]) -> GetChatIn {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).unwrap()
}

fn time(label: &str, f: impl Fn() -> GetChatIn) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / f64::from(N)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "{label:<48} median {:>6.1} ns/parse (runs: {runs:.1?})",
        runs[2]
    );
    runs[2]
}

fn main() {
    let exact = br#"{"wechatId": 135389, "fansKey": "wxid_fan0001", "minChattingId": 123456, "pageSize": 50, "pageIndex": 1}"#;
    let lower = br#"{"wechatid": 135389, "fanskey": "wxid_fan0001", "minchattingid": 123456, "pagesize": 50, "pageindex": 1}"#;
    let extra = br#"{"wechatId": 135389, "fansKey": "wxid_fan0001", "minChattingId": 123456, "pageSize": 50, "pageIndex": 1, "fanskee": "x", "foo": {"a": [1, 2]}}"#;
    time("serde_path_to_error + serde_json, exact names", || {
        plain(exact)
    });
    time("parse_body_noting, exact names", || {
        parse_body_noting(exact, &mut Vec::new()).unwrap()
    });
    time("parse_body_noting, lower-case names", || {
        parse_body_noting(lower, &mut Vec::new()).unwrap()
    });
    time("parse_body_noting, two unknown fields", || {
        parse_body_noting(extra, &mut Vec::new()).unwrap()
    });
}
