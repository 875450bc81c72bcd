//! Property tests: every `/v2` operation in the server's own `/openapi.json` (so a new
//! endpoint is covered the day it is described) gets bodies built from its documented
//! field names, in random case, with extreme and malformed values, and malformed bodies
//! whole. Whatever arrives, the answer is the envelope, never a 5xx, and a 400 names a field.

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Map, Value};

use crate::helpers::TestApp;
use crate::on_both;

const CASES: u32 = 64;

/// A `/v2` operation as described: method, path and the names of its body's fields.
struct Op {
    method: String,
    path: String,
    fields: Vec<String>,
}

fn resolve<'a>(v: &'a Value, doc: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(doc, |acc, k| &acc[k]))
            .unwrap_or(v),
        None => v,
    }
}

fn property_names(schema: &Value, doc: &Value, out: &mut Vec<String>) {
    let s = resolve(schema, doc);
    if let Some(p) = s.get("properties").and_then(Value::as_object) {
        out.extend(p.keys().cloned());
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        for sub in s.get(k).and_then(Value::as_array).into_iter().flatten() {
            property_names(sub, doc, out);
        }
    }
}

async fn operations(app: &TestApp) -> Vec<Op> {
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v2/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let mut fields = Vec::new();
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for c in content.values() {
                    property_names(&c["schema"], &doc, &mut fields);
                }
            }
            fields.sort();
            fields.dedup();
            ops.push(Op {
                method: method.to_uppercase(),
                path: path.clone(),
                fields,
            });
        }
    }
    assert!(
        ops.len() >= 19,
        "expected every /v2 operation, found {}",
        ops.len()
    );
    ops
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |v, i| {
        if i % 2 == 0 {
            json!([v])
        } else {
            json!({"a": v})
        }
    })
}

/// Values at and beyond the edges: numbers that overflow or mean nothing, times outside
/// any calendar, long strings and lists, NUL, wrong JSON types, deep nesting, and some
/// plain random values and plausible ones so that requests also get past validation.
fn value() -> impl Strategy<Value = Value> {
    let fixed: Vec<Value> = vec![
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(9_223_372_036_854_775_808u64),
        json!(1e308),
        json!(-1e308),
        json!(-1),
        json!(0),
        json!(1),
        json!(0.5),
        json!(-0.0),
        json!(1e-300),
        json!(4_133_980_800i64),
        json!(100_000_000_000i64),
        json!(253_402_300_800_000i64),
        json!(135389),
        json!("1e308"),
        json!("9223372036854775808"),
        json!("-1"),
        json!(" 42 "),
        json!("NaN"),
        json!("Infinity"),
        json!("0x10"),
        json!("9999-12-31 23:59:59"),
        json!("0001-01-01"),
        json!("2024-02-30 10:00:00"),
        json!("2024-05-02 10:00:00"),
        json!("+275760-09-13T00:00:00Z"),
        json!("wxid_fan0001"),
        json!("S001"),
        json!("x".repeat(60_000)),
        json!("%_\\".repeat(20_000)),
        json!("中".repeat(20_001)),
        json!("a\u{0}b"),
        json!("\u{0}"),
        json!(vec!["S001"; 40_000]),
        json!(vec![1; 40_000]),
        json!(vec![Value::Null; 40_000]),
        json!(vec![",".repeat(10); 1_000].join(",")),
        json!(vec!["a"; 40_000].join(",")),
        nested(120),
        nested(130),
        json!(true),
        Value::Null,
        json!({}),
        json!([]),
        json!([1, "a", null, {}]),
        json!([{"type": "0", "data": {"content": "hi"}}]),
        json!([{"type": "1", "data": {"imgName": "\u{0}"}}]),
        json!("[{\"type\": 0, \"data\": {\"content\": \"x\"}}]"),
        json!(vec![
            json!({"type": "0", "data": {"content": "y".repeat(20_001)}});
            3
        ]),
    ];
    prop_oneof![
        6 => select(fixed),
        1 => any::<i64>().prop_map(|v| json!(v)),
        1 => any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(|v| json!(v)),
        1 => any::<String>().prop_map(Value::String),
        1 => proptest::collection::vec(any::<String>(), 0..8).prop_map(|v| json!(v)),
    ]
}

/// A documented field name with its letters' case flipped at random (the original binds
/// names case-insensitively), or now and then a random key.
fn key(fields: Vec<String>) -> BoxedStrategy<String> {
    if fields.is_empty() {
        return any::<String>().boxed();
    }
    let mangled = (select(fields), any::<u64>()).prop_map(|(f, bits)| {
        // A third of the names exactly as documented, the rest in a random case.
        if bits % 3 == 0 {
            f
        } else {
            recase(&f, bits)
        }
    });
    prop_oneof![6 => mangled, 1 => any::<String>()].boxed()
}

