"""The SQL of the PostgreSQL backend: schema DDL, its migrations, and the statements.

Plain text, shared by the asyncio source ``backend_async.py`` and its generated sync twin.
``{s}`` is the store's schema (a validated SQL name); values always travel as parameters.
``backend_async.py`` explains why the statements look as they do.
"""

from __future__ import annotations

SCHEMA_VERSION = 3
ORDINAL_BITS = 20
MAX_BATCH = 2**ORDINAL_BITS - 1

XMIN = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)"
LOCK_CLASS = 0x65767374  # "evst": first key of the advisory lock every append holds

# The precise horizon: below the oldest transaction id held by an append in flight (a
# holder of the shared advisory lock of this schema) and below every id not yet assigned
# (the snapshot's xmax). pg_stat_activity shows 32-bit xids; they are widened against
# xmax, and an id assigned after our snapshot (a "negative" distance) is ignored.
APPENDERS = """
WITH s AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax),
w AS (
    SELECT a.pid, a.xact_start, CASE WHEN d.distance < 2147483648
                                     THEN s.xmax - d.distance END AS xid
    FROM s, pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid AND a.backend_xid IS NOT NULL
    CROSS JOIN LATERAL (
        SELECT ((s.xmax %% 4294967296) - a.backend_xid::text::bigint + 4294967296)
               %% 4294967296 AS distance
    ) d
    WHERE l.locktype = 'advisory' AND l.classid = %(k1)s::oid AND l.objid = %(k2)s::oid
      AND l.objsubid = 2 AND l.granted
)
SELECT least(s.xmax, (SELECT min(xid) FROM w)) << 20,
       (SELECT pid FROM w WHERE xid IS NOT NULL ORDER BY xid LIMIT 1),
       (SELECT (extract(epoch FROM clock_timestamp() - xact_start) * 1000)::bigint
        FROM w WHERE xid IS NOT NULL ORDER BY xid LIMIT 1)
FROM s"""
COLUMNS = (
    "stream_id, version, position, event_id::text, type, data, metadata, schema_version, "
    "occurred_at, recorded_at, 0"
)

TABLES = """
CREATE TABLE {s}.events (
    position       bigint      NOT NULL,
    stream_id      text        COLLATE "C" NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    type           text        COLLATE "C" NOT NULL,
    data           json        NOT NULL,
    metadata       json        NOT NULL,
    schema_version integer     NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    category       text        COLLATE "C" NOT NULL,
    partition_key  text        COLLATE "C" NOT NULL,
    partition_hash bigint      NOT NULL
) {partition_clause};
CREATE INDEX events_type_occurred ON {s}.events (type, occurred_at);
CREATE INDEX events_category ON {s}.events (category, position);
CREATE TABLE {s}.deleted_streams (
    stream_id    text    COLLATE "C" PRIMARY KEY,
    last_version bigint  NOT NULL,
    tombstoned   boolean NOT NULL
);
CREATE TABLE {s}.snapshots (
    stream_id      text        COLLATE "C" PRIMARY KEY,
    version        bigint      NOT NULL,
    data           json        NOT NULL,
    schema_version integer     NOT NULL,
    taken_at       timestamptz NOT NULL
);
CREATE TABLE {s}.checkpoints (
    name     text   COLLATE "C" PRIMARY KEY,
    position bigint NOT NULL
);
CREATE TABLE {s}.dead_letters (
    name      text        COLLATE "C" NOT NULL,
    position  bigint      NOT NULL,
    stream_id text        NOT NULL,
    version   bigint      NOT NULL,
    type      text        NOT NULL,
    event_id  text        NOT NULL,
    error     text        NOT NULL,
    attempts  integer     NOT NULL,
    parked_at timestamptz NOT NULL,
    PRIMARY KEY (name, position)
);
"""

PLAIN_INDEXES = """
ALTER TABLE {s}.events ADD PRIMARY KEY (position);
CREATE UNIQUE INDEX events_stream_version ON {s}.events (stream_id, version);
CREATE UNIQUE INDEX events_event_id ON {s}.events (event_id);
"""

# A unique index on a partitioned table must contain the partition key, so event ids are
# kept unique across partitions by a small side table instead.
PARTITIONED_INDEXES = """
CREATE UNIQUE INDEX events_position ON {s}.events (position, partition_key);
CREATE UNIQUE INDEX events_stream_version ON {s}.events (stream_id, version, partition_key);
CREATE INDEX events_event_id ON {s}.events (event_id);
CREATE TABLE {s}.event_ids (event_id uuid PRIMARY KEY);
"""

