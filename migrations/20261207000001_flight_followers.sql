-- How many submissions joined each flight (issue 18: statements per job). A leader ending its
-- flight deletes the row and reads this count from the newest row version, so it looks for
-- followers to complete only when someone joined; a flight nobody joined ends in the one
-- statement that completes its leader.
ALTER TABLE url_flights ADD COLUMN followers integer NOT NULL DEFAULT 0;
