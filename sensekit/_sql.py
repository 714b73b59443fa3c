"""Every SQL statement sensekit runs, with named or positional parameters.

No statement is ever assembled from user input; the only formatting is over the fixed
table names below (INSERT_FROM_ARROW), never over values.
"""

# -- meta -------------------------------------------------------------------------------
UPSERT_META = "INSERT OR REPLACE INTO meta VALUES (?, ?)"
ALL_META = "SELECT key, value FROM meta"

# -- writer -----------------------------------------------------------------------------
# The writer's one database, attached with its row-group size (ROW_GROUP_ROWS in sensekit/writer.py); a
# SenseStore attaches its file the same way, read-only, in a DuckDB instance of its own.
ATTACH_STORE = "ATTACH $path AS store (ROW_GROUP_SIZE $rows)"
ATTACH_READ_ONLY = "ATTACH $path AS store (READ_ONLY)"
ATTACH_STORE_FILE = "ATTACH $path AS store"
USE_STORE = "USE store"
_TABLES = ("tokens", "senses", "contexts", "spans", "words", "relations", "relation_senses", "similarity_space")
# `arrow_table` is a local pyarrow table in the writer, found by DuckDB's replacement scan.
INSERT_FROM_ARROW = {t: f"INSERT INTO {t} BY NAME SELECT * FROM arrow_table" for t in _TABLES}
CHECKPOINT = "CHECKPOINT"
MAX_SENSE_ID = "SELECT coalesce(max(sense_id), -1) FROM senses"
MAX_SPAN_ID = "SELECT coalesce(max(span_id), -1) FROM spans"
DELETE_RELATIONS_OF_SOURCE = "DELETE FROM relations WHERE source = $source"
DELETE_WORDS_IN = "DELETE FROM words WHERE list_contains(?, word)"
DELETE_SPANS = (
    "DELETE FROM senses WHERE span_id IS NOT NULL",
    "UPDATE words SET span_id = NULL WHERE span_id IS NOT NULL",
    "DELETE FROM spans",
)
# Views: every statement over senses, spaces or attachments names one (a name recorded in meta.views).
INDEXED_SENSES = "SELECT sense_id FROM senses WHERE span_id IS NULL AND view = $view ORDER BY sense_id"
DELETE_SPACE = "DELETE FROM similarity_space WHERE view = $view"
SPACE_ROWS = "SELECT part, idx, vector FROM similarity_space WHERE view = $view ORDER BY part, idx"
RELATION_PAIRS = "SELECT DISTINCT head, related FROM relations ORDER BY head, related"
DELETE_HEAD_SENSES = "DELETE FROM relation_senses WHERE view = $view"
# Attachments of pairs whose relations are gone (a source replaced): dropped before the new ones are written.
DELETE_STALE_HEAD_SENSES = (
    "DELETE FROM relation_senses a WHERE NOT EXISTS"
    " (SELECT 1 FROM relations r WHERE r.head = a.head AND r.related = a.related)"
)

# -- reads ------------------------------------------------------------------------------
TABLE_COUNTS = (  # token senses per view are counted from the store's in-memory columns
    "SELECT (SELECT count(*) FROM tokens),"
    " (SELECT count(*) FROM senses WHERE span_id IS NOT NULL), (SELECT count(*) FROM spans),"
    " (SELECT count(*) FROM contexts), (SELECT count(*) FROM words),"
    " (SELECT count(*) FROM relations WHERE kind = 'syn'), (SELECT count(*) FROM relations WHERE kind = 'ant')"
)
COUNT_NAMES = (
    "tokens",
    "span_senses",
    "spans",
    "contexts",
    "words",
    "synonyms",
    "antonyms",
)

SENSE_COLUMNS = "SELECT sense_id, view, token_id, span_id, sense_index, count FROM senses ORDER BY sense_id"
# The optional text labels of senses (NULL when unknown): read once at open, only the labelled rows.
SENSE_LABELS = (
    "SELECT sense_id, synset, gloss, lemma, label FROM senses"
    " WHERE synset IS NOT NULL OR gloss IS NOT NULL OR lemma IS NOT NULL OR label IS NOT NULL"
)
TOKEN_TEXTS = "SELECT token_id, text FROM tokens"
TOKEN_ROWS = "SELECT token_id, text, occurrences FROM tokens"
SPAN_TEXTS = "SELECT span_id, text FROM spans"
SPAN_WORDS = "SELECT word, token_ids, span_id FROM words WHERE span_id IS NOT NULL"
# embeddings.npy (sensekit/sense_array.py): every sense, in sense_id order
SENSE_IDS = "SELECT sense_id FROM senses ORDER BY sense_id"
# context_vectors.npy: the kept vectors in (sense_id, rank) order; `vector_row` holds the staged row until commit
KEPT_CONTEXT_VECTORS = (
    "SELECT sense_id, rank, vector_row FROM contexts WHERE vector_row IS NOT NULL ORDER BY sense_id, rank"
)
# `vector_rows` is a local pyarrow table (sense_id, rank, vector_row) in the writer.
SET_VECTOR_ROWS = (
    "UPDATE contexts SET vector_row = v.vector_row FROM vector_rows v"
    " WHERE contexts.sense_id = v.sense_id AND contexts.rank = v.rank"
)
CONTEXTS_IN_RANGE = (
    "SELECT sense_id, rank, doc_id, char_start, char_end, snippet, mark_start, mark_end, distance"
    " FROM contexts WHERE sense_id BETWEEN $lo AND $hi"  # ordered in Python: cheaper than a sort operator
)
# The kept sampled vectors of some senses (plots); the range bound lets zone maps prune the scan.
CONTEXT_VECTORS = (
    "SELECT sense_id, vector_row FROM contexts WHERE sense_id BETWEEN $lo AND $hi AND list_contains($ids, sense_id)"
    " AND vector_row IS NOT NULL ORDER BY sense_id, rank"
)
RELATIONS_OF_WORD = "SELECT related, kind, source, derived, provenance FROM relations WHERE head = $word"  # ART index
HEAD_SENSES_OF_WORD = (  # ART index
    "SELECT related, head_sense, head_distance FROM relation_senses WHERE head = $word AND view = $view"
)

