-- Expired tokens are deleted by expiry; without this index each sweep scans every token.
CREATE INDEX IF NOT EXISTS access_tokens_expires_at ON access_tokens (expires_at);
