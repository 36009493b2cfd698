-- The client asked for a fresh analysis ("cache": "bypass" or Cache-Control: no-cache): the
-- worker neither reads nor writes the content cache for this job.
ALTER TABLE jobs ADD COLUMN bypass_cache boolean NOT NULL DEFAULT false;
