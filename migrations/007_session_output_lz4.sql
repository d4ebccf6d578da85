-- The archive's rows are segments of up to 256 KiB of terminal output, compressed by
-- TOAST on insert. lz4 costs about half of the default pglz here (measured on terminal
-- output: 104 MB in 256 ms against 552 ms), and a flooding session's archive is the
-- largest steady cost PostgreSQL has. Only new rows are affected; old ones stay readable.
-- A server built without lz4 (or older than 14) keeps pglz: the setting is an
-- optimisation, so its absence must not stop a node from starting.
DO $$
BEGIN
  EXECUTE 'ALTER TABLE session_output ALTER COLUMN data SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
  RAISE NOTICE 'session_output.data keeps the default compression: %', SQLERRM;
END
$$;
