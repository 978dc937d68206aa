-- Repairs 0008_list_indexes.sql as it was at 5fcc702, whose text had this checksum:
-- checksum: bbd478f0ee6bfeb9b70f0cd96f9fdd67621b9af142f4143b0c97c898205cee944e2bcc43f5dd8967598e1cf95a2f4b86
--
-- That text built the trigram index with GIN; today's builds it with GiST (64-byte
-- signatures). The rest is the same.
DROP INDEX tasks_title_trigrams;
DO $$
BEGIN
    EXECUTE format(
        'CREATE INDEX tasks_title_trigrams ON tasks USING gist (title_folded %I.gist_trgm_ops (siglen = 64))',
        (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_trgm'));
END
$$;