SIMILAR_WORDS = (
    "SELECT DISTINCT trim(text) AS w, jaro_winkler_similarity(lower(trim(text)), lower($word)) AS score"
    " FROM tokens WHERE length(trim(text)) > 0 ORDER BY score DESC, w LIMIT $limit"
)

TABLE_NAMES = "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY table_name"

# Bulk matrices for consumers such as distill/targets.py and lexicon span clouds.
SENSE_MATRIX = "SELECT sense_id, token_id, span_id, sense_index FROM senses WHERE view = $view ORDER BY sense_id"
LINKED_SENSES = "SELECT token_id, sense_index, synset FROM senses WHERE view = $view AND synset IS NOT NULL AND token_id IS NOT NULL"
ALL_WORDS = "SELECT word, token_ids, span_id FROM words"
ALL_RELATIONS = "SELECT head, related, kind, source, derived FROM relations"

# -- relation words and span clouds (StoreWriter, for sensekit/lexicon/attach.py) ---------------
RELATION_WORDS = (
    "SELECT head AS word FROM relations UNION SELECT related FROM relations ORDER BY word"  # sorted: span ids
)
DELETE_ALL_WORDS = "DELETE FROM words"
# `needed_tokens` is a local pyarrow table (column token_id) in StoreWriter.token_senses.
TOKEN_SENSES_OF = (
    "SELECT s.token_id, s.sense_index, s.sense_id FROM senses s"
    " JOIN needed_tokens n ON n.token_id = s.token_id WHERE s.view = $view ORDER BY s.token_id, s.sense_index"
)

# -- the content fingerprint (sensekit/fingerprint.py): every content table in a fixed row order ---------
FINGERPRINT_TABLES = (
    ("tokens", "SELECT * FROM tokens ORDER BY token_id"),
    ("spans", "SELECT * FROM spans ORDER BY span_id"),
    ("senses", "SELECT * FROM senses ORDER BY sense_id"),
    ("contexts", "SELECT * FROM contexts ORDER BY sense_id, rank"),
    ("words", "SELECT * FROM words ORDER BY word"),
    ("relations", "SELECT * FROM relations ORDER BY source, head, related, kind, derived, provenance"),
    ("relation_senses", "SELECT * FROM relation_senses ORDER BY view, head, related"),
)
DELETE_META = "DELETE FROM meta WHERE key = ?"

# -- export of one view (`sensekit export --view`): the view's senses, their contexts and its space ---------
EXPORT_VIEW_TABLES = {
    "senses": "SELECT * FROM senses WHERE view = $view ORDER BY sense_id",
    "contexts": "SELECT c.* FROM contexts c JOIN senses s USING (sense_id) WHERE s.view = $view"
    " ORDER BY c.sense_id, c.rank",
    "similarity_space": "SELECT * FROM similarity_space WHERE view = $view ORDER BY part, idx",
    "relation_senses": "SELECT * FROM relation_senses WHERE view = $view ORDER BY head, related",
}

# -- `sensekit migrate` (sensekit/migrate.py): a v3 bundle, attached read-only as `v3`, into a v4 writer ---------
ATTACH_V3 = "ATTACH $path AS v3 (READ_ONLY)"
V3_META = "SELECT key, value FROM v3.meta"
MIGRATE_V3_TABLES = (  # every row of v3 but the vectors, which go to the vector files
    "INSERT INTO tokens SELECT * FROM v3.tokens",
    "INSERT INTO spans SELECT * FROM v3.spans",
    "INSERT INTO senses (sense_id, view, token_id, span_id, sense_index, count)"
    " SELECT sense_id, view, token_id, span_id, sense_index, count FROM v3.senses ORDER BY sense_id",
    "INSERT INTO contexts (sense_id, rank, doc_id, char_start, char_end, snippet, mark_start, mark_end, distance)"
    " SELECT sense_id, rank, doc_id, char_start, char_end, snippet, mark_start, mark_end, distance"
    " FROM v3.contexts ORDER BY sense_id, rank",
    "INSERT INTO similarity_space SELECT * FROM v3.similarity_space",
    "INSERT INTO words SELECT * FROM v3.words",
    "INSERT INTO relations SELECT head, related, kind, source, derived, provenance FROM v3.relations",
    # v3 kept each view's attachment in its own pair of columns, the same for every row of a (head, related) pair
    "INSERT INTO relation_senses SELECT DISTINCT 'loss', head, related, head_sense, head_distance"
    " FROM v3.relations WHERE head_sense IS NOT NULL",
    "INSERT INTO relation_senses SELECT DISTINCT 'lexical', head, related, lexical_head_sense, lexical_head_distance"
    " FROM v3.relations WHERE lexical_head_sense IS NOT NULL",
)
V3_EMBEDDINGS = "SELECT sense_id, embedding FROM v3.senses ORDER BY sense_id"
V3_CONTEXT_VECTORS = "SELECT sense_id, rank, vector FROM v3.contexts WHERE vector IS NOT NULL ORDER BY sense_id, rank"
DETACH_V3 = "DETACH v3"
