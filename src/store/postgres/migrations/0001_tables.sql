-- The PostgreSQL engine's tables: see the "Layout" of src/store/postgres/mod.rs.
-- The index keys that clients write (lower-cased usernames, tags) are bytea, their UTF-8: they
-- compare and sort by their bytes, as sled's keys do, whatever the database's locale, and hold
-- any string (text cannot hold a NUL character).

-- A user's JSON is exactly what the API answers (kept as text, not jsonb, so it is answered
-- byte for byte as written); its password (a PasswordHash as JSON) is kept apart.
-- `username_key` is the username lower-cased by the server (Rust's to_lowercase, not SQL's
-- lower()), and its unique constraint is the uniqueness check of usernames.
CREATE TABLE users (
    id uuid NOT NULL,
    username_key bytea NOT NULL,
    json text NOT NULL,
    password text,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_username_unique UNIQUE (username_key)
);

-- The distinct tags of each user: the tag index (sled's `tag_counts`).
CREATE TABLE user_tags (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tag bytea NOT NULL,
    PRIMARY KEY (user_id, tag)
);
CREATE INDEX user_tags_tag ON user_tags (tag);

-- WebAuthn credentials, deleted with their user.
CREATE TABLE credentials (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    json text NOT NULL,
    PRIMARY KEY (user_id, id)
);

CREATE TABLE listeners (
    id uuid PRIMARY KEY,
    json text NOT NULL
);

CREATE TABLE connections (
    id uuid PRIMARY KEY,
    json text NOT NULL
);

-- Named JSON documents: the servers' shared secrets (kind 'secret') and settings ('setting').
CREATE TABLE documents (
    kind text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (kind, name)
);
