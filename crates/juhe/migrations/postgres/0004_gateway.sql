-- The assistant gateway (docs/assistant-protocol.md): devices, the operating accounts they
-- serve, durable tasks for them, takeovers, activations and staff notifications.
-- Keep in step with ../sqlite/0004_gateway.sql.

-- An RPA assistant (助手) installation. Its token is stored as a SHA-256 hash, like API
-- tokens; revoked_at set means the token no longer connects (and open connections close).
CREATE TABLE devices (
    merchant_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_seen_at BIGINT,
    PRIMARY KEY (merchant_id, device_id)
);
CREATE UNIQUE INDEX devices_token ON devices (token_hash);
-- Every process polls for revocations (a revoked device is disconnected at once, wherever
-- it is connected).
CREATE INDEX devices_revoked ON devices (revoked_at) WHERE revoked_at IS NOT NULL;

-- The device that serves an operating account (NULL: imported, not yet claimed), whether
-- it is online, and when a task was last handed to it (milliseconds), so that pacing
-- survives a restart and is shared by every process.
ALTER TABLE wechats ADD COLUMN device_id BIGINT;
ALTER TABLE wechats ADD COLUMN online BIGINT NOT NULL DEFAULT 0;
ALTER TABLE wechats ADD COLUMN status_at BIGINT;
ALTER TABLE wechats ADD COLUMN last_task_at BIGINT NOT NULL DEFAULT 0;

-- What assistants report about fans beyond the import format.
ALTER TABLE fans ADD COLUMN remark TEXT NOT NULL DEFAULT '';
ALTER TABLE fans ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- Server -> assistant work, stored before it is sent. state: 0 pending, 1 delivered (sent
-- to the assistant, no result yet), 2 succeeded, 3 failed, 4 cancelled. Times in seconds
-- except not_before (milliseconds: pacing works below a second).
CREATE TABLE device_tasks (
    merchant_id BIGINT NOT NULL,
    task_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    wechat_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    finished_at BIGINT,
    result_code TEXT,
    result_message TEXT,
    sermsgid TEXT,
    chat_id BIGINT,
    bulk_task_id BIGINT,
    fan_key TEXT,
    PRIMARY KEY (merchant_id, task_id)
);
-- Only open tasks are in these two: the hot indexes stay small however long the history.
CREATE INDEX device_tasks_open ON device_tasks (merchant_id, device_id, task_id) WHERE state < 2;
CREATE INDEX device_tasks_expiry ON device_tasks (expires_at) WHERE state < 2;
-- The fallback poll: which devices have work due (pending, past its not_before).
CREATE INDEX device_tasks_due ON device_tasks (not_before) WHERE state = 0;
CREATE INDEX device_tasks_bulk ON device_tasks (merchant_id, bulk_task_id, task_id) WHERE bulk_task_id IS NOT NULL;

-- Takeover (托管/接管) of one conversation: a row per takeover with its history; at most
-- one open (ended_at IS NULL) per conversation.
CREATE TABLE takeovers (
    merchant_id BIGINT NOT NULL,
    takeover_id BIGINT NOT NULL,
    wechat_id BIGINT NOT NULL,
    fan_key TEXT NOT NULL,
    apply_key TEXT NOT NULL,
    apply_name TEXT NOT NULL,
    apply_reason TEXT NOT NULL,
    apply_source TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_key TEXT,
    end_name TEXT,
    end_reason TEXT,
    PRIMARY KEY (merchant_id, takeover_id)
);
CREATE UNIQUE INDEX takeovers_open ON takeovers (merchant_id, wechat_id, fan_key) WHERE ended_at IS NULL;
CREATE INDEX takeovers_conversation ON takeovers (merchant_id, wechat_id, fan_key, takeover_id);

-- ActivationConversation calls (激活会话).
CREATE TABLE activations (
    merchant_id BIGINT NOT NULL,
    activation_id BIGINT NOT NULL,
    wechat_id BIGINT NOT NULL,
    fan_key TEXT NOT NULL,
    staff_code TEXT NOT NULL,
    previous_staff_code TEXT,
    enforce_attribution BIGINT NOT NULL,
    activation_type BIGINT NOT NULL,
    switch_session BIGINT NOT NULL,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, activation_id)
);
CREATE INDEX activations_time ON activations (merchant_id, created_at);

-- Notices to staff (通知): one row per recipient.
CREATE TABLE notifications (
    merchant_id BIGINT NOT NULL,
    notification_id BIGINT NOT NULL,
    staff_code TEXT NOT NULL,
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    source TEXT NOT NULL,
    wechat_id BIGINT,
    fan_key TEXT,
    created_at BIGINT NOT NULL,
    read_at BIGINT,
    PRIMARY KEY (merchant_id, notification_id)
);
CREATE INDEX notifications_staff ON notifications (merchant_id, staff_code, notification_id);