/// A request: its content type and body bytes.
fn request(fields: Vec<String>) -> impl Strategy<Value = (Option<&'static str>, Vec<u8>)> {
    let object = proptest::collection::vec((key(fields.clone()), value()), 0..6).prop_map(|kv| {
        let m: Map<String, Value> = kv.into_iter().collect();
        serde_json::to_vec(&Value::Object(m)).unwrap()
    });
    let first = fields.first().cloned().unwrap_or_else(|| "x".into());
    let broken = select(vec![
        // Invalid UTF-8 inside a string of a documented field.
        [
            format!("{{\"{first}\": \"a").into_bytes(),
            vec![0xff, 0xc0, 0x80],
            b"\"}".to_vec(),
        ]
        .concat(),
        format!("{{\"{first}\": \"\\ud800\"}}").into_bytes(),
        format!("{{\"{first}\": ").into_bytes(),
        format!("[{{\"{first}\": 1}}]").into_bytes(),
        b"\"just text\"".to_vec(),
        b"-12e400".to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
        b"a=1&b=2".to_vec(),
        vec![0x00, 0xff, 0x7b],
        format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes(),
        format!(
            "{{\"{first}\": {}1{}}}",
            "{\"a\":".repeat(300),
            "}".repeat(300)
        )
        .into_bytes(),
    ]);
    let content_type = select(vec![
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ]);
    (content_type, prop_oneof![5 => object, 1 => broken])
}

/// Checks one answer; `fields` are the operation's documented names.
fn check(op: &Op, status: u16, text: &str, fields: &[String]) -> Result<(), String> {
    if status >= 500 {
        return Err(format!("HTTP {status}: {text}"));
    }
    let v: Value =
        serde_json::from_str(text).map_err(|_| format!("not JSON ({status}): {text}"))?;
    for k in [
        "requestId",
        "errmsg",
        "succeed",
        "msgTime",
        "values",
        "errdesc",
    ] {
        if v.get(k).is_none() {
            return Err(format!("no {k} in the envelope ({status}): {text}"));
        }
    }
    let succeeded = v["succeed"] == true;
    if succeeded != (status == 200) || succeeded != (v["errmsg"] == 20000) {
        return Err(format!(
            "status, succeed and errmsg disagree ({status}): {text}"
        ));
    }
    if status == 400 {
        if v["errmsg"] != 200012 {
            return Err(format!("a 400 without 200012: {text}"));
        }
        let d = v["errdesc"].as_str().unwrap_or("");
        let head = d.split(':').next().unwrap_or("");
        let name = head.split(['[', '.']).next().unwrap_or("");
        let known = name == "body" || fields.iter().any(|f| f.eq_ignore_ascii_case(name));
        if !known {
            return Err(format!(
                "{} {}: errdesc names no field of the operation: {d:?}",
                op.method, op.path
            ));
        }
    }
    Ok(())
}

async fn exercise(app: &TestApp) {
    let t = app.fixture_merchant("m").await;
    let ops = operations(app).await;
    let handle = tokio::runtime::Handle::current();
    for op in &ops {
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: CASES,
                failure_persistence: None,
                max_shrink_iters: 32,
                ..Config::default()
            },
            TestRng::deterministic_rng(Config::default().rng_algorithm),
        );
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let result = tokio::task::block_in_place(|| {
            runner.run(&request(op.fields.clone()), |(ct, body)| {
                let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
                let (status, text) = handle.block_on(async {
                    let mut r = app
                        .http
                        .request(method.clone(), format!("{}{}", app.base, op.path))
                        .bearer_auth(&t.token)
                        .body(body);
                    if let Some(ct) = ct {
                        r = r.header("content-type", ct);
                    }
                    let r = r.send().await.unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                });
                check(op, status, &text, &op.fields)
                    .map_err(|e| TestCaseError::fail(format!("{e}\n  request ({ct:?}): {shown}")))
            })
        });
        if let Err(e) = result {
            panic!("{} {}: {e}", op.method, op.path);
        }
    }
}

/// `name` with each letter's case taken from a bit of `bits`.
fn recase(name: &str, bits: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if bits >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

on_both! {
    async fn every_v2_endpoint_answers_extreme_and_malformed_bodies_with_the_envelope_never_a_5xx(app) {
        exercise(&app).await;
    }

    async fn get_chat_answers_the_same_whatever_the_case_of_its_field_names(app) {
        let t = app.fixture_merchant("m").await;
        let body = |bits: [u64; 4]| {
            json!({
                recase("wechatId", bits[0]): 135389,
                recase("fansKey", bits[1]): "wxid_fan0001",
                recase("pageSize", bits[2]): 2,
                recase("pageIndex", bits[3]): 2,
            })
        };
        let want = app.ok("/v2/ChatMess/GetChat", &t.token, json!({"wechatId": 135389, "fansKey": "wxid_fan0001", "pageSize": 2, "pageIndex": 2})).await;
        assert_eq!(want["values"].as_array().unwrap().len(), 2);
        let handle = tokio::runtime::Handle::current();
        let mut runner = TestRunner::new_with_rng(
            Config { cases: 32, failure_persistence: None, ..Config::default() },
            TestRng::deterministic_rng(Config::default().rng_algorithm),
        );
        let result = tokio::task::block_in_place(|| {
            runner.run(&any::<[u64; 4]>(), |bits| {
                let got = handle.block_on(app.ok("/v2/ChatMess/GetChat", &t.token, body(bits)));
                prop_assert_eq!(&got["values"], &want["values"], "body {}", body(bits));
                prop_assert_eq!(&got["page"], &want["page"]);
                Ok(())
            })
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
