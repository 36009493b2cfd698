-- Tracing across the queue: the W3C traceparent of the API span that accepted the job (NULL
-- when traces are not exported). The relay sends it as the message's `traceparent` header and
-- the worker's run of the job joins that trace. Bounded so a bad value cannot grow the row.
ALTER TABLE jobs
    ADD COLUMN trace_parent text CHECK (length(trace_parent) <= 64);
