use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::on_both;

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/connect/token", app.base))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

on_both! {
    async fn the_token_endpoint_issues_an_opaque_bearer_token_that_expires_in_7200_seconds(app) {
        let c = app.store.admin().create_merchant("m").await.unwrap();
        let (s, v) = token_request(&app, &[("grant_type", "client_credentials"), ("scope", "Ls.Qkl.PublicApi"), ("client_id", &c.client_id), ("client_secret", &c.client_secret)]).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], 7200);
        assert_eq!(v["scope"], "Ls.Qkl.PublicApi");
        let token = v["access_token"].as_str().unwrap();
        assert!(token.len() >= 32);
        app.values("/v2/System/GetDepartList", token, json!({})).await;
    }

    async fn the_token_endpoint_answers_rfc_6749_errors(app) {
        let c = app.store.admin().create_merchant("m").await.unwrap();
        let (s, v) = token_request(&app, &[("grant_type", "client_credentials"), ("client_id", &c.client_id), ("client_secret", "wrong")]).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (401, "invalid_client"));
        let (s, v) = token_request(&app, &[("grant_type", "client_credentials"), ("client_id", "nobody"), ("client_secret", "x")]).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (401, "invalid_client"));
        let (s, v) = token_request(&app, &[("grant_type", "password"), ("client_id", &c.client_id), ("client_secret", &c.client_secret)]).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (400, "unsupported_grant_type"));
        let (s, v) = token_request(&app, &[("grant_type", "client_credentials"), ("scope", "admin"), ("client_id", &c.client_id), ("client_secret", &c.client_secret)]).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_scope"));
    }

    async fn client_credentials_may_come_by_http_basic(app) {
        let c = app.store.admin().create_merchant("m").await.unwrap();
        let r = app.http.post(format!("{}/connect/token", app.base)).basic_auth(&c.client_id, Some(&c.client_secret)).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn a_request_without_a_token_is_a_200001_and_a_bad_token_a_10003(app) {
        let r = app.http.post(format!("{}/v2/System/GetDepartGroupList", app.base)).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errmsg"], 200001);
        assert!(v["errdesc"].as_str().unwrap().starts_with("Authorization"));
        app.fails("/v2/System/GetDepartGroupList", "not-a-token", json!({}), 401, 10003).await;
    }

    async fn revoking_a_merchants_tokens_takes_effect_at_once(app) {
        let t = app.merchant("m").await;
        app.values("/v2/System/GetDepartList", &t.token, json!({})).await;
        let n = app.store.admin().revoke_merchant_tokens(t.id).await.unwrap();
        assert_eq!(n, 1);
        app.fails("/v2/System/GetDepartList", &t.token, json!({}), 401, 10003).await;
    }

    async fn an_expired_token_is_refused(app) {
        let t = app.merchant("m").await;
        let mut raw = app.raw().await;
        sqlx::Executor::execute(&mut raw, "UPDATE access_tokens SET expires_at = 1").await.unwrap();
        app.fails("/v2/System/GetDepartList", &t.token, json!({}), 401, 10003).await;
    }

    async fn secrets_and_tokens_are_stored_only_as_hashes(app) {
        let c = app.store.admin().create_merchant("m").await.unwrap();
        let token = app.token(&c.client_id, &c.client_secret).await;
        let mut raw = app.raw().await;
        let rows: Vec<(String,)> = sqlx::query_as("SELECT secret_hash FROM api_clients").fetch_all(&mut raw).await.unwrap();
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|(h,)| h != &c.client_secret && h.len() == 64));
        let rows: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM access_tokens").fetch_all(&mut raw).await.unwrap();
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|(h,)| h != &token));
    }

    async fn an_agent_acts_for_a_linked_merchant_named_in_tenant_id(app) {
        let m = app.fixture_merchant("m").await;
        let a = app.store.admin().create_agent("agent").await.unwrap();
        app.store.admin().link_agent(a.agent_id, m.id).await.unwrap();
        let token = app.token(&a.client_id, &a.client_secret).await;
        let r = app.http.get(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth(&token).header("TenantId", m.id.get().to_string()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["values"].as_array().unwrap().len(), 2);
    }

    async fn an_agent_cannot_reach_an_unlinked_merchant_or_omit_tenant_id(app) {
        let linked = app.fixture_merchant("linked").await;
        let other = app.fixture_merchant("other").await;
        let a = app.store.admin().create_agent("agent").await.unwrap();
        app.store.admin().link_agent(a.agent_id, linked.id).await.unwrap();
        let token = app.token(&a.client_id, &a.client_secret).await;
        for tenant in [Some(other.id.get().to_string()), None, Some("abc".to_string())] {
            let mut req = app.http.get(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth(&token);
            if let Some(t) = &tenant {
                req = req.header("TenantId", t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 403, "TenantId {tenant:?}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["errmsg"], 200104);
            assert!(v["values"].is_null());
        }
        // A merchant's own token may not name another merchant either.
        let r = app.http.get(format!("{}/v2/System/GetDepartList", app.base)).bearer_auth(&linked.token).header("TenantId", other.id.get().to_string()).send().await.unwrap();
        assert_eq!(r.status(), 403);
    }
}

mod rate_limit {
    use super::*;
    use crate::helpers::Db;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_merchant_over_its_rate_gets_429_with_retry_after_and_the_envelope_while_others_continue(
    ) {
        let app = TestApp::spawn_with(Db::Sqlite, |c| {
            c.rate_limit.per_second = 1;
            c.rate_limit.burst = 3;
        })
        .await
        .unwrap();
        let busy = app.merchant("busy").await;
        let calm = app.merchant("calm").await;
        for _ in 0..3 {
            app.values("/v2/System/GetDepartList", &busy.token, json!({}))
                .await;
        }
        let r = app
            .http
            .post(format!("{}/v2/System/GetDepartList", app.base))
            .bearer_auth(&busy.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errmsg"], 200103);
        assert!(v["errdesc"].as_str().unwrap().contains("retry after"));
        app.values("/v2/System/GetDepartList", &calm.token, json!({}))
            .await;
    }
}