# Schema versions after the first: version -> DDL that upgrades from version - 1. A new
# schema is created at version 1 and then runs every step, so it ends up identical.
MIGRATIONS: dict[int, str] = {
    # The append gate: every append calls it before it writes. It takes the shared
    # advisory lock that marks appends in flight (see the precise horizon), then -
    # VOLATILE, so with a snapshot taken after the lock - checks for a tombstone. A hard
    # delete holds the same lock exclusively, so an append that began before the tombstone
    # committed either ended before the delete looked at the stream or sees the tombstone
    # here. plpgsql, because it caches its plans per session (as a SQL function the gate
    # cost about a third of the append rate).
    2: """
CREATE OR REPLACE FUNCTION {s}.append_gate(stream text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({k1}, {k2});
    RETURN NOT EXISTS (SELECT 1 FROM {s}.deleted_streams
                       WHERE stream_id = stream AND tombstoned);
END
$$;
""",
    # Tags (dynamic consistency boundaries) travel in the metadata; this index finds the
    # events carrying some tags without reading the others. Partial: untagged events
    # (the rest) add no index entry.
    3: """
CREATE INDEX IF NOT EXISTS events_tags ON {s}.events
    USING gin (((metadata::jsonb) -> 'evstore:tags') jsonb_path_ops)
    WHERE (metadata::jsonb) ? 'evstore:tags';
""",
}


def statements(s: str, partitioned: bool) -> dict[str, str]:
    """The statements of a store in schema ``s``."""
    same_partition = "AND partition_key = %(pkey)s" if partitioned else ""
    record_ids = (
        f", ids AS (INSERT INTO {s}.event_ids (event_id) SELECT u.id FROM ok, "
        "unnest(%(ids)b::uuid[]) AS u(id) RETURNING 1)"
        if partitioned
        else ""
    )
    return {
        # mode: 0 ANY, 1 no stream (NO_STREAM or 0), 2 STREAM_EXISTS, 3 exactly n.
        # The arrays go in binary (%b): psycopg writes text-format arrays in Python,
        # escaping every element - 1.9 ms for 100 JSON payloads against 20 us binary,
        # half the time of a 100-event append.
        "append": f"""
WITH st AS (
    SELECT greatest(coalesce(e.last, 0), coalesce(d.last_version, 0)) AS last,
           coalesce(e.last, 0) > coalesce(d.last_version, 0) AS visible,
           coalesce(d.tombstoned, false) AS tombstoned
    FROM (SELECT max(version) AS last FROM {s}.events
          WHERE stream_id = %(sid)s {same_partition}) e
    LEFT JOIN {s}.deleted_streams d ON d.stream_id = %(sid)s
), lk AS (
    SELECT {s}.append_gate(%(sid)s) AS open  -- see MIGRATIONS[2]
), ok AS (
    SELECT last FROM st, lk WHERE lk.open AND NOT tombstoned AND CASE %(mode)s::int
        WHEN 0 THEN true WHEN 1 THEN NOT visible WHEN 2 THEN visible
        ELSE last = %(n)s::bigint END
){record_ids}, ins AS (
    INSERT INTO {s}.events (position, stream_id, version, event_id, type, data, metadata,
        schema_version, occurred_at, recorded_at, category, partition_key, partition_hash)
    SELECT (pg_current_xact_id()::text::bigint << {ORDINAL_BITS}) | u.ord, %(sid)s,
        ok.last + u.ord, u.id, u.type, u.data::json, u.meta::json, u.sv, u.at,
        coalesce(u.rec, statement_timestamp()), %(cat)s, %(pkey)s, %(phash)s
    FROM ok, unnest(%(ids)b::uuid[], %(types)b::text[], %(data)b::text[], %(meta)b::text[],
                    %(svs)b::int[], %(ats)b::timestamptz[], %(recs)b::timestamptz[])
         WITH ORDINALITY AS u(id, type, data, meta, sv, at, rec, ord)
    RETURNING position
)
SELECT st.last, st.visible, st.tombstoned,
       (SELECT array_agg(position ORDER BY position) FROM ins), (SELECT open FROM lk)
FROM st""",
        "append_many": append_many(s, partitioned),
        "stored": f"SELECT {COLUMNS} FROM {s}.events WHERE event_id = ANY(%s::uuid[])",
        "state": f"""
SELECT greatest(coalesce(e.last, 0), coalesce(d.last_version, 0)),
       coalesce(e.last, 0) > coalesce(d.last_version, 0), coalesce(d.tombstoned, false)
FROM (SELECT max(version) AS last FROM {s}.events WHERE stream_id = %(sid)s) e
LEFT JOIN {s}.deleted_streams d ON d.stream_id = %(sid)s""",
        "read_stream": f"""
SELECT d.last_version, d.tombstoned, r.*
FROM (SELECT 1) one
LEFT JOIN {s}.deleted_streams d ON d.stream_id = %(sid)s
LEFT JOIN LATERAL (
    SELECT {COLUMNS} FROM {s}.events
    WHERE stream_id = %(sid)s
      AND version >= greatest(%(low)s::bigint, coalesce(d.last_version, 0) + 1)
      AND version <= %(high)s::bigint
    ORDER BY version {{order}} LIMIT %(limit)s
) r ON true""",
        # {{horizon}}: XMIN (one statement), or a precise horizon from "appenders".
        "head": f"""
WITH x AS (SELECT {{horizon}} AS horizon)
SELECT (SELECT coalesce(max(position), 0) FROM {s}.events WHERE position < x.horizon),
       coalesce((SELECT max(position) FROM {s}.events) >= x.horizon, false)
FROM x""",
        "appenders": APPENDERS,
        "read_all": f"""
WITH x AS (SELECT {{horizon}} AS horizon),
h AS (SELECT x.horizon,
             (SELECT max(position) FROM {s}.events WHERE position < x.horizon) AS head,
             (SELECT max(position) FROM {s}.events) AS newest FROM x)
SELECT coalesce(h.head, 0), coalesce(h.newest >= h.horizon, false), r.*
FROM h LEFT JOIN LATERAL (
    SELECT {COLUMNS} FROM {s}.events
    WHERE position > %(after)s AND position < h.horizon {{filters}}
    ORDER BY position LIMIT %(limit)s
) r ON true""",
    }


