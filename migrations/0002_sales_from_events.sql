-- rms schema, migration 2 (migration 1 is schema.sql). Append-only, like every migration.
--
-- Sales and stock adjustments are read from their events (sync_events.payload holds every field
-- they had). The tables that copied them cost the master four to six b-tree inserts per pushed
-- sale, about a fifth of its ingest time, and were read only by GET /sales. Dropping them loses
-- nothing: each row was written in the same transaction as its event, from the event.
DROP TABLE sale_lines;
DROP TABLE sales;
DROP TABLE stock_adjustments;
