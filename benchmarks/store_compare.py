"""Row for row: a schema-3 store (the old code's) against a schema-4 store (the new code's) of the same build.

    python benchmarks/store_compare.py V3_STORE V4_STORE [VIEW]

Compares every table, format fields aside: sense rows and their vectors (v3: senses.embedding; v4:
embeddings.npy), contexts and their kept vectors (v3: contexts.vector; v4: context_vectors.npy by
vector_row), relations and the per-view attachments (v3: columns of relations; v4: relation_senses),
similarity spaces, tokens, spans and words (spans by text: their ids follow the sense rows). VIEW limits
the sense-dependent tables to one view. Prints one line per table and ALL EQUAL or SOME DIFFER; lists the
meta keys that differ.
"""

import json
import sys

import duckdb
import numpy as np

old, new = sys.argv[1], sys.argv[2]
a = duckdb.connect(f"{old}/store.duckdb", read_only=True)
b = duckdb.connect(f"{new}/store.duckdb", read_only=True)
ok = True


def same(name, x, y):
    global ok
    eq = x == y
    ok &= eq
    print(f"{name:28s} {'equal' if eq else 'DIFFERENT'} ({len(x)} rows)")


def q(con, sql):
    return con.execute(sql).fetchall()


VIEW = sys.argv[3] if len(sys.argv) > 3 else None  # compare one view's rows only (the other changed elsewhere)
W = f" AND view = '{VIEW}'" if VIEW else ""
WS = f" AND sense_id IN (SELECT sense_id FROM senses WHERE view = '{VIEW}')" if VIEW else ""
same("tokens", q(a, "SELECT * FROM tokens ORDER BY ALL"), q(b, "SELECT * FROM tokens ORDER BY ALL"))
same(
    "spans (text, tokens)",
    q(a, "SELECT text, token_ids FROM spans ORDER BY ALL"),
    q(b, "SELECT text, token_ids FROM spans ORDER BY ALL"),
)
same(
    "words (word, tokens)",
    q(a, "SELECT word, token_ids, span_id IS NULL FROM words ORDER BY ALL"),
    q(b, "SELECT word, token_ids, span_id IS NULL FROM words ORDER BY ALL"),
)
cols = "sense_id, view, token_id, span_id, sense_index, count"
cols = "view, token_id, sense_index, count"
same(
    "token senses",
    q(a, f"SELECT {cols} FROM senses WHERE span_id IS NULL{W} ORDER BY sense_id"),
    q(b, f"SELECT {cols} FROM senses WHERE span_id IS NULL{W} ORDER BY sense_id"),
)
same(
    "span cloud rows",
    q(
        a,
        f"SELECT s.view, p.text, s.sense_index FROM senses s JOIN spans p USING (span_id) WHERE true{W.replace('view', 's.view')} ORDER BY ALL",
    ),
    q(
        b,
        f"SELECT s.view, p.text, s.sense_index FROM senses s JOIN spans p USING (span_id) WHERE true{W.replace('view', 's.view')} ORDER BY ALL",
    ),
)
ea = np.asarray(
    [r[0] for r in q(a, f"SELECT embedding FROM senses WHERE span_id IS NULL{W} ORDER BY sense_id")], np.float32
)
ids_b = [r[0] for r in q(b, "SELECT sense_id FROM senses ORDER BY sense_id")]
want = [r[0] for r in q(b, f"SELECT sense_id FROM senses WHERE span_id IS NULL{W} ORDER BY sense_id")]
eb = np.load(f"{new}/embeddings.npy").astype(np.float32)[np.searchsorted(ids_b, want)]
print(
    f"{'sense vectors':28s} {'equal' if np.array_equal(ea, eb) else 'max |diff| %.3g' % np.abs(ea - eb).max()} {ea.shape}"
)
ok &= np.array_equal(ea, eb)
cc = "sense_id, rank, doc_id, char_start, char_end, snippet, mark_start, mark_end, distance"
same(
    "contexts",
    q(a, f"SELECT {cc} FROM contexts WHERE true{WS} ORDER BY sense_id, rank"),
    q(b, f"SELECT {cc} FROM contexts WHERE true{WS} ORDER BY sense_id, rank"),
)
va = np.asarray(
    [r[0] for r in q(a, f"SELECT vector FROM contexts WHERE vector IS NOT NULL{WS} ORDER BY sense_id, rank")],
    np.float32,
)
rows = [r[0] for r in q(b, f"SELECT vector_row FROM contexts WHERE vector_row IS NOT NULL{WS} ORDER BY sense_id, rank")]
vb = np.load(f"{new}/context_vectors.npy").astype(np.float32)[rows]
print(
    f"{'context vectors':28s} {'equal' if np.array_equal(va, vb) else 'max |diff| %.3g' % np.abs(va - vb).max()} {va.shape}"
)
ok &= np.array_equal(va, vb)
rc = "head, related, kind, source, derived, provenance"
same("relations", q(a, f"SELECT {rc} FROM relations ORDER BY ALL"), q(b, f"SELECT {rc} FROM relations ORDER BY ALL"))
att_a = q(
    a,
    "SELECT * FROM (SELECT DISTINCT 'loss' AS view, head, related, head_sense, head_distance FROM relations WHERE head_sense IS NOT NULL"
    " UNION ALL SELECT DISTINCT 'lexical', head, related, lexical_head_sense, lexical_head_distance FROM relations"
    f" WHERE lexical_head_sense IS NOT NULL) WHERE true{W} ORDER BY ALL",
)
same("attachments (per view)", att_a, q(b, f"SELECT * FROM relation_senses WHERE true{W} ORDER BY ALL"))
same(
    "similarity_space",
    q(a, f"SELECT * FROM similarity_space WHERE true{W} ORDER BY ALL"),
    q(b, f"SELECT * FROM similarity_space WHERE true{W} ORDER BY ALL"),
)
ma = {k: json.loads(v) for k, v in q(a, "SELECT * FROM meta")}
mb = {k: json.loads(v) for k, v in q(b, "SELECT * FROM meta")}
print("meta keys only in v3:", sorted(set(ma) - set(mb)))
print("meta keys only in v4:", sorted(set(mb) - set(ma)))
print("meta values that differ:", sorted(k for k in set(ma) & set(mb) if ma[k] != mb[k]))
print("ALL EQUAL" if ok else "SOME DIFFER")
