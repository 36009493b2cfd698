-- Analyses by content: what some bytes are (their metadata, their detections down to a score
-- floor), under the bytes' SHA-256 and the model that looked at them. Nothing about who asked:
-- an entry is shared by every account whose image has the same bytes.
CREATE TABLE content_cache (
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    model       text        NOT NULL,
    image       jsonb,
    objects     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    hit_at      timestamptz NOT NULL DEFAULT now(),
    hits        bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (sha256, model)
);

-- Eviction takes the least recently used entries first.
CREATE INDEX content_cache_by_use ON content_cache (hit_at);
