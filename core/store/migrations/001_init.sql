-- Endpoints the user added (OpenAI-compatible). Only the NAME of the env var holding the key is kept.
CREATE TABLE endpoints (
    name        VARCHAR PRIMARY KEY,
    base_url    VARCHAR NOT NULL,
    api_key_env VARCHAR,
    added_at    TIMESTAMP DEFAULT current_timestamp
);

-- Small key/value settings shared by the CLI and the app.
CREATE TABLE settings (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);
