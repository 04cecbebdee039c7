/**
 * Versioned schema. Entry N upgrades user_version N to N+1; never edit an entry once released,
 * append a new one. Times are milliseconds since the epoch (UTC).
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE accounts (
    id                 INTEGER PRIMARY KEY,
    login              TEXT NOT NULL UNIQUE,          -- trimmed, lower-cased
    upstream_mode      TEXT NOT NULL CHECK (upstream_mode IN ('password', 'master')),
    upstream_user      TEXT NOT NULL,
    primary_hash       TEXT NOT NULL,                 -- to recognise and refuse it (src/crypto/primary-hash.ts)
    primary_salt       BLOB,                          -- scrypt salt (mode password)
    dek_primary        BLOB,                          -- data key sealed under the primary password
    secret_box         BLOB,                          -- upstream secret sealed under the data key
    upstream_status    TEXT NOT NULL DEFAULT 'unknown' CHECK (upstream_status IN ('unknown', 'ok', 'rejected')),
    upstream_status_at INTEGER,
    created_at         INTEGER NOT NULL,
    primary_changed_at INTEGER NOT NULL
  );

  CREATE TABLE app_passwords (
    id                 INTEGER PRIMARY KEY,
    public_id          TEXT NOT NULL UNIQUE,
    account_id         INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    digest             BLOB NOT NULL UNIQUE,          -- HMAC-SHA256 under the server key
    label              TEXT NOT NULL,
    scopes             TEXT NOT NULL,                 -- comma-separated protocols
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER,
    revoked_at         INTEGER,
    revoked_reason     TEXT,
    last_used_at       INTEGER,
    last_used_protocol TEXT,
    last_used_address  TEXT,
    dek_salt           BLOB,
    dek_box            BLOB                           -- data key sealed under this password
  );
  CREATE INDEX app_passwords_by_account ON app_passwords (account_id, revoked_at);

  -- Append-only history. No foreign key: history outlives a removed account.
  CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    account_id  INTEGER,
    login       TEXT,
    password_id TEXT,
    protocol    TEXT,
    address     TEXT,
    detail      TEXT
  );
  CREATE INDEX events_by_account ON events (account_id, at);
  CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  `,
  // 2: history retention deletes by age (src/store/history-retention.ts) and the proxy sweeps
  // expiries every few seconds (src/store/expiry.ts); without these indexes each pass would scan
  // a whole table. Revoked passwords stay as rows, so only the active ones with an expiry are indexed.
  `
  CREATE INDEX events_by_time ON events (at);
  CREATE INDEX app_passwords_expiring ON app_passwords (expires_at) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
  `,
  // 3: the revocation watcher (src/auth/revocation-watcher.ts) polls every 250 ms in every proxy
  // process. Reading the state of every watched password each time cost ~1 µs per password; instead
  // every change that can end a session appends a row here, from triggers, so that no writer (CLI,
  // another process, future code) has to remember to, and a poll reads max(revision) and, only
  // when it moved, the rows after the last revision it saw. Not PRAGMA data_version: that changes
  // on every commit of any other connection, the proxy's own history and last-use writes included.
  // A log rather than a revision column on app_passwords: a deleted row cannot carry its revision.
  // AUTOINCREMENT: revisions never go back, even if every row is pruned. The log keeps its last
  // 10,000 rows; a poller that fell further behind sees the gap and re-reads every watched password.
  // IF NOT EXISTS: re-running this entry on a database that has it changes nothing.
  `
  CREATE TABLE IF NOT EXISTS password_changes (
    revision    INTEGER PRIMARY KEY AUTOINCREMENT,
    password_id INTEGER NOT NULL
  );
  CREATE TRIGGER IF NOT EXISTS password_changes_on_update AFTER UPDATE OF revoked_at, expires_at ON app_passwords
    WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.expires_at IS NOT NEW.expires_at
    BEGIN INSERT INTO password_changes (password_id) VALUES (NEW.id); END;
  -- Also fired for each password an account's removal cascades to.
  CREATE TRIGGER IF NOT EXISTS password_changes_on_delete AFTER DELETE ON app_passwords
    BEGIN INSERT INTO password_changes (password_id) VALUES (OLD.id); END;
  -- A removal with foreign keys off (a hand-run sqlite3) cascades nothing: log the orphans too.
  CREATE TRIGGER IF NOT EXISTS password_changes_on_account_delete BEFORE DELETE ON accounts
    BEGIN INSERT INTO password_changes (password_id) SELECT id FROM app_passwords WHERE account_id = OLD.id; END;
  CREATE TRIGGER IF NOT EXISTS password_changes_pruned AFTER INSERT ON password_changes
    BEGIN DELETE FROM password_changes WHERE revision <= NEW.revision - 10000; END;
  `,
  // 4: the `pop3` scope (issue 17). A password that may read mail over IMAP may read the same
  // mailbox over POP3, which shows no more than IMAP does, so every password holding `imap` gains
  // `pop3` (placed after it, the order new passwords list their scopes in); passwords without
  // `imap` (SMTP-only, DAV-only) do not. Revoked rows are updated too: harmless, and it keeps the
  // rule one sentence long.
  `
  UPDATE app_passwords
     SET scopes = TRIM(REPLACE(',' || scopes || ',', ',imap,', ',imap,pop3,'), ',')
   WHERE ',' || scopes || ',' LIKE '%,imap,%'
     AND ',' || scopes || ',' NOT LIKE '%,pop3,%';
  `,
  // 5: upstream mode `oauth2` (issue 13). SQLite cannot change a CHECK constraint in place, so the
  // accounts table is rebuilt as SQLite's ALTER TABLE page prescribes (create, copy, drop, rename),
  // which needs foreign keys off: the runner turns them off around every migration (database.ts),
  // else dropping the old table would cascade to every app password. Ids are copied as they are,
  // so app_passwords.account_id still points at the same rows. The trigger of migration 3 went
  // with the old table and is created again. `oauth2_provider` names the configured provider
  // (config oauth2.providers) the account's grant belongs to; its tokens are sealed in secret_box
  // like the upstream password (src/oauth2/token-set.ts).
  `
  CREATE TABLE accounts_v5 (
    id                 INTEGER PRIMARY KEY,
    login              TEXT NOT NULL UNIQUE,
    upstream_mode      TEXT NOT NULL CHECK (upstream_mode IN ('password', 'master', 'oauth2')),
    upstream_user      TEXT NOT NULL,
    primary_hash       TEXT NOT NULL,
    primary_salt       BLOB,
    dek_primary        BLOB,
    secret_box         BLOB,
    upstream_status    TEXT NOT NULL DEFAULT 'unknown' CHECK (upstream_status IN ('unknown', 'ok', 'rejected')),
    upstream_status_at INTEGER,
    created_at         INTEGER NOT NULL,
    primary_changed_at INTEGER NOT NULL,
    oauth2_provider    TEXT CHECK ((upstream_mode = 'oauth2') = (oauth2_provider IS NOT NULL))
  );
  INSERT INTO accounts_v5 (id, login, upstream_mode, upstream_user, primary_hash, primary_salt, dek_primary, secret_box,
      upstream_status, upstream_status_at, created_at, primary_changed_at)
    SELECT id, login, upstream_mode, upstream_user, primary_hash, primary_salt, dek_primary, secret_box,
      upstream_status, upstream_status_at, created_at, primary_changed_at FROM accounts;
  DROP TABLE accounts;
  ALTER TABLE accounts_v5 RENAME TO accounts;
  CREATE TRIGGER password_changes_on_account_delete BEFORE DELETE ON accounts
    BEGIN INSERT INTO password_changes (password_id) SELECT id FROM app_passwords WHERE account_id = OLD.id; END;
  `,
  // 6: the brute-force throttle's counts, shared by every process serving from this database
  // (issue 15: several workers; later several instances, issue 14), so that spreading guesses
  // over N processes does not buy N times the guesses. Failures are counted per key (`a:` client
  // address or IPv6 /64, `l:` real account, `p:` address × account, `w:` address × account ×
  // keyed digest of one wrong password, for the repeat rule) in time slices (`bucket`, the
  // slice's start): a read sums the slices of the window, one range seek on the primary key per
  // key. Blocks are rows of their own, so that a block outlasts the window it was earned in.
  // Rows are written only through the proxy's write queue and pruned by age (bucket index).
  `
  CREATE TABLE IF NOT EXISTS throttle_counts (
    key      TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    PRIMARY KEY (key, bucket)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS throttle_counts_by_bucket ON throttle_counts (bucket);
  CREATE TABLE IF NOT EXISTS throttle_blocks (
    key   TEXT PRIMARY KEY,
    until INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS throttle_blocks_by_until ON throttle_blocks (until);
  `,
  // 7: the account page (issue 12). Second factors: a TOTP key sealed under a key derived from
  // the server key file (a copied database alone gives no key), the last accepted time step (a code
  // is accepted at most once, RFC 6238 §5.2: the conditional UPDATE that moves it is the check, so
  // two instances cannot both accept one code), and recovery codes stored as keyed digests. Portal
  // sessions live here so that an admin or a second instance can end them; the row holds a digest
  // of the cookie, never the cookie. ON DELETE CASCADE: removing an account ends its sessions.
  `
  CREATE TABLE second_factors (
    account_id  INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    totp_box    BLOB NOT NULL,                 -- sealed TOTP key (src/second-factor/totp-key.ts)
    last_step   INTEGER,                       -- last accepted RFC 6238 time step
    enrolled_at INTEGER NOT NULL
  );
  CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    digest     BLOB NOT NULL UNIQUE,           -- HMAC-SHA256 under a key derived from the server key
    used_at    INTEGER
  );
  CREATE INDEX recovery_codes_by_account ON recovery_codes (account_id);
  CREATE TABLE portal_sessions (
    id                 INTEGER PRIMARY KEY,
    token_digest       BLOB NOT NULL UNIQUE,   -- SHA-256 of the cookie value
    account_id         INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    stage              TEXT NOT NULL CHECK (stage IN ('password', 'complete')),
    created_at         INTEGER NOT NULL,
    seen_at            INTEGER NOT NULL,
    password_at        INTEGER NOT NULL,       -- last time the primary password was typed (recent auth)
    primary_changed_at INTEGER NOT NULL,       -- the account's, at sign-in: a change ends the session
    code_failures      INTEGER NOT NULL DEFAULT 0,
    pending_totp_box   BLOB,                   -- key being enrolled, sealed as totp_box
    address            TEXT,
    browser            TEXT,
    ended_at           INTEGER
  );
  CREATE INDEX portal_sessions_by_account ON portal_sessions (account_id);
  `,
  // 8: one-time Apple profile downloads (issue 16). The profile carries a new app-specific password
  // in clear, so the row holds its inputs sealed under a key derived from the download token
  // (src/onboarding/profile-download.ts), which is only in the URL; the row is found by the
  // token's SHA-256. Taken by DELETE … RETURNING (once, across processes), pruned after expiry.
  // ON DELETE CASCADE: removing an account or its password removes its pending download.
  `
  CREATE TABLE profile_downloads (
    token_digest BLOB PRIMARY KEY,           -- SHA-256 of the download token
    account_id   INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    password_id  INTEGER NOT NULL REFERENCES app_passwords(id) ON DELETE CASCADE,
    sealed       BLOB NOT NULL,              -- AES-256-GCM under HKDF(token)
    expires_at   INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX profile_downloads_by_expiry ON profile_downloads (expires_at);
  CREATE INDEX profile_downloads_by_password ON profile_downloads (password_id);
  `,
];

/**
 * FOR THE COORDINATOR: migration 8 (profile_downloads) in PostgreSQL, to add to the PostgreSQL
 * migration set (times BIGINT ms, blobs BYTEA, as the other tables there).
 */
export const POSTGRES_PROFILE_DOWNLOADS_DDL = `
  CREATE TABLE profile_downloads (
    token_digest BYTEA PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    password_id  BIGINT NOT NULL REFERENCES app_passwords(id) ON DELETE CASCADE,
    sealed       BYTEA NOT NULL,
    expires_at   BIGINT NOT NULL
  );
  CREATE INDEX profile_downloads_by_expiry ON profile_downloads (expires_at);
  CREATE INDEX profile_downloads_by_password ON profile_downloads (password_id);
`;