def append_many(s: str, partitioned: bool) -> str:
    """The multi-stream append: ``append``'s checks for every stream, in ONE statement.

    One statement, so one snapshot for every stream's check, taken before the transaction
    id that numbers the positions is assigned (see the backend's docstring). Per stream:
    ``sids``/``modes``/``ns``/``cats``/``pkeys``/``phashes``; per event, in request order:
    ``part`` (its stream's 1-based index), ``k`` (its index within its stream) and the
    event arrays of ``append``. Nothing is inserted unless every stream passes.
    """
    same_partition = "AND partition_key = req.pkey" if partitioned else ""
    record_ids = (
        f", ids AS (INSERT INTO {s}.event_ids (event_id) SELECT u.id FROM go, "
        "unnest(%(ids)b::uuid[]) AS u(id) WHERE go.all_ok RETURNING 1)"
        if partitioned
        else ""
    )
    return f"""
WITH req AS (
    SELECT * FROM unnest(%(sids)s::text[], %(modes)s::int[], %(ns)s::bigint[],
                         %(cats)s::text[], %(pkeys)s::text[], %(phashes)s::bigint[])
         WITH ORDINALITY AS r(sid, mode, n, cat, pkey, phash, idx)
), st AS (
    SELECT req.*, greatest(coalesce(e.last, 0), coalesce(d.last_version, 0)) AS last,
           coalesce(e.last, 0) > coalesce(d.last_version, 0) AS visible,
           coalesce(d.tombstoned, false) AS tombstoned
    FROM req
    CROSS JOIN LATERAL (SELECT max(version) AS last FROM {s}.events
                        WHERE stream_id = req.sid {same_partition}) e
    LEFT JOIN {s}.deleted_streams d ON d.stream_id = req.sid
), lk AS (
    SELECT req.idx, {s}.append_gate(req.sid) AS open FROM req  -- see MIGRATIONS[2]
), ok AS (
    SELECT st.* FROM st JOIN lk ON lk.idx = st.idx
    WHERE lk.open AND NOT st.tombstoned AND CASE st.mode
        WHEN 0 THEN true WHEN 1 THEN NOT st.visible WHEN 2 THEN st.visible
        ELSE st.last = st.n END
), go AS (
    SELECT count(*) = (SELECT count(*) FROM req) AS all_ok FROM ok
){record_ids}, ins AS (
    INSERT INTO {s}.events (position, stream_id, version, event_id, type, data, metadata,
        schema_version, occurred_at, recorded_at, category, partition_key, partition_hash)
    SELECT (pg_current_xact_id()::text::bigint << {ORDINAL_BITS}) | u.ord, ok.sid,
        ok.last + u.k, u.id, u.type, u.data::json, u.meta::json, u.sv, u.at,
        coalesce(u.rec, statement_timestamp()), ok.cat, ok.pkey, ok.phash
    FROM go CROSS JOIN unnest(%(part)s::bigint[], %(k)s::bigint[], %(ids)b::uuid[],
        %(types)b::text[], %(data)b::text[], %(meta)b::text[], %(svs)b::int[],
        %(ats)b::timestamptz[], %(recs)b::timestamptz[])
        WITH ORDINALITY AS u(part, k, id, type, data, meta, sv, at, rec, ord)
    JOIN ok ON ok.idx = u.part
    WHERE go.all_ok
    RETURNING stream_id, position
)
SELECT st.idx, st.last, st.visible, st.tombstoned, lk.open,
       (SELECT array_agg(ins.position ORDER BY ins.position) FROM ins
        WHERE ins.stream_id = st.sid)
FROM st JOIN lk ON lk.idx = st.idx ORDER BY st.idx"""
