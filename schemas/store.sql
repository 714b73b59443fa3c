-- sensekit store schema. The only DDL of the store.
-- Any change here must bump SCHEMA_VERSION in sensekit/store.py (tests/test_store.py pins its hash).
-- {dim} is the teacher's hidden size, an integer validated by the writer before substitution.

CREATE TABLE meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL          -- JSON-encoded value
);

-- Every token of the teacher's vocabulary that occurred as a key in the corpus.
CREATE TABLE tokens (
    token_id    INTEGER PRIMARY KEY,
    text        VARCHAR NOT NULL,   -- decoded token text, leading space kept
    occurrences BIGINT  NOT NULL    -- how often it was a key (before reservoir sampling)
);

-- Multi-token related words (relations.related with 2..max_span_tokens tokens).
CREATE TABLE spans (
    span_id   INTEGER PRIMARY KEY,
    token_ids INTEGER[] NOT NULL,
    text      VARCHAR NOT NULL
);

-- A sense row belongs to exactly one token (a centroid) or one span (a cloud row), in one view: a view is
-- one record of meta.views (sensekit/view.py: name, layer, key mode, index file, space, dim, dtype).
-- Vectors are not here: row i of embeddings.npy is the i-th sense in sense_id order (sensekit/sense_array.py).
-- Rows are written sorted by (view, token_id, span_id, sense_index) so zone maps prune lookups.
CREATE TABLE senses (
    sense_id    INTEGER PRIMARY KEY,
    view        VARCHAR  NOT NULL,  -- the name of a view in meta.views
    token_id    INTEGER,
    span_id     INTEGER,
    sense_index SMALLINT NOT NULL,
    count       INTEGER  NOT NULL,  -- samples assigned to this sense (0 for span cloud rows)
    synset      VARCHAR,            -- a WordNet synset name (NLTK Synset.name(), e.g. 'bank.n.01'); NULL: unlinked
    gloss       VARCHAR,            -- that synset's definition
    lemma       VARCHAR,            -- the lemma the sense was linked through
    label       VARCHAR,            -- a short human label (an induced sense: its distinctive words)
    CHECK ((token_id IS NULL) <> (span_id IS NULL))
);

-- The E most central sampled contexts of each sense (of any view: a sense id belongs to one view).
CREATE TABLE contexts (
    sense_id   INTEGER  NOT NULL,
    rank       SMALLINT NOT NULL,   -- 0 = most central
    doc_id     VARCHAR  NOT NULL,
    char_start INTEGER  NOT NULL,   -- span of the key token in the document
    char_end   INTEGER  NOT NULL,
    snippet    VARCHAR  NOT NULL,   -- text around the key token
    mark_start INTEGER  NOT NULL,   -- the key token inside snippet
    mark_end   INTEGER  NOT NULL,
    distance   FLOAT    NOT NULL,   -- L2 distance of the sampled vector to its centroid
    vector_row INTEGER,             -- its sampled (raw) vector's row in context_vectors.npy (plots); NULL: not kept
    PRIMARY KEY (sense_id, rank)
);

-- The similarity space (sensekit/space.py) that the index and every similarity use, one per view:
-- x -> ((x - mean) / scale) minus its projection on the top principal components.
-- Raw vectors stay in embeddings.npy (the DSKD loss is defined on them); the view's record names the kind.
CREATE TABLE similarity_space (
    view   VARCHAR NOT NULL,
    part   VARCHAR NOT NULL CHECK (part IN ('mean', 'scale', 'component')),
    idx    INTEGER NOT NULL,        -- 0 for mean and scale; 0..D-1 for the components
    vector FLOAT[{dim}] NOT NULL,
    PRIMARY KEY (view, part, idx)
);

-- Words of the lexicons, as the teacher tokenizes them (leading space, no special tokens).
CREATE TABLE words (
    word      VARCHAR PRIMARY KEY,
    token_ids INTEGER[] NOT NULL,
    span_id   INTEGER               -- set when the word has 2+ tokens and a span cloud
);

-- Synonym / antonym links, symmetric (both directions stored), per source.
CREATE TABLE relations (
    head       VARCHAR NOT NULL,    -- a single-token word
    related    VARCHAR NOT NULL,    -- 1..max_span_tokens tokens
    kind       VARCHAR NOT NULL CHECK (kind IN ('syn', 'ant')),
    source     VARCHAR NOT NULL,    -- e.g. 'wiktionary', 'wordnet', 'pairs:antsyn.tsv'
    derived    BOOLEAN NOT NULL,    -- true when polarity normalisation flipped or remapped it
    provenance VARCHAR              -- JSON: gloss, the lexicon's sense, original pair, ...
);

-- Point lookups by head word (`sensekit query`) must not scan millions of rows.
CREATE INDEX relations_by_head ON relations (head);

-- Per view, the head's sense each (head, related) pair is attached to: the sense_index of the head's sense
-- nearest to the related word's senses, and its cosine distance in the view's space. No row: unattached.
CREATE TABLE relation_senses (
    view          VARCHAR  NOT NULL,
    head          VARCHAR  NOT NULL,
    related       VARCHAR  NOT NULL,
    head_sense    SMALLINT NOT NULL,
    head_distance FLOAT    NOT NULL
);

CREATE INDEX relation_senses_by_head ON relation_senses (head);
