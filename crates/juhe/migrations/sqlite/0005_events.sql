-- Events (docs/events.md): webhook endpoints, the merchant's signing secret, the transactional
-- outbox, per-conversation sequence numbers, pending deliveries and the attempt log.
-- Keep in step with ../postgres/0005_events.sql. Times ending in _ms are Unix milliseconds
-- (delivery latency and retry pacing work below a second), the others Unix seconds.

-- A callback URL (回调地址) of a merchant and the event types it receives (`*` = all, else a
-- comma-separated list). registrant is registerCallbackUrl's `type` (100 企客宝, 200 金桥).
-- failing_since: the first failure of the current run of failures (NULL while healthy); an
-- endpoint failing for webhooks.disable_after_seconds is disabled (enabled = 0).
CREATE TABLE webhook_endpoints (
    merchant_id INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    app_id TEXT NOT NULL DEFAULT '',
    registrant INTEGER NOT NULL DEFAULT 0,
    event_types TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    failing_since INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, endpoint_id)
);
CREATE UNIQUE INDEX webhook_endpoints_url ON webhook_endpoints (merchant_id, url);

-- The merchant's Standard Webhooks secret (`whsec_…`). After a rotation the previous secret
-- keeps signing (a second signature) until previous_until.
CREATE TABLE webhook_secrets (
    merchant_id INTEGER NOT NULL PRIMARY KEY,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_until INTEGER,
    rotated_at INTEGER NOT NULL
);

-- The outbox: one row per event, written in the transaction of the change that caused it.
-- event_id comes from id_counters ('event'), so ids become visible in commit order. A
-- conversation event carries its account, fan and its sequence number within (conversation,
-- type). data is the event's facts as Juhe stores them; the delivery renders the documented
-- payload from it.
CREATE TABLE events (
    merchant_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    wechat_id INTEGER,
    fan_key TEXT,
    seq INTEGER,
    data TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, event_id)
);
CREATE INDEX events_created ON events (created_ms);
CREATE INDEX events_type ON events (merchant_id, event_type, event_id);

CREATE TABLE event_seqs (
    merchant_id INTEGER NOT NULL,
    wechat_id INTEGER NOT NULL,
    fan_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, wechat_id, fan_key, event_type)
);

-- What is still to be delivered: one row per (event, endpoint) until it succeeds or gives up
-- (then the row goes and delivery_attempts keeps the story), so this table stays small.
-- next_attempt_ms doubles as the lease: a claimed row is pushed past the attempt's timeout,
-- so a worker that dies leaves a row that becomes due again. attempts counts this round
-- (the retry schedule's position; a replay starts a new round), total_attempts every attempt
-- ever made, and fences a late worker whose lease another worker has taken over.
CREATE TABLE deliveries (
    merchant_id INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    total_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, endpoint_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (merchant_id, endpoint_id, next_attempt_ms, event_id);

-- Every attempt. outcome: succeeded, retrying (failed, another attempt is scheduled), failed
-- (failed, no attempt left), or skipped (not sent: the target was refused or the endpoint
-- is gone). status is the HTTP status, 0 when there was no response.
CREATE TABLE delivery_attempts (
    merchant_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    response TEXT,
    PRIMARY KEY (merchant_id, event_id, endpoint_id, attempt)
);
CREATE INDEX delivery_attempts_time ON delivery_attempts (merchant_id, attempted_ms);
