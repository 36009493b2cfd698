-- The dream task's options as the client gave them (validated at submission); NULL when the
-- job named none (the worker then uses the documented defaults).
ALTER TABLE jobs ADD COLUMN dream jsonb;
