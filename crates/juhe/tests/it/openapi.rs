//! The OpenAPI description is something a client can be generated from and trusted: every
//! answer an operation can give is described, with the envelope, and the examples work.

use serde_json::{json, Value};

use crate::on_both;

async fn spec(app: &crate::helpers::TestApp) -> Value {
    app.http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn resolve<'a>(v: &'a Value, root: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => r
            .trim_start_matches("#/")
            .split('/')
            .fold(root, |acc, k| &acc[k]),
        None => v,
    }
}

/// Every (path, method, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

const IDEMPOTENT: [&str; 6] = [
    "/v2/ChatMess/doSendPublicMes",
    "/v2/Todo/AddRecord",
    "/v2/Todo/AddRecordNew",
    "/v2/BulkSend/SaveBulkSendTask",
    "/v2/ChatMess/ActivationConversation",
    "/v2/ChatMess/SendNotification",
];

#[tokio::test]
async fn every_v2_operation_documents_each_error_status_with_the_error_envelope() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite)
        .await
        .unwrap();
    let doc = spec(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 23, "{}", ops.len());
    for (path, method, op) in ops.iter().filter(|(p, _, _)| p.starts_with("/v2/")) {
        for status in [
            "400", "401", "403", "404", "405", "409", "413", "429", "500", "503",
        ] {
            let r = &op["responses"][status];
            assert_eq!(
                r["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorEnvelope",
                "{method} {path} {status}: {r}"
            );
        }
        assert_eq!(
            op["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"],
            "integer"
        );
    }
    let env = &doc["components"]["schemas"]["ErrorEnvelope"];
    assert_eq!(env["properties"]["values"]["type"], "null");
    assert_eq!(
        env["properties"]["requestId"]["type"],
        json!(["string", "null"])
    );
    let required: Vec<&str> = env["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        [
            "requestId",
            "errmsg",
            "succeed",
            "msgTime",
            "values",
            "errdesc"
        ]
    );
}

