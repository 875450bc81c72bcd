-- Juhe schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql: the same
-- tables, columns and keys; the contract tests run the whole suite on both.
-- Conventions: times are Unix seconds (UTC) in INTEGER columns and are rendered in the
-- configured offset at the edge; every merchant-owned table leads its primary key with
-- merchant_id, so PostgreSQL can later distribute these tables by merchant (Citus).

CREATE TABLE merchants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE agent_merchants (
    agent_id INTEGER NOT NULL,
    merchant_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, merchant_id)
);

-- OAuth2 client credentials. owner_kind is 'merchant' or 'agent'. The secret is stored
-- as a SHA-256 hash: secrets are 256-bit random values, so a slow password hash adds
-- nothing but latency to every token request.
CREATE TABLE api_clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    owner_kind TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Opaque bearer tokens, stored hashed; deleting a row revokes the token at once.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    owner_kind TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX access_tokens_owner ON access_tokens (owner_kind, owner_id);

-- Per-merchant id counters. Taking an id is an UPDATE of this row inside the inserting
-- transaction, so ids of one merchant become visible in order (see docs/api.md,
-- "Incremental sync").
CREATE TABLE id_counters (
    merchant_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    last_id INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, kind)
);

CREATE TABLE departments (
    merchant_id INTEGER NOT NULL,
    departid INTEGER NOT NULL,
    departname TEXT NOT NULL,
    PRIMARY KEY (merchant_id, departid)
);

CREATE TABLE depart_groups (
    merchant_id INTEGER NOT NULL,
    departgroupid INTEGER NOT NULL,
    departid INTEGER NOT NULL,
    departgroupname TEXT NOT NULL,
    PRIMARY KEY (merchant_id, departgroupid)
);

CREATE TABLE staff (
    merchant_id INTEGER NOT NULL,
    staff_code TEXT NOT NULL,
    staff_name TEXT NOT NULL,
    departid INTEGER NOT NULL,
    departgroupid INTEGER NOT NULL,
    staff_state INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, staff_code)
);

CREATE TABLE wechats (
    merchant_id INTEGER NOT NULL,
    wechat_id INTEGER NOT NULL,
    wechat_nober TEXT NOT NULL,
    wechat_nick TEXT NOT NULL,
    original_nober TEXT NOT NULL,
    wechat_lei INTEGER NOT NULL,
    staff_code TEXT,
    addtime INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, wechat_id)
);
CREATE UNIQUE INDEX wechats_original ON wechats (merchant_id, original_nober);

CREATE TABLE fans (
    merchant_id INTEGER NOT NULL,
    fan_id INTEGER NOT NULL,
    wechat_id INTEGER NOT NULL,
    wenober TEXT NOT NULL,
    uwenober TEXT NOT NULL,
    name TEXT NOT NULL,
    photo TEXT NOT NULL,
    staff_code TEXT,
    relation_scene INTEGER NOT NULL,
    relation_state INTEGER NOT NULL,
    relation_isflock INTEGER NOT NULL,
    addtime INTEGER NOT NULL,
    bind_time INTEGER,
    last_chat_time INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, fan_id)
);
CREATE UNIQUE INDEX fans_key ON fans (merchant_id, wechat_id, wenober);
CREATE INDEX fans_wenober ON fans (merchant_id, wenober);

CREATE TABLE ads (
    merchant_id INTEGER NOT NULL,
    ad_id INTEGER NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    costs REAL NOT NULL,
    state INTEGER NOT NULL,
    build_type INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, ad_id)
);
CREATE UNIQUE INDEX ads_code ON ads (merchant_id, code);

CREATE TABLE chats (
    merchant_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    wechat_id INTEGER NOT NULL,
    talker TEXT NOT NULL,
    issend INTEGER NOT NULL,
    msg_type INTEGER NOT NULL,
    content TEXT NOT NULL,
    resvred TEXT,
    sermsgid TEXT NOT NULL,
    chat_time INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    staff_code TEXT,
    voice_txt TEXT,
    expand TEXT NOT NULL,
    -- Clustered by conversation (SQLite only: WITHOUT ROWID stores rows in primary-key
    -- order), so one GetChat page reads a few adjacent pages instead of one page per
    -- message. (merchant_id, chat_id) stays unique through chats_id.
    PRIMARY KEY (merchant_id, wechat_id, talker, chat_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX chats_id ON chats (merchant_id, chat_id);
CREATE UNIQUE INDEX chats_sermsgid ON chats (merchant_id, wechat_id, sermsgid);
CREATE INDEX chats_time ON chats (merchant_id, chat_time);

CREATE TABLE todos (
    merchant_id INTEGER NOT NULL,
    todo_id INTEGER NOT NULL,
    weixin TEXT NOT NULL,
    from_type INTEGER NOT NULL,
    sff_id TEXT,
    remind_title TEXT NOT NULL,
    content TEXT NOT NULL,
    remind_time INTEGER NOT NULL,
    is_always INTEGER NOT NULL,
    recipients TEXT NOT NULL,
    wechat_id INTEGER NOT NULL,
    level_color TEXT,
    level_name TEXT,
    event_type INTEGER,
    state INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, todo_id)
);
CREATE INDEX todos_created ON todos (merchant_id, created_at);

CREATE TABLE bulk_send_tasks (
    merchant_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    task_name TEXT NOT NULL,
    wechat_ids TEXT NOT NULL,
    fans_keys TEXT NOT NULL,
    task_content TEXT NOT NULL,
    send_time INTEGER,
    interval_seconds INTEGER NOT NULL,
    staff_code TEXT,
    state INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER,
    PRIMARY KEY (merchant_id, task_id)
);

CREATE TABLE meeting_calls (
    merchant_id INTEGER NOT NULL,
    call_id INTEGER NOT NULL,
    msg_type TEXT NOT NULL,
    wechat_id INTEGER NOT NULL,
    staff_code TEXT NOT NULL,
    fans_key TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    duration INTEGER NOT NULL,
    voice_url TEXT NOT NULL,
    PRIMARY KEY (merchant_id, call_id)
);
CREATE UNIQUE INDEX meeting_calls_natural ON meeting_calls (merchant_id, wechat_id, fans_key, start_time, msg_type);

-- Remembered results of writes sent with an Idempotency-Key, written in the same
-- transaction as the write itself.
CREATE TABLE idempotency_keys (
    merchant_id INTEGER NOT NULL,
    idem_key TEXT NOT NULL,
    route TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, idem_key)
);
