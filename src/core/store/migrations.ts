/**
 * Versioned schema migrations, applied in order inside one `BEGIN IMMEDIATE` transaction each.
 * `PRAGMA user_version` records the last one applied. Never edit a released migration: add one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: queues, topic logs and the messages they hold.
  `
  CREATE TABLE destinations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('queue', 'topic', 'subscription')),
    created_at INTEGER NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    msg_count INTEGER NOT NULL DEFAULT 0,
    msg_bytes INTEGER NOT NULL DEFAULT 0,
    published_total INTEGER NOT NULL DEFAULT 0,
    acked_total INTEGER NOT NULL DEFAULT 0,
    dead_lettered_total INTEGER NOT NULL DEFAULT 0,
    dropped_total INTEGER NOT NULL DEFAULT 0,
    expired_total INTEGER NOT NULL DEFAULT 0,
    deduplicated_total INTEGER NOT NULL DEFAULT 0
  ) STRICT;

  -- One row per stored message. Queue messages are ready (state 0) or waiting (state 1: delayed,
  -- or leased until visible_at); topic messages (state 2) are an append-only log read by cursors.
  -- The id is the global publish order, so FIFO and "global publish order" are both ORDER BY id;
  -- AUTOINCREMENT so an id is never reused after the newest message is deleted (cursors rely on it).
  CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dest_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    visible_at INTEGER NOT NULL DEFAULT 0,
    published_at INTEGER NOT NULL,
    expires_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    last_error TEXT,
    size INTEGER NOT NULL,
    body TEXT NOT NULL,
    headers TEXT
  ) STRICT;
  CREATE INDEX messages_ready ON messages (dest_id, priority DESC, id) WHERE state = 0;
  CREATE INDEX messages_waiting ON messages (dest_id, visible_at) WHERE state = 1;
  CREATE INDEX messages_log ON messages (dest_id, id) WHERE state = 2;
  CREATE INDEX messages_expiring ON messages (dest_id, expires_at) WHERE expires_at IS NOT NULL AND state < 2;

  -- Depth and bytes per destination, kept exact by the database itself whatever code path
  -- inserts, deletes or moves a message, so back-pressure never needs COUNT(*).
  CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
    UPDATE destinations SET msg_count = msg_count + 1, msg_bytes = msg_bytes + NEW.size WHERE id = NEW.dest_id;
  END;
  CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
    UPDATE destinations SET msg_count = msg_count - 1, msg_bytes = msg_bytes - OLD.size WHERE id = OLD.dest_id;
  END;
  CREATE TRIGGER messages_count_move AFTER UPDATE OF dest_id ON messages WHEN NEW.dest_id <> OLD.dest_id BEGIN
    UPDATE destinations SET msg_count = msg_count - 1, msg_bytes = msg_bytes - OLD.size WHERE id = OLD.dest_id;
    UPDATE destinations SET msg_count = msg_count + 1, msg_bytes = msg_bytes + NEW.size WHERE id = NEW.dest_id;
  END;
  `,
  // 2: subscriptions. A subscription is a cursor over the logs of the topics its pattern matches;
  // a delivery awaiting its ack is a pointer row (ref_id → the log row) in the subscription's own
  // queue, so leases, redelivery and dead letters work exactly as for queues.
  `
  ALTER TABLE messages ADD COLUMN ref_id INTEGER;
  CREATE INDEX messages_log_time ON messages (dest_id, published_at) WHERE state = 2;

  CREATE TABLE subscriptions (
    dest_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pattern TEXT NOT NULL,
    durable INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    owner_pid INTEGER,
    owner_started TEXT,
    created_at INTEGER NOT NULL
  ) STRICT;
  `,
  // 3: idempotent publishing and publish/ack rates.
  `
  -- A dedup id seen within the destination's window maps to the message first stored with it.
  CREATE TABLE dedup (
    dest_id INTEGER NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (dest_id, dedup_id)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX dedup_expiry ON dedup (expires_at);

  -- Per-minute counters behind the publish and ack rates of \`queue stats\`.
  CREATE TABLE rates (
    dest_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,
    acked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dest_id, minute)
  ) STRICT, WITHOUT ROWID;
  `,
  // 4: the event engine's journal: events, every action attempt, dedup ids, rule locks, source state.
  `
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    -- pending, done, failed (an action dead-lettered), unmatched, duplicate
    status TEXT NOT NULL,
    rules TEXT NOT NULL DEFAULT '[]',
    -- Who is running a pending event's actions (a trigger process or the daemon), and until when.
    claim_owner TEXT,
    claim_expires INTEGER
  ) STRICT;
  CREATE INDEX events_received ON events (received_at);
  CREATE INDEX events_type ON events (type, received_at);
  CREATE INDEX events_status ON events (status, received_at);
  CREATE INDEX events_id ON events (event_id);

  CREATE TABLE action_runs (
    id INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    rule TEXT NOT NULL,
    action INTEGER NOT NULL,
    action_type TEXT NOT NULL,
    target TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    -- ok, failed (will retry), dead-lettered (gave up), dropped (concurrency: drop)
    outcome TEXT NOT NULL,
    exit_code INTEGER,
    http_status INTEGER,
    error TEXT,
    output_tail TEXT
  ) STRICT;
  CREATE INDEX action_runs_event ON action_runs (event_seq);
  CREATE INDEX action_runs_rule ON action_runs (rule, event_seq);
  CREATE INDEX action_runs_outcome ON action_runs (outcome, started_at);

  CREATE TABLE event_dedup (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX event_dedup_expiry ON event_dedup (expires_at);

  -- Serial and drop rules take this lease while their actions run, across processes.
  CREATE TABLE rule_locks (
    rule TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE source_state (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL
  ) STRICT, WITHOUT ROWID;
  `,
  // 5: message ids in priority bands (ARCHITECTURE.md, "Message ids and priority bands"). Every
  // insert now supplies its id: priority · 2^49 + the next value of that priority's counter here.
  // Band 0 goes on after every id used so far; sqlite_sequence (AUTOINCREMENT) only records the
  // highest id from now on. Existing rows keep their ids (receipts, cursors and dedup entries name
  // them), all in band 0 whatever their priority, so they stay ahead of newer ones of their level.
  `
  CREATE TABLE message_seq (band INTEGER PRIMARY KEY CHECK (band BETWEEN 0 AND 9), seq INTEGER NOT NULL) STRICT;
  INSERT INTO message_seq (band, seq) SELECT 0, max(
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
    coalesce((SELECT max(id) FROM messages), 0));
  INSERT INTO message_seq (band, seq) VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0);
  -- Every index ends with the row id: the ready index needs no id column of its own (8 bytes less
  -- per entry with the longer ids of bands 1–9), and orders the same way.
  DROP INDEX messages_ready;
  CREATE INDEX messages_ready ON messages (dest_id, priority DESC) WHERE state = 0;
  `,
  // 6: consumers waiting on a queue, so a publish can hand them its messages in its own commit
  // (ARCHITECTURE.md, "Hand-off to waiting consumers"). `handed`: the messages given to the waiter
  // (JSON), NULL while it still waits. `pid_space` names where `pid` can be checked (pidSpace);
  // `alive_until`: how long the registration is trusted without a refresh (see Waiters).
  `
  CREATE TABLE waiters (
    -- Never reused: a waiter whose registration was removed must not read a later one's.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dest_id INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT,
    pid_space TEXT NOT NULL,
    max INTEGER NOT NULL,
    alive_until INTEGER NOT NULL,
    handed TEXT
  ) STRICT;
  CREATE INDEX waiters_dest ON waiters (dest_id);
  `,
  // 7: what lets a one-message hand-off write the registration's page alone, and a waiter wait
  // again on the same row (ARCHITECTURE.md, "Hand-off to waiting consumers"). `uncounted`: messages
  // a publish handed to the waiter without counting them as published and delivered, the last of
  // them at `handed_at`; `last_id`: the last band-0 id it gave them without moving band 0's counter
  // (message-ids.ts, handOffIds). Both are settled periodically (Waiters.settle) and when the row is
  // deleted; the trigger folds `last_id` into the counter whoever deletes the row (also a process
  // of an older mqctl, which knows nothing of it), so a handed id is never given again.
  // `waiting_since`: when the row last started waiting, so publishes serve waiters in that order.
  `
  ALTER TABLE waiters ADD COLUMN uncounted INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE waiters ADD COLUMN handed_at INTEGER;
  ALTER TABLE waiters ADD COLUMN last_id INTEGER;
  ALTER TABLE waiters ADD COLUMN waiting_since INTEGER NOT NULL DEFAULT 0;
  CREATE TRIGGER waiters_fold_last_id BEFORE DELETE ON waiters WHEN OLD.last_id IS NOT NULL BEGIN
    UPDATE message_seq SET seq = max(seq, OLD.last_id) WHERE band = 0;
  END;
  `,
]