#[tokio::test]
async fn every_v2_operation_takes_the_tenant_header_and_only_writes_take_an_idempotency_key() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite)
        .await
        .unwrap();
    let doc = spec(&app).await;
    for (path, method, op) in operations(&doc)
        .iter()
        .filter(|(p, _, _)| p.starts_with("/v2/"))
    {
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"TenantId"), "{method} {path}: {names:?}");
        assert_eq!(
            names.iter().filter(|n| **n == "Idempotency-Key").count(),
            usize::from(IDEMPOTENT.contains(&path.as_str())),
            "{method} {path}: {names:?}"
        );
        if op.get("requestBody").is_some() {
            // An empty body is read as `{}`, so the body is optional.
            assert_eq!(op["requestBody"]["required"], false, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn response_objects_list_every_field_as_required_and_say_which_can_be_null() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite)
        .await
        .unwrap();
    let doc = spec(&app).await;
    let chat = &doc["components"]["schemas"]["ChatRecord"];
    assert_eq!(chat["required"].as_array().unwrap().len(), 17, "{chat}");
    assert_eq!(
        chat["properties"]["ad_chatting_resvred"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(chat["properties"]["ad_chatting_id"]["type"], "integer");
    // A list envelope always carries `page`; a single value's envelope never does.
    let ok = |path: &str| {
        resolve(
            &doc["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
                ["schema"],
            &doc,
        )
        .clone()
    };
    let list = ok("/v2/ChatMess/GetChatFeed");
    assert!(list["required"]
        .as_array()
        .unwrap()
        .contains(&json!("page")));
    assert_eq!(
        list["properties"]["page"]["$ref"],
        "#/components/schemas/PageInfo"
    );
    assert_eq!(
        list["properties"]["errdesc"]["type"],
        json!(["string", "null"])
    );
    let count = ok("/v2/Friend/GetFansCount");
    assert!(count["properties"].get("page").is_none(), "{count}");
    assert!(count["required"]
        .as_array()
        .unwrap()
        .contains(&json!("errdesc")));
}

on_both! {
    async fn every_request_example_in_the_document_gets_a_documented_answer_from_the_fixture(app) {
        let t = app.fixture_merchant("m").await;
        crate::assistant::serve_fixture_account(&app, &t).await;
        let doc = spec(&app).await;
        let mut ops: Vec<(String, String, Value)> = operations(&doc)
            .into_iter()
            .filter(|(p, _, _)| p.starts_with("/v2/"))
            .collect();
        // Create the bulk-send task first, read it, delete it last.
        // Callbacks first, so that the actions' examples emit the events that GetEvent's
        // example reads; the deletions last.
        let rank = |p: &str| match p {
            "/v2/BulkSend/SaveBulkSendTask" | "/v2/Public/registerCallbackUrl" | "/v2/Public/subscribeEvent" => 0,
            "/v2/BulkSend/DeleteBulkSendTask" | "/v2/Public/deleteCallback" => 2,
            _ => 1,
        };
        ops.sort_by_key(|(p, _, _)| rank(p));
        let mut task_id = None;
        for (path, method, op) in ops {
            let ok_schema = &op["responses"]["200"]["content"]["application/json"];
            assert!(ok_schema.get("example").is_some(), "{method} {path}: no response example");
            let mut body = match op.get("requestBody") {
                Some(rb) => rb["content"]["application/json"]["example"].clone(),
                None => Value::Null,
            };
            if op.get("requestBody").is_some() {
                assert!(body.is_object(), "{method} {path}: no request example");
            }
            if let (Some(id), Some(o)) = (task_id, body.as_object_mut()) {
                if o.contains_key("ad_bulk_send_id") {
                    o.insert("ad_bulk_send_id".into(), json!(id));
                }
            }
            let req = if method == "get" {
                app.http.get(format!("{}{}", app.base, path))
            } else {
                app.http.post(format!("{}{}", app.base, path)).json(&body)
            };
            let r = req.bearer_auth(&t.token).send().await.unwrap();
            assert_eq!(r.status(), 200, "{method} {path} with its example");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["errmsg"], 20000, "{method} {path}: {v}");
            // The answer has exactly the fields the schema requires.
            let schema = resolve(&ok_schema["schema"], &doc);
            let mut want: Vec<String> = schema["required"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect();
            let mut got: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{method} {path}: {v}");
            if path == "/v2/BulkSend/SaveBulkSendTask" {
                task_id = v["values"].as_i64();
            }
        }
        assert!(task_id.is_some());
    }

    async fn the_required_lists_name_exactly_what_the_server_requires(app) {
        let t = app.fixture_merchant("m").await;
        crate::assistant::serve_fixture_account(&app, &t).await;
        let doc = spec(&app).await;
        for (path, _, op) in operations(&doc).iter().filter(|(p, _, op)| p.starts_with("/v2/") && op.get("requestBody").is_some()) {
            let content = &op["requestBody"]["content"]["application/json"];
            let schema = resolve(&content["schema"], &doc);
            let example = content["example"].as_object().unwrap().clone();
            let required: Vec<String> = schema["required"]
                .as_array()
                .map(|r| r.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            // Without any one required field: refused, naming that field.
            for f in &required {
                assert!(example.contains_key(f), "{path}: the example lacks required {f}");
                let mut body = example.clone();
                body.remove(f);
                let e = app.fails(path, &t.token, Value::Object(body), 400, 200012).await;
                assert!(e.starts_with(f.as_str()), "{path} without {f}: {e}");
            }
            // With only the required fields: accepted (nothing else is required). Reads of a
            // bulk-send task need one that exists, so those only check the refusals above.
            if path.contains("BulkSendTask") && !path.ends_with("SaveBulkSendTask") {
                continue;
            }
            // Likewise an event or an endpoint: they need one that exists.
            if ["/v2/Public/GetEvent", "/v2/Public/GetEventAttempts", "/v2/Public/replayEvent", "/v2/Public/updateCallback", "/v2/Public/deleteCallback"].contains(&path.as_str()) {
                continue;
            }
            // doSendPublicMes requires more by MsgType (Text for text, Url for image, …;
            // docs/api.md): the always-required three alone are refused, naming the field
            // the type needs.
            if path.ends_with("doSendPublicMes") {
                continue;
            }
            let only: serde_json::Map<String, Value> = example
                .into_iter()
                .filter(|(k, _)| required.contains(k))
                .collect();
            app.ok(path, &t.token, Value::Object(only)).await;
        }
    }
}

#[tokio::test]
async fn the_docs_page_has_a_table_of_contents_the_message_types_paging_and_examples() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Db::Sqlite)
        .await
        .unwrap();
    let r = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("text/html"));
    let html = r.text().await.unwrap();
    let doc = spec(&app).await;
    // Every operation has an anchor, and the table of contents links to it.
    for (path, method, _) in operations(&doc) {
        let several = doc["paths"][&path].as_object().unwrap().len() > 1;
        let mut id: String = path
            .trim_start_matches('/')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if several {
            id = format!("{id}-{method}");
        }
        assert!(html.contains(&format!("id=\"{id}\"")), "no anchor {id}");
        assert!(html.contains(&format!("href=\"#{id}\"")), "no link to {id}");
    }
    for section in ["conventions", "paging", "result-codes", "message-types"] {
        assert!(
            html.contains(&format!("id={section}")),
            "no section {section}"
        );
        assert!(
            html.contains(&format!("href=\"#{section}\"")),
            "no link to {section}"
        );
    }
    // The GetChat message types, first to last, with their payload formats.
    for needle in [
        "id=\"msg-1\"",
        "id=\"msg-4933\"",
        "id=\"msg-12001\"",
        "appIconUrl",
        "nextMinChattingId",
    ] {
        assert!(html.contains(needle), "{needle} missing from /docs");
    }
    let request_examples: usize = operations(&doc)
        .iter()
        .filter_map(|(_, _, op)| op["requestBody"]["content"].as_object())
        .map(|c| c.values().filter(|m| m.get("example").is_some()).count())
        .sum();
    assert!(request_examples >= 22, "{request_examples}");
    assert_eq!(html.matches("Example request:").count(), request_examples);
    assert!(html.matches("Example response").count() >= operations(&doc).len());
    assert!(
        html.contains("<span class=req>required</span> 粉丝标识"),
        "required fields are marked"
    );
    // CJK falls back to the fonts desktops have, on every platform.
    for font in [
        "PingFang SC",
        "Microsoft YaHei",
        "Noto Sans CJK SC",
        "Source Han Sans SC",
    ] {
        assert!(
            html.contains(&format!("\"{font}\"")),
            "font stack lacks {font}"
        );
    }
}
